"""The master read one way everywhere, per-namespace S3 keys and the cluster name in the prefix."""

from __future__ import annotations

import pytest

from injector.credentials import (
    Layout,
    MirrorAction,
    NamespaceKeysMissing,
    SourceSecretInvalid,
    canonical_master,
    check_source,
    lacking_keys,
    legacy_passwords,
    mirrored_data,
    namespace_password,
    plan_mirrors,
)

SOURCE = {
    "LIFEBOAT_S3_ENDPOINT": "https://s3.example.com",
    "LIFEBOAT_S3_BUCKET": "backups",
    "LIFEBOAT_S3_PREFIX": "lifeboat",
    "AWS_ACCESS_KEY_ID": "AKIASHARED",
    "AWS_SECRET_ACCESS_KEY": "shared-secret",
    "RESTIC_MASTER_PASSWORD": "correct horse battery staple",
}
PER_NAMESPACE = {
    **{k: v for k, v in SOURCE.items() if not k.startswith("AWS_")},
    "AWS_ACCESS_KEY_ID.team-a": "AKIATEAMA",
    "AWS_SECRET_ACCESS_KEY.team-a": "team-a-secret",
    "AWS_ACCESS_KEY_ID.team-b": "AKIATEAMB",
    "AWS_SECRET_ACCESS_KEY.team-b": "team-b-secret",
}


@pytest.mark.parametrize("raw", ["pw", "pw\n", "pw\r\n"])
def test_from_file_and_from_literal_masters_give_the_same_password(raw: str) -> None:
    assert canonical_master(raw) == "pw"
    source = {**SOURCE, "RESTIC_MASTER_PASSWORD": raw}
    assert mirrored_data(source, "media")["RESTIC_PASSWORD"] == namespace_password("pw", "media")


def test_only_one_line_end_is_taken_off_and_other_whitespace_is_kept() -> None:
    assert canonical_master("pw\n\n") == "pw\n"
    assert canonical_master(" pw ") == " pw "


def test_the_legacy_passwords_cover_the_secret_as_it_is_and_the_master_with_a_newline() -> None:
    assert legacy_passwords("pw\n", "media") == [namespace_password("pw\n", "media")]
    assert legacy_passwords("pw", "media") == [namespace_password("pw\n", "media")]
    assert legacy_passwords("pw\r\n", "media") == [
        namespace_password("pw\r\n", "media"),
        namespace_password("pw\n", "media"),
    ]
    data = mirrored_data({**SOURCE, "RESTIC_MASTER_PASSWORD": "pw\n"}, "media")
    assert data["LIFEBOAT_LEGACY_PASSWORDS"] == namespace_password("pw\n", "media")
    assert data["RESTIC_PASSWORD"] not in data["LIFEBOAT_LEGACY_PASSWORDS"]


def test_a_master_that_is_only_a_newline_is_refused_by_name() -> None:
    with pytest.raises(SourceSecretInvalid, match="RESTIC_MASTER_PASSWORD"):
        mirrored_data({**SOURCE, "RESTIC_MASTER_PASSWORD": "\n"}, "media")


def test_without_a_cluster_name_the_prefix_passes_through_unchanged() -> None:
    assert mirrored_data(SOURCE, "a")["LIFEBOAT_S3_PREFIX"] == "lifeboat"
    assert mirrored_data({**SOURCE, "LIFEBOAT_S3_PREFIX": ""}, "a")["LIFEBOAT_S3_PREFIX"] == ""


def test_a_cluster_name_goes_between_the_prefix_and_the_namespace() -> None:
    layout = Layout(cluster_name="home")
    assert mirrored_data(SOURCE, "a", layout)["LIFEBOAT_S3_PREFIX"] == "lifeboat/home"
    no_prefix = {k: v for k, v in SOURCE.items() if k != "LIFEBOAT_S3_PREFIX"}
    assert mirrored_data(no_prefix, "a", layout)["LIFEBOAT_S3_PREFIX"] == "lifeboat/home"


def test_each_namespace_gets_only_its_own_s3_keys() -> None:
    layout = Layout(per_namespace_keys=True)
    a = mirrored_data(PER_NAMESPACE, "team-a", layout)
    b = mirrored_data(PER_NAMESPACE, "team-b", layout)
    assert (a["AWS_ACCESS_KEY_ID"], a["AWS_SECRET_ACCESS_KEY"]) == ("AKIATEAMA", "team-a-secret")
    assert (b["AWS_ACCESS_KEY_ID"], b["AWS_SECRET_ACCESS_KEY"]) == ("AKIATEAMB", "team-b-secret")
    assert "team-b-secret" not in a.values() and "team-a-secret" not in b.values()
    check_source(PER_NAMESPACE, layout)  # shared keys are not required then


def test_a_namespace_without_its_own_keys_gets_no_secret_and_loses_a_shared_one() -> None:
    layout = Layout(per_namespace_keys=True)
    source = {**PER_NAMESPACE, "AWS_ACCESS_KEY_ID": "AKIASHARED", "AWS_SECRET_ACCESS_KEY": "shared"}
    opted_in = ["team-a", "team-c"]
    assert lacking_keys(source, opted_in, layout) == ["team-c"]
    with pytest.raises(NamespaceKeysMissing, match=r"AWS_ACCESS_KEY_ID\.team-c"):
        mirrored_data(source, "team-c", layout)
    wanted = [n for n in opted_in if n not in lacking_keys(source, opted_in, layout)]
    actions = plan_mirrors(
        source,
        wanted,
        {"team-a": None, "team-c": {"AWS_ACCESS_KEY_ID": "AKIASHARED"}},
        {"team-c": True},
        layout,
    )
    assert [(a.kind, a.namespace) for a in actions] == [("create", "team-a"), ("delete", "team-c")]
    assert actions[1] == MirrorAction("delete", "team-c")


def test_shared_keys_mode_ignores_per_namespace_keys() -> None:
    assert lacking_keys(SOURCE, ["x"], Layout()) == []
    source = {**SOURCE, "AWS_ACCESS_KEY_ID.x": "AKIAX", "AWS_SECRET_ACCESS_KEY.x": "x-secret"}
    assert mirrored_data(source, "x")["AWS_ACCESS_KEY_ID"] == "AKIASHARED"

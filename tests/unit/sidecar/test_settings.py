"""Configuration: validated once, errors name the variable and the fix, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.edges.restic import parse_time
from sidecar.edges.store import StoreState, classify_client_error
from sidecar.repository import for_volume, parse_override
from sidecar.settings import ConfigError, load_settings, parse_volumes

BASE = {
    "LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:8333",
    "LIFEBOAT_S3_BUCKET": "backups",
    "AWS_ACCESS_KEY_ID": "access-key-1",
    "AWS_SECRET_ACCESS_KEY": "secret-key-1",
    "RESTIC_PASSWORD": "password-1",
    "LIFEBOAT_NAMESPACE": "media",
}


def test_the_repository_is_named_by_namespace_and_pvc_only() -> None:
    settings = load_settings(BASE)
    repo = for_volume(settings, "jellyfin-config")
    assert repo.url == "s3:http://127.0.0.1:8333/backups/lifeboat/media/jellyfin-config"
    assert repo.key_prefix == "lifeboat/media/jellyfin-config"


def test_a_custom_prefix_is_normalised() -> None:
    settings = load_settings({**BASE, "LIFEBOAT_S3_PREFIX": "/clusters/home/"})
    assert for_volume(settings, "data").url.endswith("/backups/clusters/home/media/data")


def test_an_empty_prefix_mirrored_from_a_source_secret_without_the_key_is_the_default() -> None:
    """Issue 9 item 12: the controller mirrors a missing LIFEBOAT_S3_PREFIX as "" (not exit 78)."""
    settings = load_settings({**BASE, "LIFEBOAT_S3_PREFIX": ""})
    assert for_volume(settings, "data").key_prefix == "lifeboat/media/data"


def test_an_override_points_at_an_existing_repository() -> None:
    repo = parse_override("s3:https://s3.example:9000/bucket/volsync/app", "data")
    assert (repo.endpoint, repo.bucket, repo.key_prefix) == (
        "https://s3.example:9000",
        "bucket",
        "volsync/app",
    )


@pytest.mark.parametrize(
    "value", ["/local/path", "s3:http://host/bucket", "s3:ftp://h/b/p", "s3:http://user:pw@h/b/p"]
)
def test_a_bad_override_names_the_option_and_the_form(value: str) -> None:
    with pytest.raises(ConfigError, match="--repository data"):
        parse_override(value, "data")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"LIFEBOAT_S3_ENDPOINT": "127.0.0.1:8333"}, "LIFEBOAT_S3_ENDPOINT"),
        ({"LIFEBOAT_S3_ENDPOINT": "http://h:1/bucket"}, "LIFEBOAT_S3_ENDPOINT"),
        ({"LIFEBOAT_S3_BUCKET": "No_Such"}, "LIFEBOAT_S3_BUCKET"),
        ({"LIFEBOAT_NAMESPACE": ""}, "LIFEBOAT_NAMESPACE"),
        ({"LIFEBOAT_RESTORE_DEADLINE": "-1"}, "LIFEBOAT_RESTORE_DEADLINE"),
        ({"RESTIC_PASSWORD_FILE": "/nonexistent"}, "RESTIC_PASSWORD"),
    ],
)
def test_invalid_values_name_the_variable(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**BASE, **change})


def test_a_missing_variable_is_named_with_its_fix() -> None:
    env = dict(BASE)
    del env["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(
        ConfigError, match="AWS_SECRET_ACCESS_KEY: is required: set it from the lifeboat-credentials"
    ):
        load_settings(env)


def test_both_password_sources_at_once_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw-from-file\n")
    with pytest.raises(ConfigError, match="only one"):
        load_settings({**BASE, "RESTIC_PASSWORD_FILE": str(tmp_path / "pw")})


def test_a_password_file_is_passed_to_restic_by_path(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw-from-file\n")
    env = {k: v for k, v in BASE.items() if k != "RESTIC_PASSWORD"}
    settings = load_settings({**env, "RESTIC_PASSWORD_FILE": str(tmp_path / "pw")})
    assert settings.restic_env()["RESTIC_PASSWORD_FILE"] == str(tmp_path / "pw")
    assert "pw-from-file" in settings.secrets()


def test_errors_and_reprs_never_show_a_secret() -> None:
    settings = load_settings(BASE)
    assert "secret-key-1" not in repr(settings) and "password-1" not in str(settings)
    with pytest.raises(ConfigError) as error:
        load_settings({**BASE, "LIFEBOAT_RESTORE_DEADLINE": "secret-key-1"})
    assert "secret-key-1" not in str(error.value)


def test_volumes_and_their_options_are_parsed_per_pvc() -> None:
    specs = parse_volumes(["db=/data/db", "media=/data/media"], ["db=uid-1"], ["media=1a2b3c4d"], [])
    assert [(s.pvc, str(s.path), s.pvc_uid, s.snapshot) for s in specs] == [
        ("db", "/data/db", "uid-1", None),
        ("media", "/data/media", None, "1a2b3c4d"),
    ]


@pytest.mark.parametrize(
    ("volumes", "uids", "message"),
    [
        ([], [], "at least one"),
        (["data"], [], "PVC=VALUE"),
        (["Data=/d"], [], "valid PVC name"),
        (["a=/d", "a=/e"], [], "given twice"),
        (["a=relative"], [], "absolute"),
        (["a=/d", "b=/d"], [], "share one mount path"),
        (["a=/d"], ["b=uid"], "no matching --volume"),
    ],
)
def test_bad_volume_arguments_are_explained(volumes: list[str], uids: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_volumes(volumes, uids)


def test_restic_times_with_nanoseconds_and_offsets_are_parsed() -> None:
    assert parse_time("2026-11-27T00:06:53.542947181Z").isoformat() == "2026-11-27T00:06:53.542947+00:00"
    assert parse_time("2026-11-27T01:06:53.5+01:00").isoformat() == "2026-11-27T01:06:53.500000+01:00"
    assert parse_time("2026-11-27T00:06:53Z").tzinfo is not None


@pytest.mark.parametrize(
    ("code", "status", "state"),
    [
        ("NoSuchBucket", 404, StoreState.BUCKET_MISSING),
        ("InvalidAccessKeyId", 403, StoreState.DENIED),
        ("SignatureDoesNotMatch", 403, StoreState.DENIED),
        ("AccessDenied", 403, StoreState.DENIED),
        ("InternalError", 500, StoreState.UNREACHABLE),
        ("SlowDown", 503, StoreState.UNREACHABLE),
        ("", 502, StoreState.UNREACHABLE),
    ],
)
def test_s3_errors_are_classified(code: str, status: int, state: StoreState) -> None:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    assert classify_client_error(response) is state

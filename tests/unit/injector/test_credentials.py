"""Per-namespace restic passwords and the mirroring plan: stable, isolated, never overreaching."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from injector.credentials import (
    MirrorAction,
    SourceSecretInvalid,
    find_uninjected,
    mirrored_data,
    namespace_password,
    plan_mirrors,
)

SOURCE = {
    "LIFEBOAT_S3_ENDPOINT": "https://s3.example.com",
    "LIFEBOAT_S3_BUCKET": "backups",
    "LIFEBOAT_S3_PREFIX": "cluster-a",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-key-value",
    "RESTIC_MASTER_PASSWORD": "correct horse battery staple",
}


def test_the_namespace_password_derivation_is_frozen() -> None:
    # This value must never change: existing repositories are encrypted with it.
    assert namespace_password("master", "media") == (
        hmac.new(b"master", b"lifeboat/namespace/media", hashlib.sha256).hexdigest()
    )
    assert namespace_password("master", "media") == (
        "04293a3fddb09fe870de31d2cfb902729b8f913b5ebf059f4f2ba1e2b1f9f46d"
    )
    assert len(namespace_password("master", "media")) == 64


def test_each_namespace_gets_a_different_password_and_never_the_master() -> None:
    a, b = mirrored_data(SOURCE, "a"), mirrored_data(SOURCE, "b")
    assert a["RESTIC_PASSWORD"] != b["RESTIC_PASSWORD"]
    assert SOURCE["RESTIC_MASTER_PASSWORD"] not in a.values()
    assert "RESTIC_MASTER_PASSWORD" not in a
    assert a["AWS_SECRET_ACCESS_KEY"] == "secret-key-value"
    assert set(a) == {
        "LIFEBOAT_S3_ENDPOINT",
        "LIFEBOAT_S3_BUCKET",
        "LIFEBOAT_S3_PREFIX",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "RESTIC_PASSWORD",
        "LIFEBOAT_LEGACY_PASSWORDS",
    }


def test_a_source_secret_missing_keys_is_named_without_leaking_values() -> None:
    source = dict(SOURCE)
    del source["RESTIC_MASTER_PASSWORD"]
    with pytest.raises(SourceSecretInvalid) as err:
        mirrored_data(source, "a")
    assert "RESTIC_MASTER_PASSWORD" in str(err.value)
    assert "secret-key-value" not in str(err.value)


def test_the_plan_creates_updates_and_deletes_only_what_lifeboat_manages() -> None:
    good = mirrored_data(SOURCE, "same")
    existing = {
        "new": None,
        "same": good,
        "stale": {"RESTIC_PASSWORD": "old"},
        "opted-out": {"x": "y"},
        "foreign": {"x": "y"},
        "foreign-opted-in": {"x": "y"},
    }
    managed = {"same": True, "stale": True, "opted-out": True, "foreign": False, "foreign-opted-in": False}
    actions = plan_mirrors(SOURCE, ["new", "same", "stale", "foreign-opted-in"], existing, managed)
    assert [(a.kind, a.namespace) for a in actions] == [
        ("create", "new"),
        ("update", "stale"),
        ("delete", "opted-out"),
    ]
    assert actions[0] == MirrorAction("create", "new", mirrored_data(SOURCE, "new"))


def test_pods_that_mount_labelled_pvcs_without_injection_are_found() -> None:
    def pod(name: str, claim: str, injected: bool = False, phase: str = "Running") -> dict:
        inits = [{"name": "lifeboat-restore"}] if injected else []
        return {
            "metadata": {"name": name, "namespace": "apps", "uid": f"uid-{name}"},
            "spec": {
                "initContainers": inits,
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
            },
            "status": {"phase": phase},
        }

    skipped = pod("skipped", "data")
    skipped["metadata"]["annotations"] = {"lifeboat.dev/skip": "true"}
    labels = {("apps", "data"): {"backup": "daily"}, ("apps", "tmp"): {}}
    found = find_uninjected(
        [
            pod("old", "data"),
            pod("new", "data", injected=True),
            pod("plain", "tmp"),
            pod("done", "data", phase="Succeeded"),
            skipped,
        ],
        labels,
    )
    assert [(p.name, p.pvcs) for p in found] == [("old", ("data",))]

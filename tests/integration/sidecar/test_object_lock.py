"""Append-only history with S3 Object Lock, on real restic and SeaweedFS (issue 12 item 6).

A bucket created with Object Lock and a default COMPLIANCE retention keeps every version of every
object until the retention ends: a compromised app (or anyone holding its keys) can hide objects
behind delete markers but cannot erase a single version, so the history can be brought back
(docs/security.md, "Append-only history"). Lifeboat's own backup, restore and forget work as usual.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from devtools import devstore
from devtools.devtree import describe, make_volume
from tests.conftest import ACCESS_KEY, RESTIC, SECRET_KEY, Store
from tests.support.lifeboat_cli import lifeboat

pytestmark = pytest.mark.s3

BUCKET = "append-only"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    server = devstore.seaweedfs(tmp_path_factory.mktemp("seaweedfs-lock"), ACCESS_KEY, SECRET_KEY)
    with devstore.running(server):
        client = server.client()
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
        client.put_object_lock_configuration(  # type: ignore[attr-defined]
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
        yield Store(server=server, bucket=BUCKET)


def _versions(store: Store, prefix: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    client = store.server.client()
    versions, markers = [], []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):  # type: ignore[attr-defined]
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
    return versions, markers


def test_backup_forget_prune_and_restore_work_on_an_object_locked_bucket(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "data"
    make_volume(source, seed=1)
    for run in range(2):
        (source / f"run-{run}").write_text(str(run))
        backup = lifeboat("backup", store, {"data": source}, tmp_path / f"b{run}")
        assert backup.code == 0, backup.stderr
    prune = subprocess.run(  # what the sidecar's retention pass runs: deletes become delete markers
        [RESTIC, "forget", "--keep-last", "1", "--prune"],
        env=store.restic_env(store.repository("data")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prune.returncode == 0, prune.stderr
    volume = tmp_path / "vol"
    volume.mkdir()
    restore = lifeboat("restore", store, {"data": volume}, tmp_path / "r")
    assert restore.code == 0, restore.stderr
    assert describe(volume) == describe(source)


def test_an_attacker_with_the_keys_cannot_erase_locked_history(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "data"
    make_volume(source, seed=2)
    backup = lifeboat("backup", store, {"data": source}, tmp_path / "b", env={"LIFEBOAT_NAMESPACE": "victim"})
    assert backup.code == 0, backup.stderr
    prefix = "lifeboat/victim/data/"
    versions, _ = _versions(store, prefix)
    assert versions
    client = store.server.client()

    refused = 0
    for version in versions:  # the attacker's worst: delete every version by id
        try:
            client.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])  # type: ignore[attr-defined]
        except ClientError:
            refused += 1
        client.delete_object(Bucket=BUCKET, Key=version["Key"])  # type: ignore[attr-defined]
    assert refused == len(versions), "no version may be erased while it is retained"
    assert [k for k in store.keys(prefix)] == [], "the repository looks gone ..."

    after, markers = _versions(store, prefix)
    assert {v["VersionId"] for v in after} == {v["VersionId"] for v in versions}, (
        "... but every version is kept"
    )
    for marker in markers:  # recovery, as docs/security.md says: remove the delete markers
        client.delete_object(Bucket=BUCKET, Key=marker["Key"], VersionId=marker["VersionId"])  # type: ignore[attr-defined]
    check = subprocess.run(
        [RESTIC, "check", "--read-data", "--no-lock"],
        env=store.restic_env(store.repository("data", namespace="victim")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr
    volume = tmp_path / "vol"
    volume.mkdir()
    restore = lifeboat(
        "restore", store, {"data": volume}, tmp_path / "r", env={"LIFEBOAT_NAMESPACE": "victim"}
    )
    assert restore.code == 0, restore.stderr
    assert describe(volume) == describe(source)

"""`lifeboat backup` runs the sidecar's guarded backup: the same guard, locks and identity.

Each test runs the real `lifeboat backup` executable against real restic and SeaweedFS.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from devtools.devtree import make_volume
from lifeboat.exitcodes import EX_DATAERR, EX_OK
from tests.conftest import Store
from tests.support.lifeboat_cli import lifeboat, snapshots

pytestmark = pytest.mark.s3


def test_first_backup_creates_the_repository_and_carries_the_snapshot_identity(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = tmp_path / "data"
    make_volume(volume, seed=1)
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "run", "--pvc-uid", "data=uid-1")
    assert run.code == EX_OK, run.stderr
    (snap,) = snapshots(seaweed, seaweed.repository("data"))
    assert snap["hostname"] == "lifeboat"
    assert {"lifeboat", "namespace=apps", "pvc=data", "pvc-uid=uid-1"} <= set(snap["tags"])
    assert run.events("repository.initialized") and run.events("backup.finished")


def test_empty_volume_with_only_lost_and_found_is_refused_over_history(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = tmp_path / "data"
    make_volume(volume, seed=2)
    assert lifeboat("backup", seaweed, {"data": volume}, tmp_path / "first").code == EX_OK
    shutil.rmtree(volume)
    volume.mkdir()
    (volume / "lost+found").mkdir()
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "empty")
    assert run.code == EX_DATAERR, run.stderr
    (blocked,) = run.events("guard.blocked")
    assert blocked["reason"] == "empty"
    assert len(snapshots(seaweed, seaweed.repository("data"))) == 1  # nothing became "latest"


def test_a_volume_that_shrank_past_the_limit_is_refused_until_adopted(seaweed: Store, tmp_path: Path) -> None:
    volume = tmp_path / "data"
    volume.mkdir()
    (volume / "big").write_bytes(os.urandom(400_000))
    (volume / "small").write_bytes(b"x" * 1000)
    assert lifeboat("backup", seaweed, {"data": volume}, tmp_path / "first").code == EX_OK
    (volume / "big").unlink()
    refused = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "shrunk")
    assert refused.code == EX_DATAERR
    assert refused.events("guard.blocked")[0]["reason"] == "shrunk"
    adopted = lifeboat(
        "backup", seaweed, {"data": volume}, tmp_path / "adopt", env={"LIFEBOAT_ADOPT": "true"}
    )
    assert adopted.code == EX_OK, adopted.stderr
    assert len(snapshots(seaweed, seaweed.repository("data"))) == 2


def test_a_fresh_start_recorded_in_the_handover_allows_an_empty_volume(
    seaweed: Store, tmp_path: Path
) -> None:
    """The handover the restore container left is read, exactly as the sidecar reads it."""
    volume = tmp_path / "data"
    volume.mkdir()
    (volume / "file").write_text("history")
    assert lifeboat("backup", seaweed, {"data": volume}, tmp_path / "first").code == EX_OK
    (volume / "file").unlink()
    (volume / "lost+found").mkdir()  # restic refuses a snapshot of nothing at all
    run_dir = tmp_path / "fresh"
    (run_dir / "state").mkdir(parents=True)
    record = {"version": 1, "volumes": {"data": {"outcome": "fresh", "snapshot": None, "finished_at": None}}}
    (run_dir / "state" / "restore.json").write_text(json.dumps(record))
    run = lifeboat("backup", seaweed, {"data": volume}, run_dir)
    assert run.code == EX_OK, run.stderr


def test_unreachable_store_exits_75_and_never_initialises(seaweed: Store, tmp_path: Path) -> None:
    volume = tmp_path / "data"
    make_volume(volume, seed=3)
    env = {"LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:9", "LIFEBOAT_PROBE_TIMEOUT": "1"}
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "down", env=env, timeout=120)
    assert run.code == 75, run.stderr
    assert not seaweed.keys("lifeboat/apps/data")

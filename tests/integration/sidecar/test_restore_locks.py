"""The restore init container and repository locks, on real restic + SeaweedFS.

A rebuilt cluster's restore must not be kept in `Init` forever by the exclusive lock a dead
cluster's forget, prune, check or post-restore tag left behind (only the sidecar used to remove
stale locks, and it starts after the restore); and it must wait, not start fresh or fail, while
another pod's live exclusive lock is held. Locks are forged (tests/support/lockforge.py): a test
cannot wait 30 minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest

from devtools.devtree import describe
from sidecar.edges import volume as vol
from sidecar.restore.decision import VolumeState
from tests.conftest import Store
from tests.support.lifeboat_cli import LIFEBOAT, lifeboat
from tests.support.lockforge import drop_lock, forge_lock
from tests.support.sidecar import fill, locks

pytestmark = pytest.mark.s3


def _backed_up(store: Store, tmp_path: Path) -> Path:
    source = fill(tmp_path / "source")
    assert lifeboat("backup", store, {"data": source}, tmp_path / "b").code == 0
    return source


def test_restore_removes_a_dead_clusters_exclusive_lock_over_30_minutes_old_and_restores(
    seaweed: Store, tmp_path: Path
) -> None:
    source = _backed_up(seaweed, tmp_path)
    lock_id = forge_lock(seaweed, "data", hostname="old-cluster-node", pid=7, age=dt.timedelta(minutes=31))
    assert locks(seaweed, "data") == [lock_id]
    volume = tmp_path / "vol"
    volume.mkdir()
    # an hour of patience: a restore that only waited (restic's --retry-lock) would time out here
    run = lifeboat(
        "restore", seaweed, {"data": volume}, tmp_path / "r", env={"LIFEBOAT_LOCK_RETRY": "3600"}, timeout=600
    )
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "restored"
    assert describe(volume) == describe(source)
    assert locks(seaweed, "data") == []
    (removed,) = run.events("lock.stale_removed")
    assert removed["lock_host"] == "old-cluster-node"
    assert run.events("restore.retry") == []


def test_restore_waits_for_a_live_exclusive_lock_of_another_host_and_restores_once_it_is_gone(
    seaweed: Store, tmp_path: Path
) -> None:
    source = _backed_up(seaweed, tmp_path)
    lock_id = forge_lock(seaweed, "data", hostname="pruning-pod", pid=7, age=dt.timedelta(minutes=1))
    volume = tmp_path / "vol"
    volume.mkdir()
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    env = seaweed.env(
        LIFEBOAT_STATE_DIR=str(run_dir / "state"),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(run_dir / "term"),
        RESTIC_CACHE_DIR=str(run_dir / "cache"),
        LIFEBOAT_LOCK_RETRY="4",  # short patience: the wait also crosses restore retries
    )
    proc = subprocess.Popen(
        [LIFEBOAT, "restore", "--volume", f"data={volume}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(12)
        assert proc.poll() is None, "the restore must wait for a live lock, not finish"
        assert vol.inspect(volume) is VolumeState.EMPTY
        assert locks(seaweed, "data") == [lock_id]  # a live lock of another host is never removed
        drop_lock(seaweed, "data", lock_id)  # the other pod's prune ends
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = [r.get("event") for r in records]
    waiting = [r for r in records if r.get("event") == "lock.waiting"]
    assert waiting and waiting[0]["lock_host"] == "pruning-pod" and waiting[0]["operation"] == "restore"
    assert "restore.retry" in names  # patience ran out at least once: retried, not failed
    (finished,) = [r for r in records if r.get("event") == "restore.finished"]
    (outcome,) = finished["volumes"]
    assert outcome["outcome"] == "restored"
    assert describe(volume) == describe(source)
    assert locks(seaweed, "data") == []

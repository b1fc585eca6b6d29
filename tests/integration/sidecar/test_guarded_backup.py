"""Scheduled backups on real restic + SeaweedFS: guard rails, continuity of history, retention."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, make, snapshots

pytestmark = pytest.mark.s3


def test_first_backup_creates_the_repository_and_tags_the_volume_instance(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    worker = make(seaweed, tmp_path, volume, "fresh").workers[0]
    result = worker.backup()
    assert result.result == "success", result.message
    assert result.initialized
    (snap,) = snapshots(seaweed, "data")
    assert {"lifeboat", "namespace=apps", "pvc=data", "pvc-uid=uid-1"} <= set(snap["tags"])  # type: ignore[arg-type]
    assert snap["hostname"] == "lifeboat"


def test_empty_volume_is_not_backed_up_over_history(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = fill(tmp_path / "vol")
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    assert make(seaweed, tmp_path, volume, "fresh").workers[0].backup().succeeded
    for child in path.iterdir():
        if child.name != "lost+found":
            shutil.rmtree(child)
    restarted = make(seaweed, tmp_path, volume, "skipped")
    with caplog.at_level(logging.ERROR):
        result = restarted.workers[0].backup()
    assert result.result == "blocked"
    assert result.verdict is not None and result.verdict.reason is not None
    assert result.verdict.reason.value == "empty"
    assert len(snapshots(seaweed, "data")) == 1
    assert any(getattr(r, "event", "") == "guard.blocked" for r in caplog.records)
    text = restarted.metrics.render().decode()
    assert 'lifeboat_guard_blocked{namespace="apps",persistentvolumeclaim="data",reason="empty"} 1.0' in text
    assert (
        'lifeboat_backups_total{namespace="apps",persistentvolumeclaim="data",result="blocked"} 1.0' in text
    )


def test_volume_that_shrank_past_the_limit_is_refused(seaweed: Store, tmp_path: Path) -> None:
    path = fill(tmp_path / "vol", files=20)
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    assert make(seaweed, tmp_path, volume, "fresh").workers[0].backup().succeeded
    for victim in sorted(path.glob("dir*/*.bin"))[:15]:
        victim.unlink()
    result = make(seaweed, tmp_path, volume, "skipped").workers[0].backup()
    assert result.result == "blocked"
    assert result.verdict and result.verdict.reason and result.verdict.reason.value == "shrunk"


def test_foreign_volume_is_a_conflict_until_adopted(seaweed: Store, tmp_path: Path) -> None:
    original = VolumeSpec("data", fill(tmp_path / "old"), pvc_uid="uid-old")
    assert make(seaweed, tmp_path / "a", original, "fresh").workers[0].backup().succeeded
    # another volume instance with data of its own, that Lifeboat did not restore
    foreign = VolumeSpec("data", fill(tmp_path / "new"), pvc_uid="uid-new")
    blocked = make(seaweed, tmp_path / "b", foreign, "skipped")
    result = blocked.workers[0].backup()
    assert result.result == "blocked"
    assert result.verdict and result.verdict.reason and result.verdict.reason.value == "conflict"
    assert len(snapshots(seaweed, "data")) == 1
    assert 'reason="conflict"} 1.0' in blocked.metrics.render().decode()
    adopted = make(seaweed, tmp_path / "c", foreign, "skipped", LIFEBOAT_ADOPT="true").workers[0].backup()
    assert adopted.succeeded and adopted.verdict and adopted.verdict.adopted
    assert "pvc-uid=uid-new" in snapshots(seaweed, "data")[-1]["tags"]  # type: ignore[operator]


def test_restored_volume_continues_the_history_across_a_restart(seaweed: Store, tmp_path: Path) -> None:
    """A rebuilt cluster: restored into a PVC with a new UID, then the pod restarts (skipped)."""
    old = VolumeSpec("data", fill(tmp_path / "old"), pvc_uid="uid-old")
    assert make(seaweed, tmp_path / "a", old, "fresh").workers[0].backup().succeeded
    restored_path = tmp_path / "restored"
    shutil.copytree(old.path, restored_path)
    new = VolumeSpec("data", restored_path, pvc_uid="uid-new")
    first = make(seaweed, tmp_path / "b", new, "restored").workers[0].backup()
    assert first.succeeded, first.message
    after_restart = make(seaweed, tmp_path / "c", new, "skipped").workers[0].backup()
    assert after_restart.result == "success", after_restart.message


def test_same_volume_restarting_is_not_a_conflict(seaweed: Store, tmp_path: Path) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    assert make(seaweed, tmp_path / "a", volume, "fresh").workers[0].backup().succeeded
    again = make(seaweed, tmp_path / "b", volume, "skipped").workers[0].backup()
    assert again.result == "success"
    assert len(snapshots(seaweed, "data")) == 2


def test_forget_applies_the_retention_policy_after_each_backup(seaweed: Store, tmp_path: Path) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    sidecar = make(seaweed, tmp_path, volume, "fresh", LIFEBOAT_RETENTION="last=2")
    worker = sidecar.workers[0]
    for i in range(4):
        (volume.path / f"new{i}").write_text(str(i))
        assert worker.backup().succeeded
    assert len(snapshots(seaweed, "data")) == 2
    text = sidecar.metrics.render().decode()
    assert 'lifeboat_snapshots{namespace="apps",persistentvolumeclaim="data"} 2.0' in text
    # the first two forgets could not remove anything under last=2: skipped, no restic started
    for result, count in (("skipped", 2), ("success", 2)):
        assert (
            'lifeboat_maintenance_total{namespace="apps",operation="forget",'
            f'persistentvolumeclaim="data",result="{result}"}} {count}.0' in text
        )


def test_restart_right_after_a_restore_is_not_a_conflict(seaweed: Store, tmp_path: Path) -> None:
    """The restored history is claimed (tagged with the new UID) before the first backup ends."""
    old = VolumeSpec("data", fill(tmp_path / "old"), pvc_uid="uid-old")
    assert make(seaweed, tmp_path / "a", old, "fresh").workers[0].backup().succeeded
    restored_path = tmp_path / "restored"
    shutil.copytree(old.path, restored_path)
    new = VolumeSpec("data", restored_path, pvc_uid="uid-new")
    claimed = make(seaweed, tmp_path / "b", new, "restored").workers[0].claim()
    assert claimed is not None
    (snap,) = snapshots(seaweed, "data")
    assert {"pvc-uid=uid-old", "pvc-uid=uid-new"} <= set(snap["tags"])  # type: ignore[arg-type]
    # the pod restarts before any backup of the new volume instance
    after_restart = make(seaweed, tmp_path / "c", new, "skipped").workers[0].backup()
    assert after_restart.result == "success", after_restart.message

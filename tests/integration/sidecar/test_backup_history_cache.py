"""Fewer restic starts per scheduled backup (issue 13 item 2), with the guard rails exactly as strong.

A warm sidecar reads the repository's history from what it learned last (its listing, the snapshots
it wrote, those it forgot), trusted only while the store lists exactly those snapshot ids; a forget
that restic's policy cannot make remove anything is skipped. Real restic, real SeaweedFS.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from sidecar.backup.guarded import GuardPolicy, guarded_backup
from sidecar.daemon.main import VolumeWorker
from sidecar.daemon.retention import plan
from sidecar.edges.restic import Restic
from sidecar.settings import VolumeSpec
from tests.conftest import RESTIC, Store
from tests.support.sidecar import fill, make, metric, restic, snapshots

pytestmark = pytest.mark.s3


def empty(path: Path) -> None:
    for child in path.iterdir():
        if child.name != "lost+found":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def forgets(worker: VolumeWorker, result: str) -> float:
    text = worker.metrics.render().decode()
    return metric(text, "lifeboat_maintenance_total", operation="forget", result=result) or 0.0


def test_a_warm_sidecar_backs_up_without_listing_and_still_refuses_an_empty_volume(
    seaweed: Store, tmp_path: Path
) -> None:
    path = fill(tmp_path / "vol")
    worker = make(seaweed, tmp_path, VolumeSpec("data", path, pvc_uid="uid-1"), "fresh").workers[0]
    first = worker.backup()
    assert first.succeeded and first.listed  # the first run after start asks restic
    (path / "new.bin").write_bytes(b"x" * 4096)
    second = worker.backup()
    assert second.succeeded and not second.listed  # the store listed exactly the ids it knew
    empty(path)
    blocked = worker.backup()
    assert blocked.result == "blocked"
    assert blocked.verdict and blocked.verdict.reason and blocked.verdict.reason.value == "empty"
    assert blocked.listed  # an empty volume is always judged on restic's own listing
    assert len(snapshots(seaweed, "data")) == 2


def test_an_empty_volume_is_refused_over_history_another_pod_wrote_after_the_cache_was_warm(
    seaweed: Store, tmp_path: Path
) -> None:
    # pod A started fresh on an empty volume and backed it up: its cache says "newest: empty"
    path_a = fill(tmp_path / "a-vol", files=0)  # a new ext4 volume: lost+found only
    a = make(seaweed, tmp_path / "a", VolumeSpec("data", path_a, pvc_uid="uid-a"), "fresh").workers[0]
    assert a.backup().succeeded and a.known is not None
    # pod B (another volume instance, same repository) writes real data after it
    path_b = fill(tmp_path / "b-vol")
    assert (
        make(seaweed, tmp_path / "b", VolumeSpec("data", path_b, pvc_uid="uid-b"), "fresh")
        .workers[0]
        .backup()
        .succeeded
    )
    result = a.backup()
    assert result.result == "blocked", result.message
    assert result.listed
    assert len(snapshots(seaweed, "data")) == 2


def test_a_listing_that_lies_still_cannot_let_an_empty_volume_over_real_history(
    seaweed: Store, tmp_path: Path
) -> None:
    # the belt and braces: even a store listing that (wrongly) matches a stale cache does not decide
    # for an empty volume; restic's own listing does
    path_a = fill(tmp_path / "a-vol", files=0)  # a new ext4 volume: lost+found only
    a = make(seaweed, tmp_path / "a", VolumeSpec("data", path_a, pvc_uid="uid-a"), "fresh").workers[0]
    assert a.backup().succeeded and a.known is not None
    stale = a.known
    assert (
        make(seaweed, tmp_path / "b", VolumeSpec("data", fill(tmp_path / "b-vol"), pvc_uid="uid-b"), "fresh")
        .workers[0]
        .backup()
        .succeeded
    )
    result = guarded_backup(
        "apps",
        a.volume,
        a.restic,
        outcome="fresh",
        policy=GuardPolicy(),
        backed_up=True,
        ensure=lambda: (False, 0, ""),
        lock_patience=20,
        known=stale,
        listing=lambda: frozenset(s.id for s in stale),
    )
    assert result.result == "blocked" and result.listed
    assert len(snapshots(seaweed, "data")) == 2


def test_a_warm_cache_is_not_trusted_once_another_pod_wrote_a_snapshot(
    seaweed: Store, tmp_path: Path
) -> None:
    path = fill(tmp_path / "vol")
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    a = make(seaweed, tmp_path / "a", volume, "fresh").workers[0]
    b = make(seaweed, tmp_path / "b", volume, "skipped").workers[0]  # an RWX volume's second pod
    assert a.backup().succeeded
    assert b.backup().succeeded
    again = a.backup()
    assert again.succeeded and again.listed
    assert a.known is not None and {s.id for s in a.known} == {s["id"] for s in snapshots(seaweed, "data")}


def test_forget_is_skipped_while_nothing_can_go_and_runs_when_something_can(
    seaweed: Store, tmp_path: Path
) -> None:
    path = fill(tmp_path / "vol", files=3)
    worker = make(
        seaweed, tmp_path, VolumeSpec("data", path, pvc_uid="uid-1"), "fresh", LIFEBOAT_RETENTION="last=2"
    ).workers[0]
    for run in range(2):
        (path / f"run{run}").write_text(str(run))
        assert worker.backup().succeeded
    assert forgets(worker, "skipped") == 2 and forgets(worker, "success") == 0
    (path / "run2").write_text("2")
    assert worker.backup().succeeded
    assert forgets(worker, "skipped") == 2 and forgets(worker, "success") == 1
    left = snapshots(seaweed, "data")
    assert len(left) == 2
    # what it forgot was taken off its list, so the next run still trusts it (no restic listing),
    # and last=2 over three snapshots forgets again
    (path / "run3").write_text("3")
    fourth = worker.backup()
    assert fourth.succeeded and not fourth.listed
    assert forgets(worker, "success") == 2
    assert len(snapshots(seaweed, "data")) == 2
    assert worker.known is not None
    assert {s.id for s in worker.known} == {s["id"] for s in snapshots(seaweed, "data")}


def test_the_plan_is_restics_own_on_a_real_history(seaweed: Store, tmp_path: Path) -> None:
    data = fill(tmp_path / "vol", files=2)
    handle = Restic(
        repository=seaweed.repository("plan"),
        env=seaweed.restic_env(seaweed.repository("plan")),
        binary=RESTIC,
    )
    handle.init()
    start = dt.datetime(2026, 11, 28, 9, 40)
    offsets = [0, 5, 50, 70, 60 * 20, 60 * 26, 60 * 49, 60 * 24 * 8, 60 * 24 * 9, 60 * 24 * 40]
    for minutes in offsets:
        when = (start - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")
        done = restic(
            seaweed, "plan", "backup", "--host", "lifeboat", "--tag", "lifeboat", "--time", when, str(data)
        )
        assert done.returncode == 0
    restic(seaweed, "plan", "backup", "--host", "volsync", "--time", "2026-11-28 09:41:00", str(data))
    known = handle.snapshots()
    for policy in (
        {"last": 3},
        {"hourly": 24},
        {"hourly": 2, "daily": 1},
        {"daily": 7, "weekly": 4, "monthly": 6},
        {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6},
        {"yearly": 1},
    ):
        expected = handle.forget_plan(policy, tags=["lifeboat"])
        keep, remove = plan(known, policy)
        assert {s.id for s in remove} == {s.id for s in expected.remove}, policy
        assert {s.id for s in keep} == {s.id for s in expected.keep}, policy

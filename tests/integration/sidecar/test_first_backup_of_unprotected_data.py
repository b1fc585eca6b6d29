"""A volume that already holds data and has no snapshot is backed up soon after the sidecar starts
(issue 14 item 8): real sidecar in-process, real restic, real S3 (SeaweedFS)."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest

from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, make, snapshots

pytestmark = pytest.mark.s3


def wait_for(condition, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def snapshot_count(store: Store) -> int:
    try:
        return len(snapshots(store, "data"))
    except subprocess.CalledProcessError:  # no repository yet
        return 0


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_data_labelled_late_gets_its_first_backup_at_start_not_at_its_slot(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1", schedule="daily")
    sidecar = make(seaweed, tmp_path, volume, outcome="skipped", LIFEBOAT_FIRST_BACKUP_DELAY="1")
    sidecar.start()
    try:
        (started,) = events(caplog, "sidecar.started")
        fields = started.fields  # type: ignore[attr-defined]
        assert fields["first_backup_if_unprotected"] == ["data"]
        # the next backup named is within seconds, not the daily slot hours away
        assert fields["next_backups"]["data"] < str(sidecar.scheduler.next_run("backup:data"))
        wait_for(lambda: snapshot_count(seaweed) == 1)
        assert events(caplog, "backup.first_of_unprotected_data")
    finally:
        sidecar.request_stop()
        sidecar.scheduler.shutdown()


def test_a_volume_already_protected_is_not_backed_up_again_at_start(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1", schedule="daily")
    first = make(seaweed, tmp_path / "a", volume, outcome="fresh")
    assert first.workers[0].backup().succeeded
    again = make(seaweed, tmp_path / "b", volume, outcome="skipped", LIFEBOAT_FIRST_BACKUP_DELAY="0")
    again.start()
    try:
        wait_for(lambda: bool(events(caplog, "backup.first_not_needed")))
        assert len(snapshots(seaweed, "data")) == 1
    finally:
        again.request_stop()
        again.scheduler.shutdown()

"""Retention, prune and check on real restic, on both S3 implementations where it matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, handover, settings, snapshots

pytestmark = pytest.mark.s3


def test_scheduled_backup_forget_prune_and_check_work_on_any_s3(s3: Store, tmp_path: Path) -> None:
    conf = settings(s3, tmp_path, LIFEBOAT_RETENTION="last=1", LIFEBOAT_CHECK_READ_DATA_SUBSET="100%")
    handover(conf.state_dir, data="fresh")
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    worker = Sidecar.from_settings([volume], conf).workers[0]
    assert worker.backup().succeeded
    fill(volume.path / "more")
    assert worker.backup().succeeded
    assert len(snapshots(s3, "data")) == 1  # forget kept the newest only
    assert worker.prune().result == "success"
    checked = worker.check()
    assert checked.result == "success", checked.message


def test_check_that_finds_damage_is_reported_and_never_counted_as_success(
    seaweed: Store, tmp_path: Path
) -> None:
    conf = settings(seaweed, tmp_path, LIFEBOAT_CHECK_READ_DATA_SUBSET="100%")
    handover(conf.state_dir, data="fresh")
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    sidecar = Sidecar.from_settings([volume], conf)
    worker = sidecar.workers[0]
    assert worker.backup().succeeded
    client = seaweed.server.client()
    pack = next(k for k in seaweed.keys("lifeboat/apps/data/data/"))
    client.delete_object(Bucket=seaweed.bucket, Key=pack)  # type: ignore[attr-defined]
    checked = worker.check()
    assert checked.result == "failed"
    text = sidecar.metrics.render().decode()
    assert 'operation="check",persistentvolumeclaim="data",result="failed"} 1.0' in text
    assert "lifeboat_check_last_success_timestamp_seconds{" not in text


def test_a_sidecar_without_snapshots_of_its_own_never_prunes_or_checks(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    pods = []
    for name in ("writer", "blocked"):
        conf = settings(seaweed, tmp_path / name)
        handover(conf.state_dir, data="skipped")
        pods.append(Sidecar.from_settings([volume], conf).workers[0])
    writer, blocked = pods
    assert writer.backup().succeeded
    assert blocked.prune().result == "skipped"
    assert blocked.check().result == "skipped"
    assert writer.prune().result == "success"

"""The running sidecar in-process: scheduled jobs firing, metrics and probes scraped over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import devstore
from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, handover, metric, scrape, settings, snapshots

pytestmark = pytest.mark.s3


def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def backups(port: int, result: str = "success") -> float:
    return (
        metric(scrape(port)[1], "lifeboat_backups_total", persistentvolumeclaim="data", result=result) or 0.0
    )


def stamp(port: int, name: str) -> float | None:
    return metric(scrape(port)[1], name, persistentvolumeclaim="data")


def test_fresh_volume_gets_its_first_backup_soon_after_start_and_metrics_show_it(
    seaweed: Store, tmp_path: Path
) -> None:
    port = devstore.free_port()
    conf = settings(seaweed, tmp_path, LIFEBOAT_METRICS_PORT=str(port), LIFEBOAT_METRICS_ADDRESS="127.0.0.1")
    handover(conf.state_dir, data="fresh")
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    sidecar = Sidecar.from_settings([volume], conf)
    sidecar.start()
    try:
        assert scrape(port, "/readyz")[0] == 200
        assert scrape(port, "/healthz")[0] == 200
        eventually(lambda: backups(port) == 1)
        text = scrape(port)[1]
        labels = {"namespace": "apps", "persistentvolumeclaim": "data"}
        assert metric(text, "lifeboat_backup_last_success_timestamp_seconds", **labels) == pytest.approx(
            time.time(), abs=120
        )
        assert (metric(text, "lifeboat_backup_added_bytes", **labels) or 0) > 0
        assert metric(text, "lifeboat_backup_duration_seconds_count", **labels) == 1
        assert metric(text, "lifeboat_snapshots", **labels) == 1
        assert metric(text, "lifeboat_restore_outcome", outcome="fresh", **labels) == 1
        assert metric(text, "lifeboat_restore_outcome", outcome="restored", **labels) == 0
        assert (metric(text, "lifeboat_volume_used_bytes", **labels) or 0) > 0
        assert metric(text, "lifeboat_guard_blocked", reason="conflict", **labels) == 0
        assert metric(text, "lifeboat_lock_wait_seconds_total", operation="backup", **labels) == 0
        assert "secret" not in text and "password" not in text
        # the regular job, triggered instead of waiting for its minute
        (volume.path / "more").write_text("more data")
        sidecar.scheduler.run_now("backup:data")
        eventually(lambda: backups(port) == 2)
        sidecar.scheduler.run_now("check:data")
        eventually(
            lambda: (
                metric(
                    scrape(port)[1],
                    "lifeboat_check_last_success_timestamp_seconds",
                    persistentvolumeclaim="data",
                )
                is not None
            )
        )
        sidecar.scheduler.run_now("prune:data")
        eventually(
            lambda: (
                metric(
                    scrape(port)[1],
                    "lifeboat_prune_last_success_timestamp_seconds",
                    persistentvolumeclaim="data",
                )
                is not None
            )
        )
    finally:
        sidecar.request_stop()
        finals = sidecar.shutdown()
    assert [r.result for r in finals] == ["success"]
    assert len(snapshots(seaweed, "data")) == 3


def test_a_job_never_overlaps_itself(seaweed: Store, tmp_path: Path) -> None:
    conf = settings(seaweed, tmp_path, LIFEBOAT_FINAL_BACKUP_TIMEOUT="0")
    volume = VolumeSpec("data", fill(tmp_path / "vol", files=200, size=64 * 1024), pvc_uid="uid-1")
    sidecar = Sidecar.from_settings([volume], conf)
    sidecar.start()
    try:
        for _ in range(5):
            sidecar.scheduler.run_now("backup:data")
            time.sleep(0.05)
        eventually(lambda: sidecar.metrics.backups.labels("apps", "data", "success")._value.get() >= 1)
        time.sleep(3)
    finally:
        sidecar.request_stop()
        sidecar.shutdown()
    # five triggers while the first run was busy: coalesced, never two restic backups at once
    runs = len(snapshots(seaweed, "data"))
    assert 1 <= runs <= 2


def test_scheduled_jobs_sit_at_the_volume_jittered_second(seaweed: Store, tmp_path: Path) -> None:
    conf = settings(seaweed, tmp_path, LIFEBOAT_SCHEDULE="hourly")
    volumes = [VolumeSpec(f"pvc-{i}", tmp_path / f"v{i}") for i in range(3)]
    for v in volumes:
        v.path.mkdir()
    sidecar = Sidecar.from_settings(volumes, conf)
    sidecar.start()
    try:
        seconds = {
            v.pvc: (lambda t: t.minute * 60 + t.second)(sidecar.scheduler.next_run(f"backup:{v.pvc}"))
            for v in volumes
        }
    finally:
        sidecar.stopping = True
        sidecar.scheduler.shutdown()
    assert len(set(seconds.values())) == 3

"""A Job's pod keeps its repository bounded (issue 14 item 7, docs/backup.md "Jobs and CronJobs").

Each run of a CronJob ends with the sidecar's final backup; no scheduled forget ever runs in such
a short life. With LIFEBOAT_FORGET_AT_EXIT (the injector sets it on Job pods) the final backup is
followed by `forget` with the volume's retention. Real sidecar in-process, real restic, real S3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, make, snapshots

pytestmark = pytest.mark.s3


def cron_job_runs(store: Store, tmp_path: Path, runs: int, **extra: str) -> None:
    volume = VolumeSpec("reports", fill(tmp_path / "vol", files=3), pvc_uid="uid-reports")
    for run in range(runs):
        (volume.path / f"report-{run}.txt").write_text(f"run {run}\n")
        sidecar = make(
            store,
            tmp_path / f"run-{run}",
            volume,
            outcome="fresh" if run == 0 else "skipped",
            LIFEBOAT_RETENTION="last=2",
            LIFEBOAT_FIRST_BACKUP_DELAY="3600",  # only the final backup, as in a short Job
            **extra,
        )
        sidecar.start()
        sidecar.request_stop()
        finals = sidecar.shutdown()
        assert [f.succeeded for f in finals] == [True]


def test_a_cron_jobs_final_backups_are_forgotten_by_the_retention(seaweed: Store, tmp_path: Path) -> None:
    cron_job_runs(seaweed, tmp_path, 4, LIFEBOAT_FORGET_AT_EXIT="true")
    kept = snapshots(seaweed, "reports")
    assert len(kept) == 2  # retention last=2, not one snapshot per run forever


def test_without_it_a_pods_final_backup_leaves_the_retention_to_the_schedule(
    seaweed: Store, tmp_path: Path
) -> None:
    cron_job_runs(seaweed, tmp_path, 3)
    assert len(snapshots(seaweed, "reports")) == 3

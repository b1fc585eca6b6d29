"""Every per-PVC setting stays per PVC (issue 9 item 3), on real restic + SeaweedFS.

One sidecar protects two PVCs of one pod: a scratch PVC annotated `last=1` and `adopt: "true"`, and
a database PVC with its own policy. Before the fix the pod-wide merge applied the scratch PVC's
retention and adopt to the database too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sidecar.daemon.main import Sidecar, job_specs
from sidecar.settings import build_runtime, parse_volumes
from tests.conftest import Store
from tests.support.sidecar import fill, handover, settings, snapshots

pytestmark = pytest.mark.s3


def two_volume_sidecar(store: Store, tmp_path: Path) -> Sidecar:
    conf = settings(store, tmp_path)
    handover(conf.state_dir, scratch="fresh", db="fresh")
    volumes = parse_volumes(
        [f"scratch={fill(tmp_path / 'scratch')}", f"db={fill(tmp_path / 'db', files=40, size=16384)}"],
        ["scratch=uid-scratch", "db=uid-db"],
        schedule=["db=*/10 * * * *"],
        retention=["scratch=last=1", "db=last=10"],
        adopt=["scratch=true"],
    )
    return Sidecar(build_runtime(conf, volumes))


def test_a_scratch_pvcs_last_1_never_cuts_the_database_pvcs_history(seaweed: Store, tmp_path: Path) -> None:
    sidecar = two_volume_sidecar(seaweed, tmp_path)
    scratch, db = sidecar.workers
    for i in range(3):
        for worker in (scratch, db):
            (worker.volume.path / f"new{i}").write_text(str(i))
            assert worker.backup().succeeded
    assert len(snapshots(seaweed, "scratch")) == 1
    assert len(snapshots(seaweed, "db")) == 3


def test_a_scratch_pvcs_adopt_never_turns_off_the_database_pvcs_guard(seaweed: Store, tmp_path: Path) -> None:
    sidecar = two_volume_sidecar(seaweed, tmp_path)
    scratch, db = sidecar.workers
    assert db.backup().succeeded and scratch.backup().succeeded
    for child in db.volume.path.glob("dir*"):
        shutil.rmtree(child)  # the database PVC loses most of its data
    (db.volume.path / "left").write_text("x")
    refused = db.backup()
    assert refused.result == "blocked" and refused.verdict is not None
    assert refused.verdict.reason is not None and refused.verdict.reason.value == "shrunk"


def test_each_pvc_is_scheduled_by_its_own_schedule(seaweed: Store, tmp_path: Path) -> None:
    sidecar = two_volume_sidecar(seaweed, tmp_path)
    crons = {spec.id: spec.cron for spec in job_specs(sidecar.workers, sidecar.runtime)}
    assert crons["backup:db"] == "*/10 * * * *"
    assert crons["backup:scratch"] == "0 * * * *"  # LIFEBOAT_SCHEDULE's default, hourly

"""kill -9 sweeps: a sidecar killed at any instant of a backup or a prune never leaves the
repository unusable. After each kill the next run succeeds and `restic check` finds no error.

The killed process is the sidecar's own job code (tests/sidecar_job.py) together with its restic
child, as when a container dies: every process of the tree gets SIGKILL at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sidecar.daemon.main import Sidecar, VolumeWorker
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import ROOT, check_clean, fill, handover, locks, restic, settings, snapshots

pytestmark = [pytest.mark.s3, pytest.mark.slow]

KILL_POINTS = 6


def job_env(store: Store, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **store.env(),
        "LIFEBOAT_STATE_DIR": str(tmp_path / "state"),
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        "LIFEBOAT_LOCK_RETRY": "30",
        # a pod's hostname is its name: a killed restic's lock is this pod's own (sidecar.locking)
        "LIFEBOAT_POD_NAME": socket.gethostname(),
    }


def start_job(store: Store, tmp_path: Path, job: str, volume: VolumeSpec) -> psutil.Popen:
    argv = [
        sys.executable,
        "-m",
        "tests.support.sidecar_job",
        job,
        f"{volume.pvc}={volume.path}",
        volume.pvc_uid or "",
    ]
    return psutil.Popen(
        argv, env=job_env(store, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def kill_tree(proc: psutil.Popen) -> None:
    """SIGKILL to the job and every restic it started (restic runs in a session of its own)."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    proc.wait(timeout=30)


def timed_run(store: Store, tmp_path: Path, job: str, volume: VolumeSpec) -> float:
    started = time.monotonic()
    proc = start_job(store, tmp_path, job, volume)
    assert proc.wait(timeout=300) == 0
    return time.monotonic() - started


def worker_for(store: Store, tmp_path: Path, volume: VolumeSpec) -> VolumeWorker:
    conf = settings(store, tmp_path, LIFEBOAT_POD_NAME=socket.gethostname())
    handover(conf.state_dir, **{volume.pvc: "skipped"})
    return Sidecar.from_settings([volume], conf).workers[0]


def test_kill_9_during_backup_never_leaves_the_repository_unusable(seaweed: Store, tmp_path: Path) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol", files=40, size=256 * 1024), pvc_uid="uid-1")
    (tmp_path / "state").mkdir()
    timed_run(seaweed, tmp_path, "backup", volume)  # creates the repository
    fill(volume.path / "warmup", files=20, size=128 * 1024)
    duration = timed_run(seaweed, tmp_path, "backup", volume)  # a backup like each round's
    worker = worker_for(seaweed, tmp_path / "next", volume)
    survived = 0
    for i in range(KILL_POINTS):
        fill(volume.path / f"round{i}", files=20, size=128 * 1024)  # new data for every backup
        proc = start_job(seaweed, tmp_path, "backup", volume)
        time.sleep(duration * (i + 0.3) / KILL_POINTS)
        survived += proc.poll() is not None
        kill_tree(proc)
        result = worker.backup()  # the next scheduled run: backup, then forget (clears stale locks)
        assert result.result == "success", f"kill point {i}: {result.message}"
        check_clean(seaweed, "data")
    assert locks(seaweed, "data") == []
    assert survived <= KILL_POINTS // 2  # most kills really landed mid-backup
    newest = max(snapshots(seaweed, "data"), key=lambda s: str(s["time"]))
    assert newest["summary"]["total_files_processed"] == 40 + 20 + 20 * KILL_POINTS  # type: ignore[index]


def make_garbage(store: Store, tmp_path: Path, i: int) -> None:
    """A snapshot of unique data, forgotten at once: something for prune to delete or repack."""
    junk = fill(tmp_path / f"junk{i}", files=10, size=512 * 1024)
    out = restic(store, "data", "backup", "--json", "--host", "junk", str(junk)).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    restic(store, "data", "forget", summary["snapshot_id"])


def test_kill_9_during_prune_never_leaves_the_repository_unusable(seaweed: Store, tmp_path: Path) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol", files=10, size=64 * 1024), pvc_uid="uid-1")
    (tmp_path / "state").mkdir()
    timed_run(seaweed, tmp_path, "backup", volume)
    make_garbage(seaweed, tmp_path, 0)
    duration = timed_run(seaweed, tmp_path, "prune", volume)
    worker = worker_for(seaweed, tmp_path / "next", volume)
    survived = 0
    for i in range(1, KILL_POINTS + 1):
        make_garbage(seaweed, tmp_path, i)
        proc = start_job(seaweed, tmp_path, "prune", volume)
        time.sleep(duration * (i - 0.7) / KILL_POINTS)
        survived += proc.poll() is not None
        kill_tree(proc)
        worker.own_snapshots.update(s.id for s in worker.restic.snapshots())
        result = worker.prune()
        assert result.result == "success", f"kill point {i}: {result.message}"
        check_clean(seaweed, "data")
    assert locks(seaweed, "data") == []
    assert survived <= KILL_POINTS // 2  # most kills really landed mid-prune

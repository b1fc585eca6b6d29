"""Restore drills on real restic and real S3 (docs/backup.md "Restore drills").

A drill restores the latest snapshot into scratch space, never the volume, counts files and bytes
against the snapshot's summary, and runs `PRAGMA integrity_check` on every SQLite database it finds.
Whatever it finds, it leaves the repository exactly as it was: the same objects, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from sidecar.daemon.main import Sidecar, job_specs
from sidecar.settings import VolumeSpec, parse_volumes
from tests.conftest import RESTIC, Store
from tests.support.sidecar import fill, make, metric, settings

PVC = "data"


def database(path: Path, rows: int = 2000) -> Path:
    """A SQLite database of a few dozen pages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    connection.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i} " * 8,) for i in range(rows)])
    connection.commit()
    connection.close()
    return path


def objects(store: Store) -> dict[str, tuple[int, str]]:
    """Every object of the bucket with its size and ETag: what "untouched" is checked against."""
    client = store.server.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)  # type: ignore[attr-defined]
    return {o["Key"]: (o["Size"], o["ETag"]) for page in pages for o in page.get("Contents", [])}


def sidecar(store: Store, tmp_path: Path, volume: Path, **extra: str) -> Sidecar:
    extra.setdefault("LIFEBOAT_SCRATCH_DIR", str(tmp_path / "scratch"))
    return make(store, tmp_path, VolumeSpec(PVC, volume), "fresh", **extra)


def backed_up(store: Store, tmp_path: Path, volume: Path, **extra: str) -> Sidecar:
    car = sidecar(store, tmp_path, volume, **extra)
    (worker,) = car.workers
    assert worker.backup().succeeded
    return car


def test_a_drill_of_a_good_repository_succeeds_and_counts_every_file_and_byte(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = fill(tmp_path / "volume", files=12, size=5000)
    database(volume / "app" / "app.db")
    car = backed_up(seaweed, tmp_path, volume)
    (worker,) = car.workers
    before = objects(seaweed)

    report = worker.drill()

    assert report.result == "success", report
    assert not report.sampled
    assert report.files_checked == report.files_total == 13
    assert (
        report.bytes_checked == report.bytes_total == 12 * 5000 + (volume / "app" / "app.db").stat().st_size
    )
    assert report.databases == 1 and report.databases_failed == 0
    assert objects(seaweed) == before  # no lock, no tag, nothing written
    assert not (tmp_path / "scratch" / "drill").exists()
    text = car.metrics.render().decode()
    labels = {"namespace": "apps", "persistentvolumeclaim": PVC}
    assert metric(text, "lifeboat_drill_last_result", result="success", **labels) == 1
    assert metric(text, "lifeboat_drill_last_result", result="failed", **labels) == 0
    assert (metric(text, "lifeboat_drill_last_success_timestamp_seconds", **labels) or 0) > 0
    assert metric(text, "lifeboat_drill_interval_seconds", **labels) == 7 * 86400
    assert metric(text, "lifeboat_drill_files", scope="checked", **labels) == 13


def test_a_drill_catches_a_damaged_pack_and_leaves_the_repository_untouched(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = fill(tmp_path / "volume", files=6, size=200_000)
    car = backed_up(seaweed, tmp_path, volume)
    (worker,) = car.workers
    client = seaweed.server.client()
    packs = [key for key in objects(seaweed) if f"/apps/{PVC}/data/" in key]
    for key in packs:  # flip bytes in the middle of every pack: the file contents no longer decrypt
        body = bytearray(client.get_object(Bucket=seaweed.bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]
        middle = len(body) // 2
        body[middle : middle + 64] = bytes(b ^ 0xFF for b in body[middle : middle + 64])
        client.put_object(Bucket=seaweed.bucket, Key=key, Body=bytes(body))  # type: ignore[attr-defined]
    before = objects(seaweed)

    report = worker.drill()

    assert report.result == "failed", report
    # it names the file that did not come back, and the count that does not add up
    assert any(p.startswith("restore: /dir") for p in report.problems), report.problems
    assert any("the snapshot's summary says" in p for p in report.problems), report.problems
    assert objects(seaweed) == before
    assert not (tmp_path / "scratch" / "drill").exists()
    labels = {"namespace": "apps", "persistentvolumeclaim": PVC}
    text = car.metrics.render().decode()
    assert metric(text, "lifeboat_drill_last_result", result="failed", **labels) == 1
    assert metric(text, "lifeboat_drill_last_success_timestamp_seconds", **labels) is None


def test_a_drill_names_a_damaged_database_in_the_snapshot(seaweed: Store, tmp_path: Path) -> None:
    volume = fill(tmp_path / "volume", files=3, size=1000)
    db = database(volume / "app" / "notes.db")
    with open(db, "r+b") as handle:  # garbage over two b-tree pages; the header stays
        handle.seek(4096 * 2)
        handle.write(os.urandom(4096 * 2))
    store_env = seaweed.restic_env(seaweed.repository(PVC))
    # the snapshot is taken with restic by hand: it holds the damaged file as it is
    subprocess.run([RESTIC, "init"], env=store_env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [RESTIC, "backup", "."], cwd=volume, env=store_env, check=True, capture_output=True, timeout=120
    )
    car = sidecar(seaweed, tmp_path, volume)
    (worker,) = car.workers
    before = objects(seaweed)

    report = worker.drill()

    assert report.result == "failed", report
    assert report.databases == 1 and report.databases_failed == 1
    assert any(p.startswith("database app/notes.db:") for p in report.problems), report.problems
    assert objects(seaweed) == before


def test_a_volume_larger_than_the_scratch_budget_gets_a_sampled_drill_that_states_its_sample(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = fill(tmp_path / "volume", files=30, size=64 * 1024)
    database(volume / "app" / "app.db")
    car = backed_up(seaweed, tmp_path, volume, LIFEBOAT_DRILL_SCRATCH_BUDGET=str(400 * 1024))
    (worker,) = car.workers

    report = worker.drill()

    assert report.result == "success", report
    assert report.sampled
    assert report.databases == 1  # databases come first in the sample
    assert 1 < report.files_checked < report.files_total == 31
    assert report.bytes_checked < report.bytes_total
    assert report.peak_scratch_bytes <= 400 * 1024
    text = car.metrics.render().decode()
    labels = {"namespace": "apps", "persistentvolumeclaim": PVC}
    assert metric(text, "lifeboat_drill_files", scope="total", **labels) == 31
    assert metric(text, "lifeboat_drill_files", scope="checked", **labels) == report.files_checked


def test_a_drill_with_no_snapshot_yet_is_skipped_and_proves_nothing(seaweed: Store, tmp_path: Path) -> None:
    car = sidecar(seaweed, tmp_path, fill(tmp_path / "volume", files=2))
    (worker,) = car.workers

    report = worker.drill()

    assert report.result == "skipped"
    assert seaweed.keys() == []  # the drill created no repository


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopts it, maybe late)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_during_a_drill_leaves_scratch_that_the_next_start_empties(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = fill(tmp_path / "volume", files=40, size=512 * 1024)
    car = backed_up(seaweed, tmp_path, volume)
    scratch = tmp_path / "scratch"
    (scratch / "sqlite").mkdir(parents=True)  # the backups' SQLite staging: not the drills' to empty
    (scratch / "sqlite" / "keep").write_text("x")
    job = {
        "repository": car.workers[0].volume.repository,
        "env": car.runtime.restic_env,
        "binary": RESTIC,
        "timeout": 600,
        "scratch": str(scratch / "drill"),
        "budget": 2**30,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "sidecar.drill.run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps(job))
    child.stdin.close()
    tree = scratch / "drill" / "tree"
    deadline = time.monotonic() + 60
    while not any(tree.rglob("*.bin")) and time.monotonic() < deadline:
        time.sleep(0.02)
    restics = psutil.Process(child.pid).children()
    for restic in restics:  # held still: only a kill can end it now, not the restore finishing
        restic.suspend()
    os.killpg(child.pid, signal.SIGKILL)  # the drill's process group, as the sidecar stops it
    child.wait()
    assert any(tree.rglob("*.bin"))  # killed mid-restore: its files are left behind
    _, alive = psutil.wait_procs(restics, timeout=5)
    running = [p for p in alive if _running(p)]
    for orphan in running:
        orphan.kill()
    assert not running, "restic outlived the drill's group: it would go on writing into scratch"

    sidecar(seaweed, tmp_path, volume)  # the next start

    assert not (scratch / "drill").exists()
    assert (scratch / "sqlite" / "keep").exists()


def test_each_pvc_gets_its_own_drill_schedule_and_off_means_no_drill(seaweed: Store, tmp_path: Path) -> None:
    conf = settings(seaweed, tmp_path, LIFEBOAT_SCRATCH_DIR=str(tmp_path / "scratch"))
    volumes = parse_volumes(
        [
            f"a={fill(tmp_path / 'a', files=1)}",
            f"b={fill(tmp_path / 'b', files=1)}",
            f"c={fill(tmp_path / 'c')}",
        ],
        drill=["a=off", "b=15 4 * * 1"],
    )
    car = Sidecar.from_settings(volumes, conf)
    specs = {spec.id: spec for spec in job_specs(car.workers, car.runtime)}
    assert "drill:a" not in specs
    assert specs["drill:b"].cron == "15 4 * * 1"
    assert specs["drill:c"].cron == "0 0 * * 0"  # LIFEBOAT_DRILL's default, weekly
    assert 0 <= specs["drill:c"].offset < 7 * 86400
    text = car.metrics.render().decode()
    assert metric(text, "lifeboat_drill_interval_seconds", persistentvolumeclaim="a") is None
    assert metric(text, "lifeboat_drill_interval_seconds", persistentvolumeclaim="b") == 7 * 86400


def test_a_scratch_directory_inside_the_volume_is_refused_and_the_volume_untouched(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = fill(tmp_path / "volume", files=3)
    car = backed_up(seaweed, tmp_path, volume, LIFEBOAT_SCRATCH_DIR=str(volume / "scratch"))
    (worker,) = car.workers

    report = worker.drill()

    assert report.result == "skipped" and "overlaps volume data" in report.reason
    assert not (volume / "scratch").exists()


def test_a_drill_waits_for_the_volumes_backup_and_never_runs_beside_it(
    seaweed: Store, tmp_path: Path
) -> None:
    car = backed_up(seaweed, tmp_path, fill(tmp_path / "volume", files=3))
    (worker,) = car.workers
    reports: list[object] = []
    with worker.mutex:  # what a running backup, prune or check holds
        thread = threading.Thread(target=lambda: reports.append(worker.drill()))
        thread.start()
        time.sleep(1.5)
        assert not (tmp_path / "scratch" / "drill").exists() and reports == []
    thread.join(timeout=120)
    assert [getattr(r, "result", None) for r in reports] == ["success"]


def test_stopping_the_sidecar_stops_a_running_drill_and_empties_scratch(
    seaweed: Store, tmp_path: Path
) -> None:
    car = backed_up(seaweed, tmp_path, fill(tmp_path / "volume", files=60, size=512 * 1024))
    (worker,) = car.workers
    reports: list[object] = []
    thread = threading.Thread(target=lambda: reports.append(worker.drill()))
    thread.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "scratch" / "drill").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.restic.cancel.set()  # what shutdown() does to running work
    thread.join(timeout=30)
    assert [getattr(r, "result", None) for r in reports] == ["cancelled"]
    assert not (tmp_path / "scratch" / "drill").exists()

"""Live SQLite databases back up as one committed state each, and restore intact at their own path.

Real `lifeboat backup`/`lifeboat restore` executables, real restic, real SeaweedFS; the app is a
writer thread committing transfers and 16 KiB rows (tests/support/sqlite_app.py) while the backups
run. bench/sqlite_consistency.py runs the same at a few hundred snapshots and without the capture.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import sqlite_app
from lifeboat.exitcodes import EX_OK
from sidecar.backup.guarded import CapturePolicy, GuardPolicy, guarded_backup
from sidecar.edges import capture
from sidecar.edges.restic import Restic
from sidecar.runtime import VolumeTarget
from tests.conftest import RESTIC, Store
from tests.support import processes
from tests.support.lifeboat_cli import LIFEBOAT, lifeboat, restic, snapshots

pytestmark = pytest.mark.s3

COMPANIONS = ("-wal", "-shm", "-journal")


def app_volume(root: Path) -> Path:
    """A volume like an app's: a WAL database, a rollback-journal one deeper down, plain files."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "settings.json").write_text('{"theme": "dark"}\n')
    sqlite_app.create(root / "db.sqlite3", "wal")
    sqlite_app.create(root / "data" / "nested" / "library.db", "delete", mode=0o600)
    return root


def restore_each(store: Store, snapshot_ids: list[str], tmp: Path) -> dict[str, list[str]]:
    """Every snapshot restored with restic and placed as `lifeboat restore` places it: problems by id."""
    problems: dict[str, list[str]] = {}
    repository = store.repository("data")
    for sid in snapshot_ids:
        target = tmp / f"restored-{sid[:8]}"
        restic(store, repository, "restore", sid, "--target", str(target), "--no-lock")
        capture.place(target)
        found = [  # before anything opens them (opening a WAL database makes its -wal and -shm)
            f"stale companion {name}"
            for base in (target / "db.sqlite3", target / "data" / "nested" / "library.db")
            for name in (base.name + s for s in COMPANIONS)
            if (base.parent / name).exists()
        ]
        found += [
            *(f"db.sqlite3: {p}" for p in sqlite_app.verify(target / "db.sqlite3")),
            *(f"library.db: {p}" for p in sqlite_app.verify(target / "data" / "nested" / "library.db")),
        ]
        if found:
            problems[sid] = found
    return problems


def test_live_databases_in_both_journal_modes_restore_whole_from_every_snapshot(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = app_volume(tmp_path / "data")
    writers = [
        sqlite_app.Writer(volume / "db.sqlite3").start(),
        sqlite_app.Writer(volume / "data" / "nested" / "library.db").start(),
    ]
    try:
        for i in range(8):
            run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / f"run-{i}")
            assert run.code == EX_OK, run.stderr
            (captured,) = run.events("sqlite.captured")
            assert captured["databases"] == 2 and captured["failed"] == 0
    finally:
        for writer in writers:
            writer.stop()
    assert all(w.commits > 10 and not w.errors for w in writers), [(w.commits, w.errors) for w in writers]
    ids = [s["id"] for s in snapshots(seaweed, seaweed.repository("data"))]
    assert len(ids) == 8
    assert restore_each(seaweed, ids, tmp_path) == {}  # 0 torn out of 16 database copies


def test_the_restored_database_sits_at_its_path_with_its_mode_and_nothing_beside_it(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = app_volume(tmp_path / "data")
    writer = sqlite_app.Writer(volume / "db.sqlite3").start()
    try:
        assert lifeboat("backup", seaweed, {"data": volume}, tmp_path / "backup").code == EX_OK
    finally:
        writer.stop()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run = lifeboat("restore", seaweed, {"data": fresh}, tmp_path / "restore")
    assert run.code == EX_OK, run.stderr
    assert run.outcome("data")["outcome"] == "restored"
    assert sorted(os.listdir(fresh)) == ["config", "data", "db.sqlite3"]  # no .lifeboat-sqlite, no -wal
    assert sorted(os.listdir(fresh / "data" / "nested")) == ["library.db"]
    assert sqlite_app.verify(fresh / "db.sqlite3") == []
    assert sqlite_app.verify(fresh / "data" / "nested" / "library.db") == []
    assert (os.stat(fresh / "data" / "nested" / "library.db").st_mode & 0o777) == 0o600
    assert (os.stat(fresh / "db.sqlite3").st_mode & 0o777) == 0o640
    assert not any((tmp_path / ".lifeboat-sqlite").glob("*"))  # staging emptied


def test_a_database_locked_past_the_busy_wait_is_stored_as_is_and_the_backup_says_so(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = app_volume(tmp_path / "data")
    # another process, as the app is: POSIX locks are per process, and any close() of the file in
    # the locking process (the survey reads its header) would drop them
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(volume / "data" / "nested" / "library.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = seaweed.restic_env(seaweed.repository("data"))
        subprocess.run([RESTIC, "init"], env=env, check=True, capture_output=True)
        secrets = {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD")}
        result = guarded_backup(
            "apps",
            VolumeTarget("data", volume, None, seaweed.repository("data")),
            Restic(repository=seaweed.repository("data"), env=secrets, binary=RESTIC),
            outcome="fresh",
            policy=GuardPolicy(),
            ensure=lambda: (False, 0, ""),
            lock_patience=5,
            capture_policy=CapturePolicy(busy_seconds=0.5, timeout=60),
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.result == "incomplete", result
    assert "data/nested/library.db" in result.message
    assert [c.path for c in result.capture.captured] == ["db.sqlite3"]
    (failed,) = result.capture.failed
    assert "locked" in failed.reason
    assert len(snapshots(seaweed, seaweed.repository("data"))) == 1  # stored, and said so


def test_kill_9_during_a_capture_leaves_the_volume_untouched_and_the_next_backup_clean(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = tmp_path / "data"
    volume.mkdir()
    big = volume / "big.db"
    connection = sqlite3.connect(big, isolation_level=None)
    connection.execute("CREATE TABLE blobs (b BLOB)")
    connection.execute("BEGIN")
    for _ in range(1500):  # ~200 MiB: the capture takes a while
        connection.execute("INSERT INTO blobs VALUES (randomblob(131072))")
    connection.execute("COMMIT")
    connection.close()
    before = sorted(os.listdir(volume))
    env = {**os.environ, **seaweed.env(RESTIC_CACHE_DIR=str(tmp_path / "cache"))}
    env["LIFEBOAT_STATE_DIR"] = str(tmp_path / "state")
    job = subprocess.Popen(
        [LIFEBOAT, "backup", "--volume", f"data={volume}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    staging = tmp_path / ".lifeboat-sqlite"
    deadline = time.monotonic() + 120
    while not any(staging.glob("data.*/*")) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert sorted(os.listdir(volume)) == before  # nothing of ours ever sits on the volume
    assert not _captures_writing_into(staging, within=10.0)  # the capture child died with its parent
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "again", timeout=600)
    assert run.code == EX_OK, run.stderr
    assert not any(staging.glob("*"))  # the killed run's staging too


def _captures_writing_into(staging: Path, *, within: float) -> list[list[str]]:
    """This test's processes naming its staging still alive after `within` seconds."""
    deadline = time.monotonic() + within
    while (alive := processes.naming(staging)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def test_a_live_postgres_data_directory_is_reported_as_not_consistent(seaweed: Store, tmp_path: Path) -> None:
    volume = tmp_path / "data"
    (volume / "pgdata" / "global").mkdir(parents=True)
    (volume / "pgdata" / "PG_VERSION").write_text("16\n")
    (volume / "pgdata" / "global" / "pg_control").write_bytes(b"\0" * 8192)
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "run")
    assert run.code == EX_OK, run.stderr
    (reported,) = run.events("volume.live_server_database")
    assert reported["engine"] == "postgresql" and reported["path"] == "pgdata"
    assert "not consistent" in reported["explanation"]


def test_a_volume_without_databases_pays_for_no_capture(seaweed: Store, tmp_path: Path) -> None:
    volume = tmp_path / "data"
    volume.mkdir()
    (volume / "notes.txt").write_text("no database here\n")
    run = lifeboat("backup", seaweed, {"data": volume}, tmp_path / "run")
    assert run.code == EX_OK, run.stderr
    assert run.events("sqlite.captured") == []
    (snap,) = snapshots(seaweed, seaweed.repository("data"))
    assert snap["paths"] == [str(volume)]


def test_a_database_that_fails_its_capture_does_not_fail_the_others(tmp_path: Path) -> None:
    volume = tmp_path / "data"
    sqlite_app.create(volume / "good.db", "wal")
    (volume / "torn.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)  # a header and garbage
    result = capture.capture(volume, "data", ["good.db", "torn.db"], busy_seconds=1, timeout=60)
    assert [c.path for c in result.captured] == ["good.db"]
    (failed,) = result.failed
    assert failed.path == "torn.db" and failed.reason
    assert sorted(os.listdir(capture.staging_dir(volume, "data"))) == ["good.db"]
    assert result.targets == (f"../.lifeboat-sqlite/data.{os.getpid()}",)
    capture.clean(capture.staging_dir(volume, "data"))


def test_a_wal_database_nobody_has_open_is_captured_without_a_file_appearing_beside_it(
    tmp_path: Path,
) -> None:
    volume = tmp_path / "data"
    sqlite_app.create(volume / "app.db", "wal")  # closed: its last connection removed -wal and -shm
    before = sorted(os.listdir(volume))
    result = capture.capture(volume, "data", ["app.db"], busy_seconds=1, timeout=60)
    assert [c.path for c in result.captured] == ["app.db"]
    assert sorted(os.listdir(volume)) == before == ["app.db"]  # opening it would have made -wal, -shm
    assert sqlite_app.verify(capture.staging_dir(volume, "data") / "app.db") == []
    capture.clean(capture.staging_dir(volume, "data"))

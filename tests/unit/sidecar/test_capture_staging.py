"""Finding databases on a volume, and putting captured copies back where they came from."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sidecar.edges import capture
from sidecar.edges.usage import survey


def database(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    return path


def test_databases_are_found_by_their_header_anywhere_whatever_their_name(tmp_path: Path) -> None:
    database(tmp_path / "config" / "deep" / "store")  # no extension
    database(tmp_path / "app.db")
    (tmp_path / "fake.db").write_bytes(b"not a database" * 100)
    (tmp_path / "short.sqlite").write_bytes(b"SQLite format 3\x00" + b"x" * 100)  # not whole pages
    found = survey(tmp_path)
    assert found.databases == ("app.db", "config/deep/store")
    assert found.facts.files == 4


def test_server_data_directories_are_recognised_by_their_marker_files(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("16\n")
    (tmp_path / "mysql").mkdir()
    (tmp_path / "mysql" / "ibdata1").write_bytes(b"\0" * 16)
    (tmp_path / "mongo").mkdir()
    (tmp_path / "mongo" / "WiredTiger").write_text("WiredTiger\n")
    assert survey(tmp_path).servers == (("mongo", "mongodb"), ("mysql", "mysql"), ("pg", "postgresql"))


def test_excludes_name_each_database_and_its_companions_literally(tmp_path: Path) -> None:
    patterns = capture.excludes_for(tmp_path, ["odd [1]*.db"])
    root = os.path.realpath(tmp_path)
    assert patterns[0] == f"{root}/odd \\[1\\]\\*.db"
    assert [p.rsplit(".db", 1)[1] for p in patterns] == ["", "-wal", "-shm", "-journal"]


def test_placing_moves_each_copy_to_its_path_and_drops_companions_from_another_instant(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "app.db-wal").write_text("stale")
    staged = tree / ".lifeboat-sqlite" / "pvc" / "data"
    staged.mkdir(parents=True)
    (staged / "app.db").write_text("captured")
    os.utime(tree / "data", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert capture.place(tree) == ["data/app.db"]
    assert sorted(os.listdir(tree)) == ["data"]
    assert sorted(os.listdir(tree / "data")) == ["app.db"]
    assert (tree / "data" / "app.db").read_text() == "captured"
    assert os.stat(tree / "data").st_mtime_ns == 1_600_000_000_000_000_000  # as restic restored it
    assert capture.place(tree) == []  # nothing staged: nothing to do


def test_a_volume_with_nothing_to_capture_gets_no_staging_and_no_extra_target(tmp_path: Path) -> None:
    result = capture.capture(tmp_path / "data", "data", [], busy_seconds=1, timeout=5)
    assert result.targets == () and result.excludes == () and result.staging is None
    assert not (tmp_path / ".lifeboat-sqlite").exists()

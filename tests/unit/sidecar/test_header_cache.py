"""The SQLite header check of the volume walk is done once per file version (sidecar.edges.usage)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sidecar.edges.usage import HeaderCache, survey


def _database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()


def test_an_unchanged_file_is_answered_from_the_cache_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "plain.bin").write_bytes(b"x" * 1024)
    headers = HeaderCache()
    assert survey(tmp_path, headers=headers).databases == ()
    inode = os.stat(tmp_path / "plain.bin").st_ino
    size, mtime, ctime, _ = headers.seen[inode]
    headers.seen[inode] = (size, mtime, ctime, True)  # what the cache says is what the walk reports
    assert survey(tmp_path, headers=headers).databases == ("plain.bin",)


def test_a_file_rewritten_in_place_as_a_database_is_found_on_the_next_walk(tmp_path: Path) -> None:
    target = tmp_path / "app.data"
    target.write_bytes(b"x" * 4096)
    headers = HeaderCache()
    assert survey(tmp_path, headers=headers).databases == ()
    _database(tmp_path / "made.db")
    with open(target, "r+b") as handle:  # same inode, same size: only the times say it changed
        handle.write((tmp_path / "made.db").read_bytes()[:4096])
    os.utime(target, ns=(0, os.stat(tmp_path / "made.db").st_mtime_ns - 10**9))
    assert survey(tmp_path, headers=headers).databases == ("app.data", "made.db")


def test_files_gone_from_the_volume_leave_the_cache(tmp_path: Path) -> None:
    _database(tmp_path / "a.db")
    headers = HeaderCache()
    assert survey(tmp_path, headers=headers).databases == ("a.db",)
    (tmp_path / "a.db").unlink()
    assert survey(tmp_path, headers=headers).databases == ()
    assert headers.seen == {}

"""An app that keeps its state in SQLite and writes all the time, as Vaultwarden or the *arr apps do.

Each transaction moves one unit between two accounts (their sum must always be 2,000) and adds a
few 16 KiB rows: a copy taken mid-transaction shows up as a wrong sum, a failed
`integrity_check`, or a database that will not open. Used by the capture tests and
bench/sqlite_consistency.py.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TOTAL = 2000


def create(path: Path, journal_mode: str, *, mode: int = 0o640) -> None:
    """A new database in `journal_mode` (wal or delete) with two accounts holding 1,000 each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA journal_mode={journal_mode}")
        connection.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        connection.execute("INSERT INTO accounts VALUES (1, 1000), (2, 1000)")
    finally:
        connection.close()
    os.chmod(path, mode)


def verify(path: Path) -> list[str]:
    """What is wrong with a restored copy: [] when it opens, is sound and its sum is whole."""
    if not path.exists():
        return [f"{path} is missing"]
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            checked = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
            total = connection.execute("SELECT sum(balance) FROM accounts").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return [f"{type(exc).__name__}: {exc}"]
    problems = [] if checked == ["ok"] else checked
    if total != TOTAL:
        problems.append(f"accounts sum to {total}, not {TOTAL}: a torn transaction")
    return problems


@dataclass
class Writer:
    """A thread committing transfers and 16 KiB rows to one database, about `rate` per second."""

    path: Path
    rate: float = 20.0
    rows: int = 3
    keep: int | None = None  # delete all but the newest `keep` rows in each transaction (bounded size)
    commits: int = 0
    longest_commit: float = 0.0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=120)
        pause = 1.0 / self.rate
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    connection.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
                    for _ in range(self.rows):
                        connection.execute("INSERT INTO rows (payload) VALUES (randomblob(16384))")
                    connection.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2")
                    if self.keep is not None:
                        connection.execute(
                            "DELETE FROM rows WHERE id <= (SELECT max(id) FROM rows) - ?", (self.keep,)
                        )
                    connection.execute("COMMIT")
                    self.commits += 1
                except sqlite3.Error as exc:
                    self.errors.append(str(exc))
                    connection.execute("ROLLBACK") if connection.in_transaction else None
                self.longest_commit = max(self.longest_commit, time.monotonic() - started)
                self._stop.wait(pause)
        finally:
            connection.close()

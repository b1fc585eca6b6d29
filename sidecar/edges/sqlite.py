"""SQLite databases, read through SQLite's own locking: capture for backups, integrity checks.

Why: restic reads a volume's files while the app writes. A database file copied byte by byte in the
middle of a transaction (or its `-wal` copied at another instant than the main file) restores to
"database disk image is malformed". SQLite's online backup API copies a database under a read
transaction, so the copy is one committed state whatever the journal mode: in WAL mode writers go
on meanwhile; in rollback-journal mode they wait only for the copy itself (one `backup` step).

The source is opened read-only (`mode=ro`): the capture never writes the volume, never checkpoints
the app's WAL, never rolls back its hot journal. Everything here runs in a short-lived child
process (`python -m sidecar.edges.sqlite capture ...`): the sidecar's idle process never loads
sqlite3, and a capture that hangs is killed with its process. The child prints one JSON line per
database; see sidecar.backup.capture for the parent side.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sqlite3
import sys
import time
import urllib.parse
from pathlib import Path

# files SQLite keeps beside a database: never copied from another instant than the database's own
COMPANIONS = ("-wal", "-shm", "-journal")
# (finding databases, by their header, is sidecar.edges.usage's walk: light enough for the daemon)


def _read_only(path: Path, busy_seconds: float) -> sqlite3.Connection:
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=busy_seconds, isolation_level=None)


def capture(source: Path, target: Path, *, busy_seconds: float) -> dict[str, object]:
    """Copies one committed state of `source` to `target` (same mode, owner and mtime), durably.

    Returns what happened as plain data: `status` `captured` (with `seconds`, `bytes`, `hold_seconds`:
    how long the source's read lock was held, the longest a rollback-mode writer waited on us) or
    `failed` (with `reason`). Never raises for SQLite trouble: a locked or corrupt source is reported.
    """
    started = time.monotonic()
    partial = target.with_name(target.name + ".partial")
    try:
        info = os.stat(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        hold = 0.0
        if _is_wal(source) and not os.path.exists(f"{source}-shm"):
            # nobody has it open (a WAL connection keeps the -shm): opening it, even read-only,
            # would create a -wal and -shm owned by us beside the app's database
            if os.path.exists(f"{source}-wal"):
                raise OSError(0, "a WAL database with a -wal but no -shm: open it with its app first")
            _copy_at_rest(source, partial)
        else:
            hold = _backup(source, partial, busy_seconds)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(partial, info.st_mode & 0o7777)
        os.utime(partial, ns=(info.st_atime_ns, info.st_mtime_ns))
        # last: once the app's user owns it, mode and times are no longer ours to set (no FOWNER).
        # Not root: restic stores this process's owner; the restore runs as the app's user anyway
        with contextlib.suppress(PermissionError):
            os.chown(partial, info.st_uid, info.st_gid)
        os.replace(partial, target)
        return {
            "status": "captured",
            "bytes": os.stat(target).st_size,
            "seconds": round(time.monotonic() - started, 4),
            "hold_seconds": round(hold, 4),
        }
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def _is_wal(path: Path) -> bool:
    """The header's read/write versions (offsets 18, 19) are 2 in WAL mode."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def _backup(source: Path, partial: Path, busy_seconds: float) -> float:
    """The online backup API: returns how long the source's read lock was held."""
    src = _read_only(source, busy_seconds)
    try:
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            held = time.monotonic()
            # the read transaction first: it honours the busy timeout (Connection.backup itself
            # would retry a locked source forever), and the backup step then copies inside it
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst)  # pages=-1: one step, in that transaction: one committed state
            src.execute("COMMIT")
            return time.monotonic() - held
        finally:
            dst.close()
    finally:
        src.close()


def _copy_at_rest(source: Path, partial: Path, attempts: int = 3) -> None:
    """A WAL database nobody has open is one committed state: its bytes, if nothing changed them.

    A writer would first create the -wal (in WAL mode commits never go to the database file
    directly), so a copy taken while the file's identity, size and times stayed the same and no
    -wal appeared is the database at rest.
    """

    def identity() -> tuple[int, int, int, int, bool]:
        info = os.stat(source)
        wal = os.path.exists(f"{source}-wal")
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, wal)

    for _ in range(attempts):
        before = identity()
        shutil.copyfile(source, partial)
        if identity() == before and not before[4]:
            return
    raise OSError(0, f"the database changed during {attempts} copies at rest")


def integrity_check(path: Path, *, max_errors: int = 20) -> list[str]:
    """`PRAGMA integrity_check` on a database at rest (a restored copy): [] when it is sound."""
    try:
        connection = _read_only(path, 5.0)
        try:
            rows = connection.execute(f"PRAGMA integrity_check({int(max_errors)})").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return [f"{type(exc).__name__}: {exc}"]
    messages = [str(row[0]) for row in rows]
    return [] if messages == ["ok"] else messages


def _die_with_parent(parent: int | None) -> None:
    """A capture outliving its backup (kill -9) would write into staging the next backup uses.

    The parent names itself (`--parent`): a parent killed while this interpreter was still starting,
    before it could ask for the signal, is then seen as gone, not mistaken for the reaper.
    """
    expected = parent or os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != expected:  # the parent died before the request took effect
        sys.exit(1)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.edges.sqlite")
    parser.add_argument("--parent", type=int, help="the pid of the backup that started this capture")
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="capture the databases named on stdin (JSON list, relative to ROOT)")
    cap.add_argument("root", type=Path)
    cap.add_argument("staging", type=Path)
    cap.add_argument("--busy-seconds", type=float, default=30.0)
    check = sub.add_parser("check", help="integrity_check the databases named on stdin (JSON list)")
    check.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # paths come on stdin, not argv: any file name is a path (even "-x"), none is an option
    names = [str(name) for name in json.load(sys.stdin)]
    if args.command == "capture":
        for rel in names:
            result = capture(args.root / rel, args.staging / rel, busy_seconds=args.busy_seconds)
            print(json.dumps({"path": rel, **result}), flush=True)
    else:
        for rel in names:
            print(json.dumps({"path": rel, "errors": integrity_check(args.root / rel)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""What is on a volume, measured the way restic will see it: regular files and their bytes.

The guard compares these numbers with the newest snapshot's summary (`total_files_processed`,
`total_bytes_processed`), so they are counted like restic counts them: regular files, apparent size,
one file system, `lost+found` at the root ignored (a freshly formatted volume has it and is empty).
`filesystem_used_bytes()` is the other number: what the file system reports, for the metric.

The same walk finds what the backup must treat specially (`survey`): SQLite databases, by their
16-byte header (captured through SQLite's own locking, sidecar.backup.capture), and the data
directories of live database servers (PostgreSQL, MySQL/MariaDB, MongoDB), whose file-level copy
is not consistent and is reported as such. Only files whose size could be a database are opened,
and (with a `HeaderCache` kept by the caller between walks) only when new or changed since the
last walk: an hourly backup of 10,000 unchanged files then opens none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sidecar.backup.guard import VolumeFacts

IGNORED_AT_ROOT = frozenset({"lost+found"})
SQLITE_HEADER = b"SQLite format 3\x00"
# a file that marks a live server's data directory, and the engine it belongs to
SERVER_MARKERS = {
    "PG_VERSION": "postgresql",
    "ibdata1": "mysql",
    "aria_log_control": "mysql",
    "WiredTiger": "mongodb",
}


@dataclass(frozen=True)
class Survey:
    """One walk of a volume: the guard's numbers, the SQLite databases, the server data dirs.

    Paths are relative to the volume root, sorted. `servers` pairs a directory with its engine.
    """

    facts: VolumeFacts
    databases: tuple[str, ...] = ()
    servers: tuple[tuple[str, str], ...] = ()


@dataclass
class HeaderCache:
    """What the last walk learned of each file's first 16 bytes, by inode.

    A file whose inode, size, mtime and ctime are all unchanged has the same header (any write
    moves mtime, and setting mtime back moves ctime), so it is not opened again. Each walk keeps
    only the files it saw: a deleted file's entry goes with it."""

    seen: dict[int, tuple[int, int, int, bool]] = field(default_factory=dict)


def is_sqlite_file(path: str, size: int) -> bool:
    """SQLite's 16-byte magic at the start of a file of whole pages (>= 512 bytes, a multiple of 512)."""
    if size < 512 or size % 512:
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def measure(root: Path) -> VolumeFacts:
    """Counts regular files and bytes under `root` without following symlinks or mounts."""
    return survey(root, databases=False).facts


def survey(root: Path, *, databases: bool = True, headers: HeaderCache | None = None) -> Survey:
    """Counts files and bytes like `measure`, and (with `databases`) finds SQLite and server data.

    `headers` (kept by the caller between walks of this volume) spares reopening unchanged files."""
    files = size = 0
    known = headers.seen if headers is not None else {}
    seen: dict[int, tuple[int, int, int, bool]] = {}
    found: list[str] = []
    servers: dict[str, str] = {}
    root_dev = os.lstat(root).st_dev
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue  # vanished or unreadable: restic will report it, the guard need not
        with entries:
            for entry in entries:
                if directory == str(root) and entry.name in IGNORED_AT_ROOT:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if info.st_dev == root_dev:
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    size += info.st_size
                    if not databases:
                        continue
                    if entry.name in SERVER_MARKERS:
                        servers.setdefault(os.path.relpath(directory, root), SERVER_MARKERS[entry.name])
                    stamp = (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
                    before = known.get(info.st_ino)
                    if before is not None and before[:3] == stamp:
                        sqlite = before[3]
                    else:
                        sqlite = is_sqlite_file(entry.path, info.st_size)
                    seen[info.st_ino] = (*stamp, sqlite)
                    if sqlite:
                        found.append(os.path.relpath(entry.path, root))
    if headers is not None and databases:
        headers.seen = seen
    return Survey(
        facts=VolumeFacts(files=files, bytes=size),
        databases=tuple(sorted(found)),
        servers=tuple(sorted(servers.items())),
    )


def filesystem_used_bytes(root: Path) -> int | None:
    """Bytes used on the file system holding `root` (psutil), None if it cannot be asked."""
    try:
        return int(psutil.disk_usage(str(root)).used)
    except OSError:
        return None

"""The volume edge: is it empty, who may restore into it, and a crash-safe way to fill it.

A restore never writes into the volume's root until the whole snapshot is on disk. restic
restores into a work directory on the same volume (`.lifeboat-restore/tree`, so no extra space
and no cross-device copy); a commit record is then written atomically; only then are the
top-level entries renamed into place, each rename atomic. A crash before the commit record leaves
a volume that still counts as empty (the work directory is Lifeboat's own transient item), so a
rerun starts the download again; a crash after it leaves a *pending* volume, and a rerun finishes
the renames. The app container only starts after the init container exits 0, so it never sees a
partial volume either way. When done, nothing of Lifeboat's is left on the volume (rule 7).

Two restores racing on one RWX volume serialise on an flock of the volume's root directory: no
lock file is left behind, and the second finds data and skips.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sidecar.restore.decision import VolumeState

WORK_DIR = ".lifeboat-restore"
IGNORED = frozenset({"lost+found"})
_COMMIT = "commit.json"
_TREE = "tree"


class VolumeError(Exception):
    """The volume cannot be used as asked (not a directory, name clash, ...)."""


def work_dir(root: Path) -> Path:
    return root / WORK_DIR


def tree_dir(root: Path) -> Path:
    return root / WORK_DIR / _TREE


def inspect(root: Path) -> VolumeState:
    """EMPTY, HAS_DATA or PENDING; raises VolumeError when the mount is missing."""
    if not root.is_dir():
        raise VolumeError(f"{root} is not a directory: is the volume mounted there?")
    if (work_dir(root) / _COMMIT).is_file():
        return VolumeState.PENDING
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name not in IGNORED and entry.name != WORK_DIR:
                return VolumeState.HAS_DATA
    return VolumeState.EMPTY


def usage(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`, Lifeboat's work directory excluded."""
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and WORK_DIR in dirnames:
            dirnames.remove(WORK_DIR)
        for name in filenames:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
    return files, size


@contextlib.contextmanager
def exclusive(root: Path, on_wait: Any = None) -> Iterator[None]:
    """Holds an exclusive flock on the volume's root directory (no lock file is created)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def prepare(root: Path) -> Path:
    """Creates (or reuses) the work directory and returns where restic should restore to."""
    tree = tree_dir(root)
    tree.mkdir(parents=True, exist_ok=True)
    os.chmod(work_dir(root), 0o700)
    return tree


def discard(root: Path) -> None:
    """Removes an uncommitted work directory: only Lifeboat's own half-finished download."""
    if (work_dir(root) / _COMMIT).exists():
        raise VolumeError("refusing to discard a committed restore; it must be completed")
    if work_dir(root).exists():
        shutil.rmtree(work_dir(root))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(root: Path, record: dict[str, Any]) -> None:
    """Marks the download complete: from here on a rerun finishes instead of starting over."""
    clash = tree_dir(root) / WORK_DIR
    if clash.exists():
        raise VolumeError(f"the snapshot itself contains {WORK_DIR!r}; it cannot be restored in place")
    os.sync()  # the data must be durable before the record that says it is complete
    tmp = work_dir(root) / (_COMMIT + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, work_dir(root) / _COMMIT)
    _fsync_dir(work_dir(root))


def committed(root: Path) -> dict[str, Any]:
    """The commit record of a pending restore."""
    with open(work_dir(root) / _COMMIT) as handle:
        value = json.load(handle)
    return value if isinstance(value, dict) else {}


def move_in(root: Path) -> None:
    """Renames the restored tree's entries into the volume root, then removes the work dir.

    Idempotent: entries already moved are gone from the tree, so a rerun moves the rest.
    """
    tree = tree_dir(root)
    if tree.exists():
        with os.scandir(tree) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            target = root / name
            if os.path.lexists(target):
                if name in IGNORED:
                    # the volume's own lost+found wins over the snapshot's copy of one
                    shutil.rmtree(tree / name, ignore_errors=True)
                    continue
                raise VolumeError(f"{target} appeared during the restore; refusing to overwrite it")
            os.rename(tree / name, target)
        _fsync_dir(root)
    os.remove(work_dir(root) / _COMMIT)
    shutil.rmtree(work_dir(root), ignore_errors=True)
    _fsync_dir(root)

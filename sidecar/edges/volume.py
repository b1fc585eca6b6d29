"""The volume edge: is it empty, who may restore into it, and a crash-safe way to fill it.

A restore never writes into the volume's root until the whole snapshot is on disk. restic
restores into a work directory on the same volume (`.lifeboat-restore/tree`, so no extra space
and no cross-device copy); a commit record is then written atomically; only then are the
top-level entries renamed into place, each rename atomic. A crash before the commit record leaves
a volume that still counts as empty (the work directory is Lifeboat's own transient item), so a
rerun starts the download again; a crash after it leaves a *pending* volume, and a rerun finishes
the renames. The app container only starts after the init container exits 0, so it never sees a
partial volume either way. When done, nothing of Lifeboat's is left on the volume (rule 7).

Two restores racing on one RWX volume serialise twice: on an flock of the volume's root
directory (fast, but only within one kernel: it does not exclude across NFS clients), and on a
lease, an atomic `mkdir` of `.lifeboat-restore/lease` that holds on network file systems too. The
holder refreshes the lease's mtime while it restores; a lease not refreshed for `LEASE_STALE`
seconds (its holder died on another node) is broken by the next restorer. Both are gone when the
restore is done: the second restorer finds data and skips.

A non-root restore (no CAP_DAC_OVERRIDE) can neither rename a directory it may not write into
to another parent (the kernel must update its `..`) nor list a root owned by someone else; the
first is handled by lending such directories owner write permission for the rename (recorded
first, so a rerun puts the mode back), the second by `check_readable`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sidecar.restore.decision import VolumeState

WORK_DIR = ".lifeboat-restore"
IGNORED = frozenset({"lost+found"})
_COMMIT = "commit.json"
_TREE = "tree"
_MODES = "modes.json"  # read-only directories lent owner write for their rename: name -> mode
_LEASE = "lease"
_HOLDER = "holder.json"
LEASE_STALE = 600.0  # seconds without a heartbeat after which a lease is broken
OWNER_FIX = (
    "run the restore as the data's owner: set the pod's securityContext runAsUser (and fsGroup) "
    "to the uid/gid that owns the volume's data"
)


class VolumeError(Exception):
    """The volume cannot be used as asked (not a directory, name clash, ...)."""


class VolumeUnreadable(Exception):
    """The restore may not look at the volume; retrying as the same user will not help."""


def work_dir(root: Path) -> Path:
    return root / WORK_DIR


def tree_dir(root: Path) -> Path:
    return root / WORK_DIR / _TREE


def check_readable(root: Path) -> VolumeState | None:
    """None when the root can be listed; HAS_DATA when it cannot but positively holds data.

    A root this process may not list (e.g. 0700 and owned by another uid) must never count as
    empty. Its link count still tells: a directory has 2 + (number of subdirectories) links, so
    more than 4 means a subdirectory besides `lost+found` and `.lifeboat-restore`: data. Anything
    else raises VolumeUnreadable, naming the fix.
    """
    if not root.is_dir():
        raise VolumeError(f"{root} is not a directory: is the volume mounted there?")
    try:
        with os.scandir(root) as entries:
            for _ in entries:
                break
    except PermissionError as exc:
        info = os.stat(root)
        if info.st_nlink > 2 + len(IGNORED) + 1:
            return VolumeState.HAS_DATA
        raise VolumeUnreadable(
            f"cannot look into the volume at {root} (mode {stat.filemode(info.st_mode)}, owner "
            f"{info.st_uid}:{info.st_gid}, this process {os.geteuid()}:{os.getegid()}): {exc.strerror}; "
            f"{OWNER_FIX}"
        ) from None
    return None


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


# -- exclusion: flock (one kernel) and a mkdir lease (any file system) --------------------------


def default_holder() -> str:
    """Who holds a lease: the pod (its hostname), which an init-container restart keeps."""
    return socket.gethostname() or "unknown"


def _lease_dir(root: Path) -> Path:
    return root / WORK_DIR / _LEASE


def _read_holder(lease: Path) -> dict[str, Any]:
    try:
        value = json.loads((lease / _HOLDER).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _try_take_lease(root: Path, holder: str, token: str) -> bool:
    """One attempt: True when this call placed the lease. The lease is built aside, holder record
    included, and renamed into place: rename onto an existing (never empty) lease fails, so it
    is atomic and the lease is never seen without its holder, on NFS too."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(work_dir(root))
    staged = work_dir(root) / f"{_LEASE}.new-{token}"
    try:
        os.mkdir(staged)
        (staged / _HOLDER).write_text(json.dumps({"holder": holder, "token": token, "pid": os.getpid()}))
        os.rename(staged, _lease_dir(root))
    except FileNotFoundError:  # the work directory vanished under us: try again
        return False
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        shutil.rmtree(staged, ignore_errors=True)
        return False
    return True


def _break_if_stale(root: Path, holder: str, stale_after: float, now: float) -> bool:
    """Breaks a lease left by this same holder (an earlier run of this pod) or not refreshed for
    `stale_after` seconds. The break renames the lease aside first, so two breakers cannot both
    remove a lease that a third party has just taken: the one that finds a different token puts
    it back."""
    lease = _lease_dir(root)
    try:
        age = now - os.stat(lease).st_mtime
    except FileNotFoundError:
        return True
    seen = _read_holder(lease)
    if seen.get("holder") != holder and age <= stale_after:
        return False
    aside = work_dir(root) / f"{_LEASE}.broken-{uuid.uuid4().hex}"
    try:
        os.rename(lease, aside)
    except FileNotFoundError:
        return True
    if _read_holder(aside).get("token") != seen.get("token"):
        with contextlib.suppress(OSError):
            os.rename(aside, lease)  # not the lease we judged: give it back
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


@contextlib.contextmanager
def lease(
    root: Path,
    holder: str,
    *,
    stale_after: float = LEASE_STALE,
    poll: float = 1.0,
    on_wait: Callable[[], None] | None = None,
    now: Callable[[], float] = time.time,
) -> Iterator[None]:
    """Holds `.lifeboat-restore/lease` (an atomic mkdir), refreshing its mtime every
    `stale_after / 4` seconds; waits while another live holder has it; removes it at the end
    (and the work directory with it when that is then empty)."""
    token = uuid.uuid4().hex
    waited = False
    while not _try_take_lease(root, holder, token):
        if _break_if_stale(root, holder, stale_after, now()):
            continue
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(poll)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(max(stale_after / 4, 0.05)):
            with contextlib.suppress(OSError):
                os.utime(_lease_dir(root))

    beat = threading.Thread(target=heartbeat, name="lifeboat-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=5)
        lease_dir = _lease_dir(root)
        if _read_holder(lease_dir).get("token") == token:
            shutil.rmtree(lease_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(work_dir(root))  # only when empty: a download to resume stays


@contextlib.contextmanager
def exclusive(root: Path, on_wait: Any = None, *, holder: str | None = None) -> Iterator[None]:
    """Holds an exclusive flock on the volume's root directory and the volume's lease.

    The flock is quick and needs no file; the lease also excludes restorers on other nodes (NFS).
    A volume that cannot take a lease (read-only) is never written, so the flock alone is enough.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(lease(root, holder or default_holder(), on_wait=on_wait))
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
            yield
    finally:
        os.close(fd)  # closing releases the lock


# -- the download and the move into place --------------------------------------------------------


def _rmtree(path: Path) -> None:
    """shutil.rmtree that also empties directories without owner write (a non-root restore)."""

    def lend_write(func: Any, failed: str, _exc: Any) -> None:
        for where in (os.path.dirname(failed), failed):
            with contextlib.suppress(OSError):
                if os.path.isdir(where) and not os.path.islink(where):
                    os.chmod(where, stat.S_IMODE(os.lstat(where).st_mode) | stat.S_IRWXU)
        if func in (os.unlink, os.remove, os.rmdir):
            func(failed)
        else:
            shutil.rmtree(failed, ignore_errors=True)

    if path.exists():
        shutil.rmtree(path, onerror=lend_write)


def _lend_write_below(tree: Path) -> None:
    """Gives owner write back to the directories of an earlier, unfinished download, so that a
    non-root restic can write into them again (it sets every directory's mode at its end)."""
    if os.geteuid() == 0:
        return
    for dirpath, _dirnames, _files in os.walk(tree):
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(os.lstat(dirpath).st_mode)
            if mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(dirpath, mode | stat.S_IRWXU)


def prepare(root: Path) -> Path:
    """Creates (or reuses) the work directory and returns where restic should restore to."""
    tree = tree_dir(root)
    if tree.exists():
        _lend_write_below(tree)
    tree.mkdir(parents=True, exist_ok=True)
    os.chmod(work_dir(root), 0o700)
    return tree


def discard(root: Path) -> None:
    """Removes an uncommitted download: only Lifeboat's own half-finished work (not the lease)."""
    if (work_dir(root) / _COMMIT).exists():
        raise VolumeError("refusing to discard a committed restore; it must be completed")
    if not work_dir(root).exists():
        return
    _clear_work_dir(root)


def _clear_work_dir(root: Path) -> None:
    """Removes Lifeboat's work directory and everything in it but the lease (its holder's to drop)."""
    for entry in os.listdir(work_dir(root)):
        if entry == _LEASE:
            continue
        path = work_dir(root) / entry
        if path.is_dir() and not path.is_symlink():
            _rmtree(path)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.rmdir(work_dir(root))


def sync_volume(path: Path) -> None:
    """Makes everything written on `path`'s file system durable: one `syncfs(2)` (data, metadata
    and directory entries of every file restic wrote, in one flush of that file system), instead
    of an fsync per file or a `sync(2)` that would also flush every other volume on the node.
    Since Linux 5.8 syncfs reports a writeback error of the file system, so a failed flush raises
    here instead of being committed. Where syncfs is missing (not Linux), `sync(2)`."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            syncfs = libc.syncfs
        except (OSError, AttributeError):
            os.sync()
            return
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs {path}: {os.strerror(code)}")
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)
    _fsync_dir(path.parent)


def commit(root: Path, record: dict[str, Any]) -> None:
    """Marks the download complete: from here on a rerun finishes instead of starting over."""
    clash = tree_dir(root) / WORK_DIR
    if clash.exists():
        raise VolumeError(f"the snapshot itself contains {WORK_DIR!r}; it cannot be restored in place")
    sync_volume(work_dir(root))  # the data must be durable before the record that says it is complete
    _write_atomic(work_dir(root) / _COMMIT, record)


def committed(root: Path) -> dict[str, Any]:
    """The commit record of a pending restore."""
    with open(work_dir(root) / _COMMIT) as handle:
        value = json.load(handle)
    return value if isinstance(value, dict) else {}


def _needs_write_to_move(path: Path) -> int | None:
    """The mode of a top-level directory this process may not write into (so may not rename to
    another parent), if it owns it; None for anything else."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or os.access(path, os.W_OK, follow_symlinks=False):
        return None
    if info.st_uid != os.geteuid():
        return None  # not ours to chmod; the rename fails with a clear PermissionError
    return stat.S_IMODE(info.st_mode)


def _lent_modes(root: Path, tree: Path, names: list[str]) -> dict[str, int]:
    """Which directories get owner write for their rename, recorded before the first chmod; a
    rerun reads the record instead of the (possibly already lent) modes on disk."""
    record = work_dir(root) / _MODES
    try:
        value = json.loads(record.read_text())
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}
    except FileNotFoundError:
        pass
    modes = {}
    for name in names:
        mode = _needs_write_to_move(tree / name)
        if mode is not None:
            modes[name] = mode
    _write_atomic(record, modes)
    return modes


def move_in(root: Path) -> None:
    """Renames the restored tree's entries into the volume root, then removes the work dir.

    Idempotent: entries already moved are gone from the tree, so a rerun moves the rest (and
    puts back the mode of any directory that was lent owner write for its rename).
    """
    tree = tree_dir(root)
    if tree.exists():
        with os.scandir(tree) as entries:
            names = sorted(entry.name for entry in entries)
        modes = _lent_modes(root, tree, names)
        for name, mode in modes.items():
            if name not in names and os.path.isdir(root / name) and not os.path.islink(root / name):
                os.chmod(root / name, mode)  # moved by an earlier run that died before the chmod
        for name in names:
            target = root / name
            if os.path.lexists(target):
                if name in IGNORED:
                    # the volume's own lost+found wins over the snapshot's copy of one
                    _rmtree(tree / name)
                    continue
                raise VolumeError(f"{target} appeared during the restore; refusing to overwrite it")
            if name in modes:
                os.chmod(tree / name, modes[name] | stat.S_IWUSR)
                os.rename(tree / name, target)
                os.chmod(target, modes[name])
            else:
                os.rename(tree / name, target)
        _fsync_dir(root)
    os.remove(work_dir(root) / _COMMIT)
    _clear_work_dir(root)
    _fsync_dir(root)

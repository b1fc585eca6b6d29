"""SQLite captures between a volume and its snapshot: staged beside the volume, placed on restore.

Why: a database must be backed up as one committed state (sidecar.edges.sqlite copies it through
SQLite's online backup API), yet the copy may not be written into the app's data directory (rule 7)
and restic cannot store a file under another path than the one it read. So the copies go to
scratch space mounted beside the volume, `<volume>/../.lifeboat-sqlite/<pvc>.<pid>/` (the injector mounts
an emptyDir there; tests and `lifeboat backup` use any writable parent), and the backup names it as a
second target, relative: restic drops the `..` and stores it as `.lifeboat-sqlite/<pvc>.<pid>/<path>` in
the same snapshot, while the live database and its `-wal`/`-shm`/`-journal` are excluded. A restore
(`place`) moves each copy back to `<path>` inside its work tree before the move-in, so the volume
holds the database at its original path, with its owner and mode and no companion from another
instant; a raw `restic restore` finds the copies under `.lifeboat-sqlite/` (docs/backup.md).

A database that cannot be captured (locked too long, corrupt at the source, no scratch space) is
backed up as it is on the volume and reported: the backup's result says so, never silently torn.
The capture runs in a child process (`python -m sidecar.edges.sqlite`): the idle sidecar never
loads sqlite3. Staging is emptied before and after every backup, and a kill -9 leaves only
scratch space, which the next backup of that PVC (or the pod's end) empties.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STAGING_NAME = ".lifeboat-sqlite"
COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Captured:
    """One database's capture: `status` captured or failed (with `reason`)."""

    path: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    hold_seconds: float = 0.0
    bytes: int = 0


@dataclass(frozen=True)
class Capture:
    """What the backup gets: the staged target (relative to the volume) and the excludes."""

    staging: Path | None = None
    results: tuple[Captured, ...] = ()
    excludes: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    @property
    def captured(self) -> tuple[Captured, ...]:
        return tuple(r for r in self.results if r.status == "captured")

    @property
    def failed(self) -> tuple[Captured, ...]:
        return tuple(r for r in self.results if r.status != "captured")

    @property
    def longest_hold(self) -> float:
        return max((r.hold_seconds for r in self.results), default=0.0)


def staging_dir(volume: Path, pvc: str, pid: int | None = None) -> Path:
    """Where this process stages one PVC's captures: scratch space mounted beside the volume.

    Per process (`<pvc>.<pid>`): two backups of one volume at once (two pods of a RWX volume on
    one node in tests, two `lifeboat backup` runs) never empty each other's staging.
    """
    return Path(os.path.realpath(volume)).parent / STAGING_NAME / f"{pvc}.{pid or os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_abandoned(volume: Path, pvc: str) -> None:
    """Empties staging left by processes of this PVC that died (kill -9) before emptying it."""
    root = staging_dir(volume, pvc).parent
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        name, _, pid = entry.name.rpartition(".")
        if name == pvc and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            clean(entry)


def _escape(path: str) -> str:
    """A literal path as a restic `--exclude` pattern (glob characters escaped)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in path)


def excludes_for(volume: Path, databases: Sequence[str]) -> tuple[str, ...]:
    """Patterns leaving each captured database and its companions out of the volume's part."""
    root = os.path.realpath(volume)
    patterns = []
    for rel in databases:
        live = os.path.join(root, rel)
        patterns += [_escape(live + suffix) for suffix in ("", *COMPANIONS)]
    return tuple(patterns)


def clean(staging: Path) -> None:
    """Empties one PVC's staging directory (never the volume: it sits beside it)."""
    shutil.rmtree(staging, ignore_errors=True)


def capture(
    volume: Path, pvc: str, databases: Sequence[str], *, busy_seconds: float, timeout: float
) -> Capture:
    """Captures `databases` (paths relative to the volume) into staging. Never raises.

    Returns the restic targets and excludes for the captured ones; the others are reported failed
    and stay in the volume's part of the snapshot as they are.
    """
    if not databases:
        return Capture()
    staging = staging_dir(volume, pvc)

    def failed_all(reason: str) -> Capture:
        clean(staging)
        return Capture(results=tuple(Captured(rel, "failed", reason) for rel in databases))

    if os.path.lexists(os.path.join(volume, STAGING_NAME)):
        return failed_all(f"the volume holds a {STAGING_NAME} of its own at its root")
    clean_abandoned(volume, pvc)
    clean(staging)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        return failed_all(f"no scratch space for SQLite captures at {staging.parent}: {exc.strerror}")
    needed = 0
    for rel in databases:
        with contextlib.suppress(OSError):  # vanished: the capture will say so
            needed += os.stat(os.path.join(volume, rel)).st_size
    free = shutil.disk_usage(staging).free
    if needed > free:
        return failed_all(
            f"SQLite captures need {needed} bytes of scratch space, {free} free at {staging.parent}:"
            " raise the injector's scratchSizeLimit"
        )
    command = [
        sys.executable,
        "-m",
        "sidecar.edges.sqlite",
        "--parent",
        str(os.getpid()),
        "capture",
        str(volume),
        str(staging),
        "--busy-seconds",
        str(busy_seconds),
    ]
    unfinished = f"capture did not finish within {timeout:.0f}s"
    try:
        completed = subprocess.run(
            command,
            input=json.dumps(list(databases)),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        lines = completed.stdout.splitlines()
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or [""])[-1]
            unfinished = f"the capture process exited {completed.returncode}: {last[:300]}"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        lines = (out.decode() if isinstance(out, bytes) else out).splitlines()
    except OSError as exc:
        return failed_all(f"could not start the SQLite capture: {exc.strerror}")
    by_path: dict[str, Captured] = {}
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_path[str(item.get("path"))] = Captured(
            path=str(item.get("path")),
            status=str(item.get("status")),
            reason=str(item.get("reason", "")),
            seconds=float(item.get("seconds", 0.0)),
            hold_seconds=float(item.get("hold_seconds", 0.0)),
            bytes=int(item.get("bytes", 0)),
        )
    results = tuple(by_path.get(rel) or Captured(rel, "failed", unfinished) for rel in databases)
    captured = [r.path for r in results if r.status == "captured"]
    for r in results:
        if r.status != "captured":
            (staging / r.path).unlink(missing_ok=True)
            (staging / (r.path + ".partial")).unlink(missing_ok=True)
    if not captured:
        clean(staging)
        return Capture(results=results)
    return Capture(
        staging=staging,
        results=results,
        excludes=excludes_for(volume, captured),
        targets=(os.path.relpath(staging, os.path.realpath(volume)),),
    )


def place(tree: Path) -> list[str]:
    """On restore: moves each staged copy in `tree/.lifeboat-sqlite/<pvc>/` to its own path.

    Any companion (`-wal`, `-shm`, `-journal`) at the destination is removed first: it belongs to
    another instant. Idempotent: a rerun after a crash restores the work tree again and places again.
    Returns the placed paths (relative).
    """
    staged_root = tree / STAGING_NAME
    if not staged_root.is_dir() or staged_root.is_symlink():
        return []
    placed: list[str] = []
    # directories keep the times restic gave them: a rename into one would touch its mtime
    times: dict[Path, tuple[int, int]] = {}

    def remember(directory: Path) -> None:
        if directory not in times:
            info = os.stat(directory)
            times[directory] = (info.st_atime_ns, info.st_mtime_ns)

    remember(tree)
    for source in sorted(staged_root.iterdir()):
        if not source.is_dir() or source.is_symlink():
            continue
        for directory, _dirs, files in os.walk(source):
            for name in files:
                copy = Path(directory) / name
                rel = copy.relative_to(source)
                destination = tree / rel
                destination.parent.mkdir(parents=True, exist_ok=True)
                remember(destination.parent)
                for suffix in COMPANIONS:
                    Path(str(destination) + suffix).unlink(missing_ok=True)
                os.replace(copy, destination)
                placed.append(str(rel))
    shutil.rmtree(staged_root)
    for touched, (atime, mtime) in times.items():
        os.utime(touched, ns=(atime, mtime))
    return placed

"""One restore drill, in a short-lived child process: `python -m sidecar.drill.run`.

Why a child: a drill lists a whole snapshot, restores it and opens SQLite databases; the
long-running sidecar must stay within its idle footprint (32 MiB) and never load sqlite3. The
daemon (sidecar.daemon.drill) starts this module in a process group of its own, hands it the job
as one JSON object on stdin (the repository's secrets included: never argv, never a file), and
reads one JSON line, the report, from stdout. Killing the group stops the drill and its restic.

What it does, reading the repository only (no lock is written, nothing is forgotten, pruned,
tagged or unlocked, whatever it finds; restic's password migration is off):
1. empties its scratch directory (the `drill/` subdirectory of the scratch emptyDir, never the volume);
2. picks the latest snapshot, lists it (`restic ls`), and chooses all of it or a sample that fits
   the scratch budget (sidecar.drill.plan);
3. `restic restore --no-lock` into scratch (`--include-file` for a sample);
4. walks the restored tree: regular files and bytes, and every SQLite database by its 16-byte
   header, wherever it is; each gets `PRAGMA integrity_check` read-only (sidecar.edges.sqlite);
5. judges (sidecar.drill.plan.judge), empties scratch again, prints the report.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lifeboat.contract import ENV_LEGACY_PASSWORDS
from sidecar.drill.plan import DatabaseCheck, DrillReport, choose_sample, include_lines, judge
from sidecar.edges.restic import Failure, Node, Restic, ResticError

SQLITE_HEADER = b"SQLite format 3\x00"


def empty(directory: Path) -> None:
    """Removes `directory` and everything in it, also what a restore left unwritable (mode 0500
    directories, 0000 files), without following symlinks. Gone already: nothing to do."""

    def writable(function: Any, path: str, _exc: Any) -> None:
        parent = os.path.dirname(path)
        try:
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
            function(path)
        except FileNotFoundError:
            pass

    if directory.is_symlink():
        directory.unlink()
    elif directory.exists():
        shutil.rmtree(directory, onerror=writable)


def walk(root: Path) -> tuple[int, int, int, list[str]]:
    """Regular files, their bytes, the scratch bytes they take, and the SQLite databases (by
    header; paths relative to `root`) of a restored tree. Symlinks are not followed."""
    files = size = used = 0
    databases: list[str] = []
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except PermissionError:  # restored with its mode (0000, 0300): our copy, so open it up
            try:
                os.chmod(directory, stat.S_IRWXU)
                entries = list(os.scandir(directory))
            except OSError:
                continue
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            used += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                files += 1
                size += info.st_size
                if info.st_size >= len(SQLITE_HEADER) and _has_header(entry.path):
                    databases.append(os.path.relpath(entry.path, root))
    return files, size, used, sorted(databases)


def _has_header(path: str) -> bool:
    for attempt in range(2):
        try:
            with open(path, "rb") as handle:
                return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except PermissionError:  # restored with its mode (0000): our copy, so make it readable
            if attempt:
                return False
            try:
                os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            except OSError:
                return False
        except OSError:
            return False
    return False


def check_database(root: Path, relative: str) -> DatabaseCheck:
    """`PRAGMA integrity_check`, read-only, of one restored database."""
    from sidecar.edges.sqlite import integrity_check  # sqlite3: only ever in this child

    errors = integrity_check(root / relative)
    return DatabaseCheck(relative, not errors, "; ".join(errors[:5]))


def drill(job: Mapping[str, Any]) -> DrillReport:
    """Runs one drill as described in the module docstring; never raises for what it finds."""
    started = time.monotonic()
    scratch = Path(job["scratch"])
    env = {k: v for k, v in dict(job["env"]).items() if k != ENV_LEGACY_PASSWORDS}
    restic = Restic(
        repository=job["repository"],
        env=env,
        binary=job.get("binary", "restic"),
        timeout=float(job.get("timeout", 3600)),
        lock_retry=0,
        own_session=False,  # the sidecar stops this child's process group: restic goes with it
    )
    empty(scratch)
    scratch.mkdir(parents=True, mode=0o700)
    try:
        return replace(
            _drill(restic, scratch, int(job["budget"])), seconds=round(time.monotonic() - started, 3)
        )
    finally:
        empty(scratch)


def _failed(problem: str, snapshot: str | None = None) -> DrillReport:
    return DrillReport(result="failed", snapshot=snapshot, problems=(problem,))


def _drill(restic: Restic, scratch: Path, budget: int) -> DrillReport:
    try:
        snapshots = restic.snapshots()
    except ResticError as exc:
        if exc.failure is Failure.NO_REPOSITORY:
            return DrillReport(result="skipped", reason="no repository yet")
        return _failed(f"listing snapshots: {exc}")
    if not snapshots:
        return DrillReport(result="skipped", reason="no snapshot yet")
    latest = snapshots[-1]
    try:
        exclusive = [lock for lock in restic.locks() if lock.exclusive]
    except ResticError:
        exclusive = []
    if exclusive:  # a prune could delete packs under a lock-free restore: not a finding, try later
        return DrillReport(
            result="skipped",
            snapshot=latest.short_id,
            reason=f"an exclusive lock (prune or check) is held by {exclusive[0].hostname}",
        )
    files: list[tuple[str, int]] = []
    dirs = 0

    def node(entry: Node) -> None:
        nonlocal dirs
        if entry.type == "file":
            files.append((entry.path, entry.size))
        elif entry.type == "dir":
            dirs += 1

    try:
        restic.ls(latest.id, node)
    except ResticError as exc:
        return _failed(f"listing snapshot {latest.short_id}: {exc}", latest.short_id)
    sample = choose_sample(files, dirs, budget, latest.id)
    listed = (sample.total_files, sample.total_bytes)
    files.clear()
    if not sample.full and not sample.paths:
        return DrillReport(
            result="skipped",
            snapshot=latest.short_id,
            files_total=sample.total_files,
            bytes_total=sample.total_bytes,
            reason=f"no file of the snapshot fits the scratch budget ({budget} bytes); raise "
            "LIFEBOAT_DRILL_SCRATCH_BUDGET or free scratch space",
        )
    target = scratch / "tree"
    include = None
    if not sample.full:
        include = scratch / "include"
        include.write_text(include_lines(sample))
    errors: list[str] = []
    if sample.full or sample.paths:
        try:
            restic.restore(latest.id, target, delete=False, include_file=include, lock=False)
        except ResticError as exc:
            if exc.failure in (Failure.INTERRUPTED, Failure.TIMEOUT):
                return DrillReport(result="cancelled", snapshot=latest.short_id, reason=str(exc))
            errors = list(exc.items) or [exc.message]
    target.mkdir(exist_ok=True)
    restored_files, restored_bytes, used, databases = walk(target)
    checks = [check_database(target, relative) for relative in databases]
    report = judge(
        snapshot=latest.short_id,
        expected=(latest.files, latest.bytes),
        listed=listed,
        sample=sample,
        restored=(restored_files, restored_bytes),
        databases=checks,
        restore_errors=errors,
    )
    return replace(report, peak_scratch_bytes=used)


def main() -> int:
    job = json.loads(sys.stdin.read())
    report = drill(job)
    print(json.dumps(report.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

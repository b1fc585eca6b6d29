"""Restore drills, the decisions: when a PVC's drill runs, what a sampled drill restores, and what
the restored tree proves. Pure functions over plain data; the child process (sidecar.drill.run)
and the daemon (sidecar.daemon.drill) do the I/O.

Why drills: a `restic check` proves the repository's structure, not that the app's data comes back
usable. A drill restores the latest snapshot into scratch space (never the volume), counts what
came back against the snapshot's own summary, and opens every SQLite database it holds with
`PRAGMA integrity_check`.

Why sampling: scratch space is an emptyDir with a size limit, and exceeding it evicts the whole pod,
app included. A snapshot that does not fit the budget gets a sample instead: SQLite databases first
(the data most likely to come back broken), then other files in an order derived from the snapshot
id (the same snapshot always gives the same sample; the next snapshot gives another, so successive
drills cover different files). The report states files and bytes checked against the totals.

Why jitter: one cluster's weekly drills must not all restore at the same minute. A weekly drill
runs on a day of the week and a second of 00:00-06:00 UTC both derived from a hash of
namespace/PVC (sidecar.daemon.cadence.jitter_seconds), a daily drill at a second of those hours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lifeboat.contract import Schedule
from sidecar.daemon.cadence import DAILY_SPREAD, jitter_seconds, offset

DAY = 86400
BLOCK = 4096  # what a file or directory costs on scratch at least (ext4, xfs, tmpfs pages)
# names SQLite databases usually carry; the header decides after the restore, names only choose
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3", ".s3db", ".sl3")
SQLITE_COMPANIONS = ("-wal", "-journal")  # restored with their database when present
STAGED_PREFIX = "/.lifeboat-sqlite/"  # captured copies (sidecar.backup.capture): databases for sure
RESULTS = ("success", "failed", "skipped", "cancelled")


# --- when -----------------------------------------------------------------------------------------


def drill_offset(namespace: str, pvc: str, schedule: Schedule) -> int:
    """Seconds after each of the schedule's runs that this PVC's drill starts (stable per PVC).

    weekly: a day of the week and a second of 00:00-06:00 UTC; daily: a second of 00:00-06:00;
    a crontab expression: the backups' rule (at most 15 minutes, less than the gap between runs).
    """
    if schedule.kind == "daily":
        return jitter_seconds(namespace, pvc, "drill", DAILY_SPREAD)
    return offset(namespace, pvc, "drill", schedule)


# --- what -----------------------------------------------------------------------------------------


def cost(size: int) -> int:
    """Scratch bytes one file of `size` takes: whole blocks, one at least."""
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def looks_like_sqlite(path: str) -> bool:
    """A database by its name (the header is only known once restored)."""
    name = path.rsplit("/", 1)[-1].lower()
    return path.startswith(STAGED_PREFIX) or name.endswith(SQLITE_SUFFIXES)


def includable(path: str) -> bool:
    """Whether restic's `--include-file` can name `path` exactly: it trims each line and expands
    `$VARIABLES`, neither of which can be escaped (a path from `restic ls` starts with `/`, so it
    is never a `#` comment)."""
    return not any(char in path for char in "\n\r$") and path == path.rstrip()


def pattern(path: str) -> str:
    """`path` as an exact restic include pattern (glob metacharacters escaped)."""
    out = []
    for char in path:
        if char in "*?[]\\":
            out.append("\\")
        out.append(char)
    return "".join(out)


def _order(seed: str, path: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{path}".encode()).digest()


@dataclass(frozen=True)
class Sample:
    """What a drill restores: everything (`full`), or these files (paths as `restic ls` shows them).

    `files`/`bytes` are what the sample holds, `total_files`/`total_bytes` the snapshot's listing;
    `too_large` names databases that alone exceed the budget (not checked, and said so)."""

    full: bool
    paths: tuple[str, ...]
    files: int
    bytes: int
    total_files: int
    total_bytes: int
    databases_chosen: int = 0
    too_large: tuple[str, ...] = ()


def choose_sample(files: Sequence[tuple[str, int]], dirs: int, budget: int, seed: str) -> Sample:
    """All of the snapshot when it fits `budget` (bytes of scratch), else a deterministic sample.

    `files` are the snapshot's regular files as (path, size), `dirs` how many directories it has.
    The sample takes likely SQLite databases first (each with its `-wal`/`-journal`), ordered by a
    hash of `seed` (the snapshot id) and path, then other files in the same order, each while it
    fits; every directory a chosen file needs is paid for too.
    """
    total_files = len(files)
    total_bytes = sum(size for _, size in files)
    whole = sum(cost(size) for _, size in files) + (dirs + 1) * BLOCK
    if whole <= budget:
        return Sample(True, (), total_files, total_bytes, total_files, total_bytes)
    sizes = dict(files)
    databases = sorted(
        (p for p in sizes if looks_like_sqlite(p) and includable(p) and not p.endswith(SQLITE_COMPANIONS)),
        key=lambda p: _order(seed, p),
    )
    chosen_set: set[str] = set()
    others = sorted(
        (p for p in sizes if includable(p) and not looks_like_sqlite(p)), key=lambda p: _order(seed, p)
    )
    chosen: list[str] = []
    paid_dirs: set[str] = {""}
    used = BLOCK  # the target directory itself
    too_large: list[str] = []
    picked_databases = 0

    def parents(path: str) -> list[str]:
        parts = path.strip("/").split("/")[:-1]
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]

    def take(group: list[str]) -> bool:
        nonlocal used
        new_dirs = {d for p in group for d in parents(p)} - paid_dirs
        need = sum(cost(sizes[p]) for p in group) + len(new_dirs) * BLOCK
        if used + need > budget:
            return False
        used += need
        paid_dirs.update(new_dirs)
        chosen.extend(group)
        chosen_set.update(group)
        return True

    for path in databases:
        group = [path] + [path + c for c in SQLITE_COMPANIONS if path + c in sizes and includable(path + c)]
        if take(group):
            picked_databases += 1
        elif sum(cost(sizes[p]) for p in group) + BLOCK > budget:
            too_large.append(path)
    for path in others:
        if path not in chosen_set:
            take([path])
    return Sample(
        full=False,
        paths=tuple(sorted(chosen)),
        files=len(chosen),
        bytes=sum(sizes[p] for p in chosen),
        total_files=total_files,
        total_bytes=total_bytes,
        databases_chosen=picked_databases,
        too_large=tuple(sorted(too_large)),
    )


def include_lines(sample: Sample) -> str:
    """The `--include-file` of a sampled restore: one exact pattern per line."""
    return "".join(pattern(path) + "\n" for path in sample.paths)


# --- verdict --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseCheck:
    """`PRAGMA integrity_check` of one restored database: `ok`, else SQLite's own words."""

    path: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class DrillReport:
    """One drill, as the log line and the metrics state it. `problems` name files and databases."""

    result: str  # success, failed, skipped, cancelled
    snapshot: str | None = None
    sampled: bool = False
    files_checked: int = 0
    bytes_checked: int = 0
    files_total: int = 0
    bytes_total: int = 0
    databases: int = 0
    databases_failed: int = 0
    problems: tuple[str, ...] = ()
    reason: str = ""  # why skipped or cancelled
    seconds: float = 0.0
    peak_scratch_bytes: int = 0
    not_checked: tuple[str, ...] = field(default=())  # databases too large for the budget

    def as_dict(self) -> dict[str, object]:
        return {
            "result": self.result,
            "snapshot": self.snapshot,
            "sampled": self.sampled,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "files_total": self.files_total,
            "bytes_total": self.bytes_total,
            "databases": self.databases,
            "databases_failed": self.databases_failed,
            "problems": list(self.problems),
            "reason": self.reason,
            "seconds": self.seconds,
            "peak_scratch_bytes": self.peak_scratch_bytes,
            "not_checked": list(self.not_checked),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> DrillReport:
        def number(key: str) -> int:
            value = raw.get(key, 0)
            return int(value) if isinstance(value, int | float) else 0

        def texts(key: str) -> tuple[str, ...]:
            value = raw.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        result = str(raw.get("result", "failed"))
        snapshot = raw.get("snapshot")
        seconds = raw.get("seconds", 0.0)
        return cls(
            result=result if result in RESULTS else "failed",
            snapshot=str(snapshot) if snapshot else None,
            sampled=bool(raw.get("sampled", False)),
            files_checked=number("files_checked"),
            bytes_checked=number("bytes_checked"),
            files_total=number("files_total"),
            bytes_total=number("bytes_total"),
            databases=number("databases"),
            databases_failed=number("databases_failed"),
            problems=texts("problems"),
            reason=str(raw.get("reason", "")),
            seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
            peak_scratch_bytes=number("peak_scratch_bytes"),
            not_checked=texts("not_checked"),
        )


def judge(
    *,
    snapshot: str,
    expected: tuple[int | None, int | None],
    listed: tuple[int, int],
    sample: Sample,
    restored: tuple[int, int],
    databases: Iterable[DatabaseCheck],
    restore_errors: Sequence[str] = (),
) -> DrillReport:
    """What a restored tree proves. `expected` is the snapshot's summary (files, bytes; None for a
    snapshot written before restic kept one), `listed` what `restic ls` counts, `restored` what
    the walk of the restored tree found. A full drill must match the summary and the listing; a
    sampled one must match its sample. Any restore error or unhealthy database fails it."""
    problems = [f"restore: {text}" for text in restore_errors]
    files, size = restored
    if sample.full:
        want_files, want_bytes = expected
        if want_files is not None and want_bytes is not None and (files, size) != (want_files, want_bytes):
            problems.append(
                f"restored {files} files, {size} bytes; the snapshot's summary says "
                f"{want_files} files, {want_bytes} bytes"
            )
        elif (files, size) != listed:
            problems.append(
                f"restored {files} files, {size} bytes; "
                f"the snapshot lists {listed[0]} files, {listed[1]} bytes"
            )
    elif (files, size) != (sample.files, sample.bytes):
        problems.append(
            f"restored {files} files, {size} bytes of a sample of {sample.files} files, {sample.bytes} bytes"
        )
    checked = list(databases)
    bad = [c for c in checked if not c.ok]
    problems += [f"database {c.path}: {c.detail}" for c in bad]
    return DrillReport(
        result="failed" if problems else "success",
        snapshot=snapshot,
        sampled=not sample.full,
        files_checked=files,
        bytes_checked=size,
        files_total=sample.total_files,
        bytes_total=sample.total_bytes,
        databases=len(checked),
        databases_failed=len(bad),
        problems=tuple(problems),
        not_checked=sample.too_large,
    )

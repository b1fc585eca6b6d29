"""Per-PVC status rows, the problems derived from them, and their rendering (pure).

A row is plain data gathered elsewhere (``ctl.gather``); :func:`problems` says what a user must
act on, :func:`render_table` and :func:`to_json` print it. ``now`` is passed in.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lifeboat.contract import BACKUP_VALUES, ConfigError, parse_schedule

STALE_FACTOR = 2.0  # a backup older than twice the schedule's longest gap is stale


@dataclass(frozen=True)
class PodFacts:
    name: str
    injected: bool
    skipped: bool  # lifeboat.dev/skip=true
    phase: str
    created: _dt.datetime | None = None


@dataclass(frozen=True)
class SnapshotFacts:
    id: str
    time: _dt.datetime
    hostname: str
    tags: tuple[str, ...]
    files: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class StoreFacts:
    """What the store said about one repository; ``error`` when it could not be read."""

    repository: str
    snapshots: tuple[SnapshotFacts, ...] = ()
    size_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PvcFacts:
    namespace: str
    name: str
    label: str
    annotations: Mapping[str, str]
    namespace_opted_in: bool
    pods: tuple[PodFacts, ...]
    store: StoreFacts | None  # None: the store was not asked (--no-store, no source Secret)
    mirrored_secret: bool = True


@dataclass
class PvcStatus:
    namespace: str
    pvc: str
    schedule: str
    interval_seconds: int | None
    injected: str
    last_backup: str | None
    last_backup_age_seconds: int | None
    result: str
    snapshots: int | None
    repository_bytes: int | None
    repository: str | None
    problems: list[str] = field(default_factory=list)


def schedule_of(facts: PvcFacts) -> tuple[str, int | None, str | None]:
    """(schedule text, longest gap in seconds, error) from the annotation, else the label."""
    from sidecar.daemon.cadence import expected_interval

    text = facts.annotations.get("lifeboat.dev/schedule") or facts.label
    try:
        schedule = parse_schedule(text)
    except ConfigError as exc:
        return text, None, f"annotation lifeboat.dev/schedule={text!r} does not parse: {exc}"
    return text, expected_interval(schedule), None


def injection(facts: PvcFacts) -> tuple[str, str | None]:
    """'yes'/'no'/'-' with why, and the problem it is (if any)."""
    if facts.label not in BACKUP_VALUES:
        return "no: label value not acted on", (
            f"label backup={facts.label!r} is not one of {', '.join(BACKUP_VALUES)} (lowercase): "
            f"not backed up; kubectl -n {facts.namespace} label pvc {facts.name} backup=daily --overwrite"
        )
    if not facts.namespace_opted_in:
        return "no: namespace not opted in", (
            f"namespace {facts.namespace} lacks label lifeboat.dev/inject=enabled: "
            f"kubectl label namespace {facts.namespace} lifeboat.dev/inject=enabled"
        )
    running = [p for p in facts.pods if p.phase not in ("Succeeded", "Failed")]
    if not running:
        return "-: no pod mounts it", None
    missing = [p for p in running if not p.injected and not p.skipped]
    if missing:
        names = ", ".join(p.name for p in missing)
        return f"no: pod {names}", (
            f"pod {names} mounts it without Lifeboat (created before Lifeboat or while it was down): "
            "delete the pod so it is re-created with backups"
        )
    if all(p.skipped for p in running):
        return "no: pod opted out (lifeboat.dev/skip)", None
    return "yes: " + ", ".join(p.name for p in running if p.injected), None


def status_row(facts: PvcFacts, now: _dt.datetime) -> PvcStatus:
    schedule, interval, schedule_problem = schedule_of(facts)
    injected, injection_problem = injection(facts)
    problems = [p for p in (injection_problem, schedule_problem) if p]
    if facts.namespace_opted_in and not facts.mirrored_secret:
        problems.append(
            f"namespace {facts.namespace} has no lifeboat-credentials Secret: the injector has not "
            "mirrored it yet (see `lifeboat doctor`)"
        )
    store = facts.store
    newest = max(store.snapshots, key=lambda s: s.time) if store and store.snapshots else None
    age = int((now - newest.time).total_seconds()) if newest else None
    if store is None:
        result = "unknown"
    elif store.error:
        result = "store error"
        problems.append(f"the store could not be read: {store.error}")
    elif newest is None:
        result = "never"
        if injected.startswith("yes"):
            started = min((p.created for p in facts.pods if p.injected and p.created), default=None)
            if started and interval and (now - started).total_seconds() > interval * STALE_FACTOR:
                problems.append("no backup yet although the pod has run longer than twice the schedule")
    elif interval and age is not None and age > interval * STALE_FACTOR:
        result = "stale"
        problems.append(
            f"the last backup is {_age(age)} old; the schedule expects one every {_age(interval)}"
        )
    else:
        result = "ok"
    return PvcStatus(
        namespace=facts.namespace,
        pvc=facts.name,
        schedule=schedule,
        interval_seconds=interval,
        injected=injected,
        last_backup=newest.time.isoformat() if newest else None,
        last_backup_age_seconds=age,
        result=result,
        snapshots=len(store.snapshots) if store and not store.error else None,
        repository_bytes=store.size_bytes if store and not store.error else None,
        repository=store.repository if store else None,
        problems=problems,
    )


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A kubectl-style table: upper-case headers, columns padded by three spaces, '-' for None."""
    cells = [[str(h).upper() for h in headers]] + [
        ["-" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def status_table(rows: Sequence[PvcStatus]) -> str:
    table = render_table(
        [
            "namespace",
            "pvc",
            "schedule",
            "injected",
            "last backup",
            "result",
            "snapshots",
            "size",
            "problems",
        ],
        [
            (
                r.namespace,
                r.pvc,
                r.schedule,
                r.injected,
                f"{_age(r.last_backup_age_seconds)} ago" if r.last_backup_age_seconds is not None else None,
                r.result,
                r.snapshots,
                human_bytes(r.repository_bytes),
                len(r.problems) or None,
            )
            for r in rows
        ],
    )
    notes = [f"{r.namespace}/{r.pvc}: {p}" for r in rows for p in r.problems]
    return table + ("\n\nProblems:\n" + "\n".join(f"- {n}" for n in notes) if notes else "")


def snapshots_table(snapshots: Sequence[SnapshotFacts]) -> str:
    return render_table(
        ["id", "time", "host", "files", "size", "tags"],
        [
            (s.id[:8], s.time.isoformat(), s.hostname, s.files, human_bytes(s.bytes), ",".join(s.tags))
            for s in sorted(snapshots, key=lambda s: s.time)
        ],
    )


def ls_table(entries: Sequence[Mapping[str, Any]]) -> str:
    return render_table(
        ["type", "mode", "size", "mtime", "path"],
        [
            (e.get("type"), e.get("permissions"), e.get("size"), e.get("mtime"), e.get("path"))
            for e in entries
        ],
    )


def to_json(value: Any) -> str:
    def plain(item: Any) -> Any:
        if hasattr(item, "__dataclass_fields__"):
            return asdict(item)
        if isinstance(item, _dt.datetime):
            return item.isoformat()
        return str(item)

    if isinstance(value, list):
        value = [asdict(v) if hasattr(v, "__dataclass_fields__") else v for v in value]
    return json.dumps(value, default=plain, indent=2, sort_keys=False)

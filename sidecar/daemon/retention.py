"""Retention: what `restic forget` keeps when a PVC names no policy, and whether a forget would
remove anything at all. Pure.

The grammar (`hourly=24,daily=7`) is the contract's (lifeboat.contract.parse_retention), shared with
the webhook. Defaults follow the schedule so a user who only writes `backup: daily` still gets a
sensible history; an empty policy is impossible by construction (restic would keep nothing).

`plan` is restic's own `ApplyPolicy` (restic 0.19, `internal/data/snapshot_policy.go`) for the
rules Lifeboat uses (`--keep-last/hourly/daily/weekly/monthly/yearly`, `--tag lifeboat`,
`--group-by host`): the sidecar forgets after every backup, and most of those forgets remove
nothing (a young history, or a daily schedule between two days), yet each cost two restic starts
(the breaker's dry-run and the forget: a key derivation and a repository open each). With the
repository's exact snapshot list at hand, `removes_anything` says when a forget would be a no-op,
and only then is it skipped. It is only ever used to *skip* a forget that would do nothing: what
is removed is still decided by restic itself, behind the retention breaker's dry-run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from lifeboat.contract import RETENTION_RULES, parse_retention, render_retention

__all__ = [
    "DEFAULTS",
    "RETENTION_RULES",
    "default_retention",
    "parse_retention",
    "plan",
    "removes_anything",
    "render",
]

DEFAULTS: Mapping[str, Mapping[str, int]] = {
    "hourly": {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6},
    "daily": {"daily": 7, "weekly": 4, "monthly": 6},
    "cron": {"last": 24, "daily": 7, "weekly": 4, "monthly": 6},
}


def default_retention(schedule_kind: str) -> dict[str, int]:
    """The policy used when LIFEBOAT_RETENTION is unset, by schedule kind (hourly, daily, cron)."""
    return dict(DEFAULTS.get(schedule_kind, DEFAULTS["cron"]))


render = render_retention


class Listed(Protocol):
    """A snapshot as far as `forget` cares (sidecar.edges.restic.Snapshot is one)."""

    @property
    def id(self) -> str: ...

    @property
    def time(self) -> dt.datetime: ...

    @property
    def hostname(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...


# restic's bucket functions, in the snapshot's own offset (Go's time.Time methods use its location)
_BUCKETS: dict[str, Callable[[dt.datetime, int], object]] = {
    "last": lambda _t, nr: nr,
    "hourly": lambda t, _nr: (t.year, t.month, t.day, t.hour),
    "daily": lambda t, _nr: (t.year, t.month, t.day),
    "weekly": lambda t, _nr: t.isocalendar()[:2],
    "monthly": lambda t, _nr: (t.year, t.month),
    "yearly": lambda t, _nr: t.year,
}


def _apply(group: Sequence[Listed], policy: Mapping[str, int]) -> tuple[list[Listed], list[Listed]]:
    """restic's ApplyPolicy on one group: newest first (a stable sort, as restic's), each rule keeps
    a snapshot whose bucket differs from the last one it kept while its count lasts, and every rule
    with count left also keeps the oldest snapshot."""
    ordered = sorted(group, key=lambda s: s.time, reverse=True)
    counts = {rule: policy[rule] for rule in RETENTION_RULES if policy.get(rule)}
    last: dict[str, object] = {}
    keep: list[Listed] = []
    remove: list[Listed] = []
    for nr, snapshot in enumerate(ordered):
        kept = False
        for rule, count in counts.items():
            if count == 0:
                continue
            value = _BUCKETS[rule](snapshot.time, nr)
            if rule not in last or value != last[rule] or nr == len(ordered) - 1:
                kept = True
                last[rule] = value
                if count > 0:
                    counts[rule] = count - 1
        (keep if kept else remove).append(snapshot)
    return keep, remove


def plan(
    snapshots: Iterable[Listed], policy: Mapping[str, int], *, tag: str = "lifeboat"
) -> tuple[list[Listed], list[Listed]]:
    """What `restic forget --tag <tag> --group-by host` with `policy` keeps and removes."""
    if not policy:
        raise ValueError("forget needs at least one keep rule; an empty policy would keep nothing")
    groups: dict[str, list[Listed]] = {}
    for snapshot in snapshots:
        if tag in snapshot.tags:
            groups.setdefault(snapshot.hostname, []).append(snapshot)
    keep: list[Listed] = []
    remove: list[Listed] = []
    for group in groups.values():
        kept, removed = _apply(group, policy)
        keep += kept
        remove += removed
    return keep, remove


def removes_anything(
    snapshots: Iterable[Listed], policy: Mapping[str, int], *, tag: str = "lifeboat"
) -> bool:
    """Whether that forget would remove at least one snapshot."""
    return bool(plan(snapshots, policy, tag=tag)[1])

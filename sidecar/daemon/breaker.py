"""The retention breaker: may this `restic forget` (and the prune after it) run? A pure decision.

Lifeboat forgets after every backup and prunes daily, so one wrong retention annotation (`last=1`
on a year of history), a clock far in the future, or a bug in the policy code would erase almost
every snapshot within the hour, and the next prune would make it final. So before each forget the
sidecar asks restic what it *would* remove (`forget --dry-run`), and this module refuses when that

- loses more than half of the snapshots (`too_many`);
- loses one of the newest three (`newest`);
- removes every snapshot older than a day (`history`).

A removed snapshot is *thinned*, not lost, when a kept snapshot less than half an hour newer
exists, or one newer in the same bucket of the policy's finest time rule (the same hour under
`hourly=24`, the same day under `daily=7`): the final backup of a restarted pod and the next
scheduled one in the same hour, or a few restarts in a day on a daily schedule, are retention
doing its job, and the history keeps a snapshot for that moment.

A refusal holds forget and prune for the repository (backups go on) until a later dry-run passes.
An acknowledgement (`lifeboat.dev/retention-ack`, the RFC 3339 time it was written) lets a
refused change through while it is less than a day old and not more than a few minutes in the
future, so a forgotten annotation cannot disarm the breaker for good.

Nor does anything run while the sidecar's clock is more than 10 minutes from the store's (`Date`
of an S3 response), or while the store's time cannot be read (`clock_skew`, `clock_unknown`):
retention judged by a wrong `now` is how a clock bug erases history.

Everything here takes `now` as a parameter; the dry-run and the store's time come from the edges.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol


class Reason(Enum):
    TOO_MANY = "too_many"
    NEWEST = "newest"
    HISTORY = "history"
    CLOCK_SKEW = "clock_skew"
    CLOCK_UNKNOWN = "clock_unknown"


@dataclass(frozen=True)
class Bounds:
    """What the breaker lets through without an acknowledgement."""

    max_removed_share: float = 0.5  # refuse removing more than this share of the snapshots
    newest: int = 3  # refuse losing any of the newest N
    thin_window: dt.timedelta = dt.timedelta(minutes=30)  # a kept snapshot this close covers one
    old_age: dt.timedelta = dt.timedelta(days=1)  # refuse removing every snapshot older than this
    max_skew: dt.timedelta = dt.timedelta(minutes=10)  # sidecar clock vs the store's Date
    ack_max_age: dt.timedelta = dt.timedelta(days=1)
    ack_max_future: dt.timedelta = dt.timedelta(minutes=5)


DEFAULT_BOUNDS = Bounds()


class Dated(Protocol):
    """A snapshot as far as the breaker cares (sidecar.edges.restic.Snapshot is one)."""

    @property
    def id(self) -> str: ...

    @property
    def time(self) -> dt.datetime: ...


@dataclass(frozen=True)
class Verdict:
    """The breaker's answer, with the figures the log line and the metric carry."""

    allowed: bool
    reasons: tuple[Reason, ...] = ()
    total: int = 0
    removed: int = 0
    lost: int = 0  # removed and not thinned (see the module docstring)
    newest_removed: int = 0
    old: int = 0
    old_kept: int = 0
    acknowledged: bool = False  # the change needed the acknowledgement and had one
    skew_seconds: float | None = None
    message: str = ""
    removed_ids: tuple[str, ...] = field(default=(), repr=False)

    @property
    def reason(self) -> Reason | None:
        """The first reason (the metric's label); the log line lists them all."""
        return self.reasons[0] if self.reasons else None

    def figures(self) -> dict[str, object]:
        """The numbers of the log line."""
        return {
            "snapshots": self.total,
            "would_remove": self.removed,
            "would_lose": self.lost,
            "newest_removed": self.newest_removed,
            "older_than_a_day": self.old,
            "older_than_a_day_kept": self.old_kept,
        }


def ack_valid(ack: dt.datetime | None, now: dt.datetime, bounds: Bounds = DEFAULT_BOUNDS) -> bool:
    """An acknowledgement counts from the time it was written for `ack_max_age`; one dated more than
    `ack_max_future` ahead of `now` is not trusted (a typo or a wrong clock must not disarm it)."""
    if ack is None:
        return False
    return now - bounds.ack_max_age <= ack <= now + bounds.ack_max_future


def judge_clock(
    local: dt.datetime, store: dt.datetime | None, bounds: Bounds = DEFAULT_BOUNDS, *, error: str = ""
) -> Verdict:
    """Forget and prune run only while this clock and the store's agree within `max_skew`."""
    if store is None:
        return Verdict(
            False,
            (Reason.CLOCK_UNKNOWN,),
            message=f"the store's time could not be read ({error or 'no Date header'}); "
            "forget and prune wait for the next round",
        )
    skew = (local - store).total_seconds()
    if abs(skew) > bounds.max_skew.total_seconds():
        side = "ahead of" if skew > 0 else "behind"
        return Verdict(
            False,
            (Reason.CLOCK_SKEW,),
            skew_seconds=skew,
            message=f"this clock is {abs(skew):.0f} s {side} the store's (more than "
            f"{bounds.max_skew.total_seconds():.0f} s); forget and prune wait until it is fixed",
        )
    return Verdict(True, skew_seconds=skew)


# restic's time buckets (internal/restic/snapshot_policy.go), in the snapshot's own offset as restic
# reads it; the finest time rule of a policy says which duplicates forget thins out.
_BUCKETS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


def _finest_bucket(policy: Mapping[str, int]) -> str | None:
    return next((rule for rule in _BUCKETS if rule in policy), None)


def judge_forget(
    keep: Sequence[Dated],
    remove: Sequence[Dated],
    *,
    policy: Mapping[str, int],
    now: dt.datetime,
    ack: dt.datetime | None = None,
    bounds: Bounds = DEFAULT_BOUNDS,
) -> Verdict:
    """May a forget that keeps `keep` and removes `remove` (restic's dry-run) go ahead?"""
    total = len(keep) + len(remove)
    removing = {s.id for s in remove}
    newest = sorted([*keep, *remove], key=lambda s: s.time, reverse=True)[: bounds.newest]
    bucket_rule = _finest_bucket(policy)
    bucket = _BUCKETS[bucket_rule] if bucket_rule else None

    def covers(kept: Dated, snap: Dated) -> bool:
        if kept.time <= snap.time:
            return False
        near = kept.time - snap.time < bounds.thin_window
        return near or (bucket is not None and bucket(kept.time) == bucket(snap.time))

    lost = [s for s in remove if not any(covers(k, s) for k in keep)]
    lost_ids = {s.id for s in lost}
    newest_lost = [s for s in newest if s.id in lost_ids]
    cutoff = now - bounds.old_age
    old = [s for s in (*keep, *remove) if s.time < cutoff]
    old_kept = [s for s in old if s.id not in removing]
    reasons: list[Reason] = []
    if total and len(lost) > bounds.max_removed_share * total:
        reasons.append(Reason.TOO_MANY)
    if newest_lost:
        reasons.append(Reason.NEWEST)
    if old and not old_kept:
        reasons.append(Reason.HISTORY)
    verdict = Verdict(
        True,
        total=total,
        removed=len(remove),
        lost=len(lost),
        newest_removed=len(newest_lost),
        old=len(old),
        old_kept=len(old_kept),
        removed_ids=tuple(s.id for s in remove),
    )
    if not reasons:
        return verdict
    explained = "; ".join(_explain(reason, verdict, bounds) for reason in reasons)
    if ack is not None and ack_valid(ack, now, bounds):
        message = f"acknowledged at {ack.isoformat()}: {explained}"
        return replace(verdict, reasons=tuple(reasons), acknowledged=True, message=message)
    return replace(verdict, allowed=False, reasons=tuple(reasons), message=explained)


def _explain(reason: Reason, verdict: Verdict, bounds: Bounds) -> str:
    if reason is Reason.TOO_MANY:
        share = f"{bounds.max_removed_share:.0%}"
        return f"would lose {verdict.lost} of {verdict.total} snapshots (more than {share})"
    if reason is Reason.NEWEST:
        return f"would lose {verdict.newest_removed} of the newest {bounds.newest} snapshots"
    return f"would remove all {verdict.old} snapshots older than {_age(bounds.old_age)}"


def _age(delta: dt.timedelta) -> str:
    return "a day" if delta == dt.timedelta(days=1) else f"{delta.total_seconds():.0f} s"

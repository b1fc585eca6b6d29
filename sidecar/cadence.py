"""When each job runs: the schedule grammar and deterministic jitter, as pure functions.

Hundreds of PVCs labelled `backup: hourly` must not all hit S3 in the same minute, and a pod that
restarts must not move its slot (or two replicas of one RWX volume would drift apart). So the offset
of every job is derived from a hash of namespace/PVC/job, never from a random number: the same
volume always runs at the same second of its period, different volumes spread evenly over it.

`next_fire()` takes `now` explicitly, so tests walk the calendar without sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from apscheduler.triggers.cron import CronTrigger

UTC = dt.UTC

# How far the jitter may move a run, per schedule kind (seconds).
HOURLY_SPREAD = 3600  # anywhere in the hour
DAILY_SPREAD = 6 * 3600  # 00:00-06:00 UTC: quiet hours for most clusters and stores
CRON_SPREAD_MAX = 15 * 60  # a user's cron moves by at most 15 minutes (less if it fires more often)


@dataclass(frozen=True)
class Schedule:
    """A parsed LIFEBOAT_SCHEDULE: its kind (hourly, daily, cron) and the 5-field base expression."""

    kind: str
    cron: str

    def spread(self) -> int:
        """The window the jitter spreads runs over, never more than the gap between two runs."""
        if self.kind == "hourly":
            return HOURLY_SPREAD
        if self.kind in ("daily", "weekly"):
            return DAILY_SPREAD
        start = dt.datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; any fixed instant will do
        trigger = _trigger(self.cron)
        first = trigger.get_next_fire_time(None, start)
        second = trigger.get_next_fire_time(first, first + dt.timedelta(seconds=1)) if first else None
        gap = int((second - first).total_seconds()) if first and second else CRON_SPREAD_MAX
        return max(1, min(CRON_SPREAD_MAX, gap))


def parse_schedule(text: str) -> Schedule:
    """`hourly`, `daily`, or a 5-field cron expression (UTC); raises ValueError, worded for users."""
    value = " ".join(text.strip().split())
    if value.lower() in ("hourly", "@hourly"):
        return Schedule("hourly", "0 * * * *")
    if value.lower() in ("daily", "@daily", "nightly"):
        return Schedule("daily", "0 0 * * *")
    if len(value.split(" ")) != 5:
        raise ValueError(f"{text!r} is not hourly, daily or a 5-field cron expression such as '30 2 * * *'")
    try:
        _trigger(value)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid cron expression: {exc}") from None
    return Schedule("cron", value)


def jitter_seconds(namespace: str, pvc: str, job: str, spread: int) -> int:
    """A stable offset in [0, spread) for this volume's job: same inputs, same second, every time."""
    digest = hashlib.sha256(f"{namespace}/{pvc}/{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, spread)


def _trigger(cron: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=UTC)


def next_fire(cron: str, offset: int, now: dt.datetime, previous: dt.datetime | None = None) -> dt.datetime:
    """The first run strictly after `now` of `cron` shifted later by `offset` seconds."""
    shift = dt.timedelta(seconds=offset)
    trigger = _trigger(cron)
    base_now = now - shift + dt.timedelta(microseconds=1)
    base_prev = previous - shift if previous is not None else None
    fire = trigger.get_next_fire_time(base_prev, base_now)
    if fire is None:  # pragma: no cover - a 5-field cron always fires again
        raise ValueError(f"{cron!r} never fires again")
    return fire + shift


def parse_maintenance_schedule(text: str) -> Schedule:
    """Prune and check cadences: `weekly`, or anything LIFEBOAT_SCHEDULE accepts."""
    if text.strip().lower() in ("weekly", "@weekly"):
        return Schedule("weekly", "0 0 * * 0")
    return parse_schedule(text)

"""When each job runs: deterministic jitter over the contract's schedules, as pure functions.

Hundreds of PVCs labelled `backup: hourly` must not all hit S3 in the same minute, and a pod that
restarts must not move its slot (or two replicas of one RWX volume would drift apart). So the offset
of every job is derived from a hash of namespace/PVC/job, never from a random number: the same
volume always runs at the same second of its period, different volumes spread evenly over it.

The schedule grammar and crontab semantics live in lifeboat.contract (the webhook uses the same).
`next_fire()` takes `now` explicitly, so tests walk the calendar without sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from lifeboat.contract import Schedule, next_run

UTC = dt.UTC

# How far the jitter may move a run, per schedule kind (seconds).
HOURLY_SPREAD = 3600  # anywhere in the hour
DAILY_SPREAD = 6 * 3600  # 00:00-06:00 UTC: quiet hours for most clusters and stores
CRON_SPREAD_MAX = 15 * 60  # a user's cron moves by at most 15 minutes (less if it fires more often)


def spread(schedule: Schedule) -> int:
    """The window the jitter spreads runs over, never more than the gap between two runs."""
    if schedule.kind == "hourly":
        return HOURLY_SPREAD
    if schedule.kind in ("daily", "weekly"):
        return DAILY_SPREAD
    start = dt.datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; any fixed instant will do
    first = next_run(schedule.cron, start)
    second = next_run(schedule.cron, first)
    gap = int((second - first).total_seconds())
    return max(1, min(CRON_SPREAD_MAX, gap))


def jitter_seconds(namespace: str, pvc: str, job: str, spread: int) -> int:
    """A stable offset in [0, spread) for this volume's job: same inputs, same second, every time."""
    digest = hashlib.sha256(f"{namespace}/{pvc}/{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, spread)


def offset(namespace: str, pvc: str, job: str, schedule: Schedule) -> int:
    """Seconds after each of `schedule`'s runs that this volume's `job` starts (stable per volume).

    `weekly` (prune, check, drill): a day of the week and a second of 00:00-06:00 UTC, so 500 PVCs'
    weekly checks spread over seven nights instead of all landing on Sunday's
    (bench/scale_schedule.py); anything else: a second of `spread(schedule)`.
    """
    if schedule.kind == "weekly":
        day = jitter_seconds(namespace, pvc, f"{job}-day", 7)
        return day * 86400 + jitter_seconds(namespace, pvc, job, DAILY_SPREAD)
    return jitter_seconds(namespace, pvc, job, spread(schedule))


def next_fire(cron: str, offset: int, now: dt.datetime, previous: dt.datetime | None = None) -> dt.datetime:
    """The first run strictly after `now` of `cron` shifted later by `offset` seconds.

    `previous` (APScheduler passes the last fire time) does not change the answer: the next run
    only depends on the calendar.
    """
    shift = dt.timedelta(seconds=offset)
    base = now - shift
    # a cron fires on whole minutes; "strictly after" a whole-minute base must skip that minute
    return next_run(cron, base) + shift


def expected_interval(schedule: Schedule, *, runs: int = 400) -> int:
    """The longest gap between two runs of `schedule`, in seconds: how stale a backup may become
    before it is late (a weekday cron's Friday-to-Monday gap counts, not its usual day).
    Exported per PVC as `lifeboat_backup_interval_seconds`, so alerts judge staleness per schedule."""
    if schedule.kind == "hourly":
        return 3600
    if schedule.kind == "daily":
        return 86400
    if schedule.kind == "weekly":
        return 7 * 86400
    t = next_run(schedule.cron, dt.datetime(2026, 1, 5, tzinfo=UTC))
    longest = 0
    for _ in range(runs):
        following = next_run(schedule.cron, t)
        longest = max(longest, int((following - t).total_seconds()))
        t = following
    return longest


# --- the first backup after start ----------------------------------------------------------------


@dataclass(frozen=True)
class FirstBackup:
    """When a volume's first backup after start runs, and on which condition."""

    at: dt.datetime
    only_if_unprotected: bool  # True: runs only when the repository holds no snapshot


def first_backup(
    outcome: str | None, namespace: str, pvc: str, now: dt.datetime, delay: float
) -> FirstBackup:
    """`restored`/`fresh`: after `delay` (LIFEBOAT_FIRST_BACKUP_DELAY; the history must carry this
    volume instance at once). `skipped` or unknown (the volume held data, so the store was not
    asked): somewhere in [0, 2 x delay) seconds (0-60 s by default), jittered per volume so one
    node's pods do not all ask the store at once, and only if no snapshot protects the data yet:
    a PVC labelled after its app wrote to it is not left unprotected until its slot (issue 14 item 8).
    """
    if outcome in ("restored", "fresh"):
        return FirstBackup(now + dt.timedelta(seconds=delay), only_if_unprotected=False)
    window = int(2 * delay)
    offset = jitter_seconds(namespace, pvc, "first-backup", window) if window > 0 else 0
    return FirstBackup(now + dt.timedelta(seconds=offset), only_if_unprotected=True)


def next_backup(
    first: FirstBackup | None, scheduled: dt.datetime | None, protected: bool | None
) -> dt.datetime | None:
    """The next backup that will really run: the first backup unless it is conditional and the
    volume is known to be protected already (`protected` None: not known yet, so it counts)."""
    candidates = [t for t in (scheduled,) if t is not None]
    if first is not None and not (first.only_if_unprotected and protected):
        candidates.append(first.at)
    return min(candidates, default=None)

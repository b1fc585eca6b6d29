"""APScheduler wiring: jittered cron triggers, one run at a time per job, misfires coalesced.

The timing itself is pure (sidecar.daemon.cadence); this module only adapts it to APScheduler so the
scheduler's thread fires jobs at those instants. Jobs never overlap (`max_instances=1`); a run
missed while the process was busy or suspended happens once, late, not N times (`coalesce`); a
late run is never dropped (`misfire_grace_time=None`): a late backup beats a missing one.
Tests trigger jobs with `run_now()` instead of waiting for the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger

from sidecar.daemon.cadence import UTC, next_fire


class JitteredCron(BaseTrigger):
    """A 5-field cron shifted later by a fixed number of seconds (the volume's jitter)."""

    def __init__(self, cron: str, offset: int) -> None:
        self.cron = cron
        self.offset = offset

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        # APScheduler asks with `now` equal to a due time and expects that time back
        return next_fire(self.cron, self.offset, now - dt.timedelta(microseconds=1), previous_fire_time)

    def __str__(self) -> str:
        return f"cron[{self.cron}]+{self.offset}s"


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[], Any]
    cron: str
    offset: int


class Scheduler:
    """The sidecar's clock: recurring jittered jobs plus one-off runs (first backup, retries)."""

    def __init__(self, jobs: list[JobSpec], *, workers: int) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=max(1, workers))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for job in jobs:
            self._scheduler.add_job(job.func, JitteredCron(job.cron, job.offset), id=job.id, name=job.id)

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Stops firing; running jobs are the caller's to cancel (it holds their cancel tokens)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def next_run(self, job_id: str) -> dt.datetime | None:
        job = self._scheduler.get_job(job_id)
        return None if job is None else job.next_run_time

    def run_once(self, job_id: str, func: Callable[[], Any], when: dt.datetime) -> None:
        """A one-off run at `when` (replacing a pending one of the same id)."""
        self._scheduler.add_job(func, DateTrigger(when, timezone=UTC), id=job_id, replace_existing=True)

    def run_now(self, job_id: str) -> None:
        """Fires a recurring job now; its regular schedule continues afterwards."""
        self.move(job_id, dt.datetime.now(UTC))

    def move(self, job_id: str, when: dt.datetime) -> None:
        """Sets a job's next run; a time in the past is an overdue run (as after a suspension)."""
        self._scheduler.modify_job(job_id, next_run_time=when)

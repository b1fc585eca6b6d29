"""The APScheduler wiring with real threads: missed runs coalesce, a job never overlaps itself."""

from __future__ import annotations

import datetime as dt
import threading
import time

from sidecar.daemon.cadence import UTC
from sidecar.daemon.scheduler import JobSpec, Scheduler


def test_runs_missed_while_suspended_happen_once_not_n_times() -> None:
    runs: list[float] = []
    scheduler = Scheduler(
        [JobSpec("backup:data", lambda: runs.append(time.time()), "* * * * *", 7)], workers=2
    )
    scheduler.start()
    try:
        # the process was suspended for three periods: three runs are overdue
        scheduler.move("backup:data", dt.datetime.now(UTC) - dt.timedelta(minutes=3))
        deadline = time.monotonic() + 5
        while not runs and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        next_run = scheduler.next_run("backup:data")
    finally:
        scheduler.shutdown()
    assert len(runs) == 1
    assert next_run is not None and next_run.second == 7  # back on the volume's jittered second


def test_a_job_triggered_while_running_does_not_start_a_second_copy() -> None:
    running = threading.Event()
    release = threading.Event()
    active: list[int] = []
    peak: list[int] = []

    def job() -> None:
        active.append(1)
        peak.append(len(active))
        running.set()
        release.wait(5)
        active.pop()

    scheduler = Scheduler([JobSpec("backup:data", job, "0 0 1 1 *", 0)], workers=4)
    scheduler.start()
    try:
        scheduler.run_now("backup:data")
        assert running.wait(5)
        for _ in range(3):
            scheduler.run_now("backup:data")
            time.sleep(0.1)
        release.set()
        time.sleep(0.5)
    finally:
        scheduler.shutdown()
    assert max(peak) == 1


def test_the_expected_interval_is_the_longest_gap_of_the_schedule() -> None:
    from lifeboat.contract import parse_schedule
    from sidecar.daemon.cadence import expected_interval

    assert expected_interval(parse_schedule("hourly")) == 3600
    assert expected_interval(parse_schedule("daily")) == 86400
    assert expected_interval(parse_schedule("*/10 * * * *")) == 600
    assert expected_interval(parse_schedule("0 3 * * 1-5")) == 3 * 86400  # Friday to Monday

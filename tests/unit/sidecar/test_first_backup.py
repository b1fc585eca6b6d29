"""When the first backup after start runs (sidecar.daemon.cadence, issue 14 item 8).

A volume labelled while it already held data used to wait for its slot, up to a day, while its
data had no snapshot at all. Pure: `now` is passed in.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sidecar.daemon.cadence import FirstBackup, first_backup, next_backup

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("outcome", ["restored", "fresh"])
def test_a_restored_or_fresh_volume_is_backed_up_after_the_first_backup_delay(outcome: str) -> None:
    first = first_backup(outcome, "apps", "data", NOW, 30)
    assert first == FirstBackup(NOW + dt.timedelta(seconds=30), only_if_unprotected=False)


@pytest.mark.parametrize("outcome", ["skipped", None])
def test_a_volume_that_held_data_is_checked_within_a_minute_and_backed_up_if_unprotected(
    outcome: str | None,
) -> None:
    first = first_backup(outcome, "apps", "data", NOW, 30)
    assert first.only_if_unprotected
    assert NOW <= first.at < NOW + dt.timedelta(seconds=60)


def test_the_check_is_jittered_per_volume_and_stable_across_restarts() -> None:
    times = {first_backup("skipped", "apps", f"pvc-{i}", NOW, 30).at for i in range(40)}
    assert len(times) > 20  # spread over the minute, not all at once
    assert first_backup("skipped", "apps", "pvc-1", NOW, 30) == first_backup(
        "skipped", "apps", "pvc-1", NOW, 30
    )


def test_with_no_delay_the_check_runs_at_once() -> None:
    assert first_backup("skipped", "apps", "data", NOW, 0).at == NOW


def test_the_started_line_names_the_first_backup_when_it_comes_before_the_slot() -> None:
    slot = NOW + dt.timedelta(hours=20)
    first = first_backup("skipped", "apps", "data", NOW, 30)
    assert next_backup(first, slot, protected=None) == first.at  # not known yet: it will run
    assert next_backup(first, slot, protected=False) == first.at


def test_a_conditional_first_backup_of_a_protected_volume_leaves_the_slot_as_next() -> None:
    slot = NOW + dt.timedelta(hours=20)
    assert next_backup(first_backup("skipped", "apps", "data", NOW, 30), slot, protected=True) == slot
    # an unconditional first backup always runs
    assert next_backup(first_backup("fresh", "apps", "data", NOW, 30), slot, protected=True) < slot
    assert next_backup(None, slot, protected=None) == slot

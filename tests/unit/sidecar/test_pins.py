"""Snapshot pins apply to the restore they were meant for (issue 14 item 6, docs/restore.md).

A pinned restore tags what it restored `pin-applied=<pin>`; every later backup carries the tag on,
so a later restore with the same pin left on the PVC (or in Git) restores the latest instead of
rolling the volume back, and is not blocked once retention forgot the pinned snapshot. Pure.
"""

from __future__ import annotations

import datetime as dt

from lifeboat.contract import parse_pin
from sidecar.restore.decision import (
    Action,
    SnapshotRef,
    StoreAnswer,
    VolumeState,
    decide,
    pin_applied_tag,
    pin_key,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def snap(id_: str, hours: int, *tags: str) -> SnapshotRef:
    return SnapshotRef(id_ * 8, T0 + dt.timedelta(hours=hours), tags)


GOOD, BAD = snap("a", 1), snap("b", 2)


def test_a_fresh_pin_restores_the_pinned_snapshot_and_asks_to_mark_it() -> None:
    pin = parse_pin("aaaaaaaa")
    decision = decide(VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, [GOOD, BAD], pin)
    assert decision.action is Action.RESTORE and decision.snapshot == GOOD
    assert decision.mark_pin == "pin-applied=aaaaaaaa"
    assert "pinned by lifeboat.dev/restore-snapshot aaaaaaaa" in decision.reason


def test_a_pin_already_applied_is_ignored_and_the_latest_restored() -> None:
    pin = parse_pin("aaaaaaaa")
    after = snap("c", 30, "pin-applied=aaaaaaaa")  # a backup after the pinned restore
    decision = decide(
        VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, [snap("a", 1, "pin-applied=aaaaaaaa"), BAD, after], pin
    )
    assert decision.action is Action.RESTORE and decision.snapshot == after
    assert decision.mark_pin is None
    assert (
        "was applied by an earlier restore" in decision.reason and "remove the annotation" in decision.reason
    )


def test_a_spent_pin_does_not_block_once_retention_forgot_its_snapshot() -> None:
    pin = parse_pin("aaaaaaaa")
    later = [snap("c", 30, "pin-applied=aaaaaaaa"), snap("d", 40, "pin-applied=aaaaaaaa")]
    decision = decide(VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, later, pin)
    assert decision.action is Action.RESTORE and decision.snapshot == later[-1]


def test_an_unused_pin_that_matches_nothing_still_fails_so_a_typo_is_fixed() -> None:
    decision = decide(VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, [GOOD, BAD], parse_pin("deadbeef"))
    assert decision.action is Action.FAIL and decision.exit_code == 78


def test_time_pins_are_keyed_in_utc_and_another_pin_is_not_spent_by_the_first() -> None:
    pin = parse_pin("2026-01-01T02:30:00+01:00")
    assert pin is not None and pin_key(pin) == "20260101T013000Z"
    decision = decide(
        VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, [GOOD, snap("b", 2, "pin-applied=aaaaaaaa")], pin
    )
    assert decision.snapshot == GOOD and decision.mark_pin == pin_applied_tag(pin)


def test_a_pin_on_a_volume_with_data_is_ignored_and_says_so() -> None:
    decision = decide(VolumeState.HAS_DATA, None, (), parse_pin("aaaaaaaa"))
    assert decision.action is Action.SKIP
    assert "applies only to a restore into an empty volume" in decision.reason

"""The restore decision table, exhaustively, as a pure function (no store, no volume)."""

from __future__ import annotations

import datetime as dt

import pytest

from lifeboat.contract import Pin, parse_pin
from sidecar.restore.decision import (
    Action,
    SnapshotRef,
    StoreAnswer,
    VolumeState,
    backoff,
    choose_snapshot,
    decide,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SNAPS = [SnapshotRef(f"{i:02x}" * 32, T0 + dt.timedelta(hours=i)) for i in range(1, 4)]

# volume, store answer, snapshots, expected action, expected exit code
TABLE = [
    (VolumeState.HAS_DATA, None, (), Action.SKIP, 0),
    (VolumeState.HAS_DATA, StoreAnswer.UNREACHABLE, (), Action.SKIP, 0),
    (VolumeState.PENDING, None, (), Action.RESUME, 0),
    (VolumeState.EMPTY, StoreAnswer.NO_REPOSITORY, (), Action.FRESH, 0),
    (VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, (), Action.FRESH, 0),
    (VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, SNAPS, Action.RESTORE, 0),
    (VolumeState.EMPTY, StoreAnswer.UNREACHABLE, (), Action.RETRY, 75),
    (VolumeState.EMPTY, StoreAnswer.BUCKET_MISSING, (), Action.RETRY, 75),
    (VolumeState.EMPTY, StoreAnswer.INCONSISTENT, (), Action.RETRY, 75),
    (VolumeState.EMPTY, None, (), Action.RETRY, 75),
    (VolumeState.EMPTY, StoreAnswer.DENIED, (), Action.FAIL, 77),
    (VolumeState.EMPTY, StoreAnswer.WRONG_PASSWORD, (), Action.FAIL, 77),
]


@pytest.mark.parametrize(("volume", "answer", "snapshots", "action", "code"), TABLE)
def test_every_row_of_the_restore_table(
    volume: VolumeState,
    answer: StoreAnswer | None,
    snapshots: tuple[SnapshotRef, ...],
    action: Action,
    code: int,
) -> None:
    decision = decide(volume, answer, snapshots)
    assert (decision.action, decision.exit_code) == (action, code)


def test_only_a_positive_answer_ever_leads_to_fresh() -> None:
    for answer in [None, *StoreAnswer]:
        decision = decide(VolumeState.EMPTY, answer, ())
        positive = answer in (StoreAnswer.NO_REPOSITORY, StoreAnswer.SNAPSHOTS)
        assert (decision.action is Action.FRESH) == positive, answer


def test_a_volume_with_data_is_never_restored_whatever_the_store_says() -> None:
    for answer in [None, *StoreAnswer]:
        assert decide(VolumeState.HAS_DATA, answer, SNAPS).action is Action.SKIP


def test_the_latest_snapshot_is_chosen() -> None:
    assert decide(VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, list(reversed(SNAPS))).snapshot == SNAPS[-1]


def test_a_pinned_id_prefix_chooses_that_snapshot() -> None:
    assert choose_snapshot(SNAPS, Pin(snapshot_id=SNAPS[0].id[:8])) == SNAPS[0]


def test_an_ambiguous_id_prefix_chooses_nothing() -> None:
    twins = [SnapshotRef("abcdef01" + "0" * 56, T0), SnapshotRef("abcdef01" + "1" * 56, T0)]
    assert choose_snapshot(twins, Pin(snapshot_id="abcdef01")) is None


def test_a_pinned_time_chooses_the_latest_at_or_before_it() -> None:
    assert choose_snapshot(SNAPS, Pin(at_or_before=SNAPS[1].time)) == SNAPS[1]
    assert choose_snapshot(SNAPS, Pin(at_or_before=SNAPS[1].time + dt.timedelta(minutes=59))) == SNAPS[1]
    assert choose_snapshot(SNAPS, Pin(at_or_before=T0)) is None


def test_a_pin_that_matches_nothing_is_a_config_error_not_fresh() -> None:
    decision = decide(VolumeState.EMPTY, StoreAnswer.SNAPSHOTS, SNAPS, Pin(snapshot_id="ffffffff"))
    assert (decision.action, decision.exit_code) == (Action.FAIL, 78)
    assert "lifeboat.dev/restore-snapshot" in decision.reason


def test_a_pin_without_any_repository_is_a_config_error_not_fresh() -> None:
    decision = decide(VolumeState.EMPTY, StoreAnswer.NO_REPOSITORY, (), Pin(snapshot_id="abcdef01"))
    assert (decision.action, decision.exit_code) == (Action.FAIL, 78)


@pytest.mark.parametrize(
    ("text", "pin"),
    [
        (None, None),
        ("", None),
        ("latest", None),
        ("1a2b3c4d", Pin(snapshot_id="1a2b3c4d")),
        ("2026-01-31T23:00:00Z", Pin(at_or_before=dt.datetime(2026, 1, 31, 23, tzinfo=dt.UTC))),
        (
            "2026-01-31T23:00:00+01:00",
            Pin(at_or_before=dt.datetime(2026, 1, 31, 22, tzinfo=dt.UTC)),
        ),
    ],
)
def test_pins_are_parsed_from_ids_and_rfc3339_times(text: str | None, pin: Pin | None) -> None:
    assert parse_pin(text) == pin


@pytest.mark.parametrize("text", ["yesterday", "2026-01-31T23:00:00", "1a2b"])
def test_bad_pins_are_refused_with_the_expected_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|time zone"):
        parse_pin(text)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    assert [backoff(n, 2, 60, 0.5) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff(0, 2, 60, 0.0) == pytest.approx(1.6)
    assert backoff(0, 2, 60, 0.999) < 2.4
    assert backoff(1000, 2, 60, 0.5) == 60

"""Whether a forget would remove anything: restic's own policy, applied to a known snapshot list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from sidecar.daemon.retention import plan, removes_anything

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 28, 9, 30, tzinfo=UTC)  # a Saturday


@dataclass(frozen=True)
class Snap:
    id: str
    time: dt.datetime
    hostname: str = "lifeboat"
    tags: tuple[str, ...] = ("lifeboat", "pvc=data")


def hourly(n: int, *, start: dt.datetime = T0, step: dt.timedelta = dt.timedelta(hours=1)) -> list[Snap]:
    """`n` snapshots, the newest at `start`, one every `step` before it."""
    return [Snap(f"s{i}", start - i * step) for i in range(n)]


def removed(snapshots: list[Snap], policy: dict[str, int]) -> set[str]:
    return {s.id for s in plan(snapshots, policy)[1]}


def test_a_young_history_under_the_hourly_default_loses_nothing() -> None:
    policy = {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6}
    assert not removes_anything(hourly(24), policy)
    assert not removes_anything([], policy)


def test_snapshots_beyond_the_hourly_count_go_unless_another_rule_keeps_them() -> None:
    # s0 is 09:30 on the 28th, s10 23:30 and s24/s25 09:30/08:30 on the 27th
    assert removed(hourly(26), {"hourly": 24}) == {"s24", "s25"}
    # daily keeps s10 (the 27th's newest) and the oldest, s25, while it has counts left
    assert removed(hourly(26), {"hourly": 24, "daily": 7}) == {"s24"}


def test_a_second_snapshot_in_the_same_hour_replaces_nothing_while_it_is_the_oldest() -> None:
    # restic keeps the oldest snapshot while a rule has counts left
    two = [Snap("new", T0), Snap("old", T0 - dt.timedelta(minutes=10))]
    assert not removes_anything(two, {"hourly": 24})


def test_a_middle_snapshot_in_the_same_hour_is_removed() -> None:
    three = [
        Snap("new", T0),
        Snap("mid", T0 - dt.timedelta(minutes=5)),
        Snap("old", T0 - dt.timedelta(hours=2)),
    ]
    assert removed(three, {"hourly": 24}) == {"mid"}


def test_keep_last_removes_beyond_its_count() -> None:
    assert not removes_anything(hourly(2), {"last": 2})
    assert removed(hourly(3), {"last": 2}) == {"s2"}


def test_a_daily_schedule_keeps_everything_until_the_count_is_spent() -> None:
    days = hourly(7, step=dt.timedelta(days=1))
    assert not removes_anything(days, {"daily": 7, "weekly": 4, "monthly": 6})
    assert removed(hourly(8, step=dt.timedelta(days=1)), {"daily": 7}) == {"s7"}
    # weekly keeps the eighth day when it is the newest of its ISO week (Saturday the 21st)
    assert not removes_anything(hourly(8, step=dt.timedelta(days=1)), {"daily": 7, "weekly": 4})


def test_snapshots_without_the_lifeboat_tag_are_never_counted_or_removed() -> None:
    volsync = [Snap(f"v{i}", T0 - dt.timedelta(hours=i), hostname="volsync", tags=()) for i in range(5)]
    assert not removes_anything([*volsync, Snap("mine", T0 + dt.timedelta(minutes=1))], {"last": 1})


def test_each_host_is_its_own_group() -> None:
    a = [Snap("a0", T0), Snap("a1", T0 - dt.timedelta(hours=1))]
    b = [Snap("b0", T0, hostname="other"), Snap("b1", T0 - dt.timedelta(hours=1), hostname="other")]
    assert not removes_anything([*a, *b], {"last": 2})
    assert removed([*a, *b, Snap("a2", T0 - dt.timedelta(hours=2))], {"last": 2}) == {"a2"}


def test_buckets_are_read_in_the_snapshots_own_offset() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    # 23:30 and 22:30 UTC are on one UTC day but on two days at +02:00 (01:30 and 00:30 next day: one)
    late = dt.datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    earlier = dt.datetime(2026, 11, 27, 21, 30, tzinfo=UTC)
    oldest = dt.datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    utc = [Snap("late", late), Snap("earlier", earlier), Snap("oldest", oldest)]
    assert removed(utc, {"daily": 7}) == {"earlier"}
    shifted = [Snap(s.id, s.time.astimezone(plus2)) for s in utc]
    assert removed(shifted, {"daily": 7}) == set()  # 01:30 on the 28th, 23:30 on the 27th


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one keep rule"):
        plan(hourly(2), {})

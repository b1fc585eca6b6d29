"""The retention breaker as a pure decision: what restic's dry-run would remove, judged against `now`.

Every test builds snapshot lists in memory; the dry-run, the store's clock and the real forget are
covered on real restic and SeaweedFS in tests/integration/sidecar/test_retention_breaker.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from injector.config import InjectorSettings
from injector.decision import Context, Deny, Inject, PodRequest, PvcInfo, decide
from injector.patches import build_containers
from lifeboat.contract import (
    ENV_RETENTION_ACK,
    RETENTION_ACK_ANNOTATION,
    ConfigError,
    parse_retention_ack,
)
from sidecar.daemon.breaker import Reason, Verdict, ack_valid, judge_clock, judge_forget
from sidecar.runtime import Runtime
from sidecar.settings import VolumeSpec, build_runtime, load_sidecar_settings

NOW = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Snap:
    id: str
    time: dt.datetime


def hourly(count: int, *, newest: dt.datetime = NOW - dt.timedelta(minutes=20)) -> list[Snap]:
    """`count` snapshots one hour apart, newest first."""
    return [Snap(f"h{i:03d}", newest - dt.timedelta(hours=i)) for i in range(count)]


def split(snaps: list[Snap], keep_ids: set[str]) -> tuple[list[Snap], list[Snap]]:
    return [s for s in snaps if s.id in keep_ids], [s for s in snaps if s.id not in keep_ids]


def judge(snaps: list[Snap], keep_ids: set[str], policy: str = "hourly=24,daily=7", **kw: object) -> Verdict:
    keep, remove = split(snaps, keep_ids)
    rules = dict((rule, int(count)) for rule, count in (item.split("=") for item in policy.split(",")))
    return judge_forget(keep, remove, policy=rules, now=kw.pop("now", NOW), **kw)  # type: ignore[arg-type]


# --- what is refused ------------------------------------------------------------------------------


def test_a_change_to_last_1_on_40_snapshots_is_refused_for_every_reason() -> None:
    snaps = hourly(40)
    verdict = judge(snaps, {snaps[0].id}, "last=1")
    assert not verdict.allowed
    assert verdict.reasons == (Reason.TOO_MANY, Reason.NEWEST, Reason.HISTORY)
    assert (verdict.total, verdict.removed, verdict.lost, verdict.newest_removed) == (40, 39, 39, 2)
    assert verdict.old == 40 - 24 and verdict.old_kept == 0
    assert "would lose 39 of 40 snapshots" in verdict.message


def test_removing_more_than_half_of_the_snapshots_is_refused() -> None:
    snaps = hourly(10)
    verdict = judge(snaps, {s.id for s in snaps[:3]} | {snaps[9].id}, "hourly=3")
    assert not verdict.allowed
    assert verdict.reasons == (Reason.TOO_MANY,)


def test_removing_exactly_half_is_allowed() -> None:
    snaps = hourly(10)
    assert judge(snaps, {s.id for s in snaps[:5]}, "hourly=5").allowed


def test_removing_one_of_the_newest_three_is_refused() -> None:
    snaps = hourly(6)
    verdict = judge(snaps, {s.id for s in snaps if s is not snaps[2]}, "last=5")
    assert verdict.reasons == (Reason.NEWEST,)
    assert verdict.newest_removed == 1


def test_removing_every_snapshot_older_than_a_day_is_refused() -> None:
    snaps = hourly(30)
    verdict = judge(snaps, {s.id for s in snaps[:24]}, "hourly=24")
    assert verdict.reasons == (Reason.HISTORY,)
    assert (verdict.old, verdict.old_kept) == (6, 0)


# --- what is ordinary retention -------------------------------------------------------------------


def test_the_hourly_forget_after_a_backup_is_allowed() -> None:
    snaps = hourly(26)
    verdict = judge(snaps, {s.id for s in snaps[:24]} | {snaps[25].id})
    assert verdict.allowed and not verdict.reasons and verdict.removed == 1


def test_a_final_backup_and_the_next_scheduled_one_in_the_same_hour_are_thinned_not_lost() -> None:
    scheduled = Snap("scheduled", NOW.replace(minute=55))
    final = Snap("final", NOW.replace(minute=10))
    older = [Snap(f"o{i}", NOW - dt.timedelta(hours=i)) for i in range(1, 30)]
    verdict = judge_forget([scheduled, *older], [final], policy={"hourly": 24, "daily": 7}, now=NOW)
    assert verdict.allowed, verdict.message


def test_two_pod_restarts_in_one_day_on_a_daily_schedule_are_thinned_not_lost() -> None:
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    first, second = Snap("f1", day.replace(hour=10)), Snap("f2", day.replace(hour=14))
    scheduled = Snap("s", NOW.replace(hour=3))
    history = [Snap(f"d{i}", day - dt.timedelta(days=i)) for i in range(1, 7)]
    verdict = judge_forget([scheduled, second, *history], [first], policy={"daily": 7}, now=NOW)
    assert verdict.allowed, verdict.message


def test_backups_seconds_apart_under_a_last_rule_are_thinned_not_lost() -> None:
    snaps = [Snap(f"s{i}", NOW - dt.timedelta(seconds=10 * i)) for i in range(3)]
    assert judge(snaps, {snaps[0].id, snaps[1].id}, "last=2").allowed


def test_a_young_repository_has_no_history_rule_to_break() -> None:
    snaps = [Snap(f"s{i}", NOW - dt.timedelta(minutes=i)) for i in range(2)]
    verdict = judge(snaps, {snaps[0].id}, "last=1")
    assert verdict.allowed and verdict.old == 0


def test_an_empty_repository_is_allowed() -> None:
    assert judge([], set()).allowed


# --- the acknowledgement --------------------------------------------------------------------------


def test_a_fresh_acknowledgement_lets_a_refused_change_through_and_says_so() -> None:
    snaps = hourly(40)
    verdict = judge(snaps, {snaps[0].id}, "last=1", ack=NOW - dt.timedelta(hours=2))
    assert verdict.allowed and verdict.acknowledged
    assert verdict.reasons  # still named, for the log line
    assert verdict.message.startswith("acknowledged at 2026-11-27T10:30:00+00:00")


def test_an_acknowledgement_older_than_a_day_is_ignored() -> None:
    snaps = hourly(40)
    verdict = judge(snaps, {snaps[0].id}, "last=1", ack=NOW - dt.timedelta(days=1, seconds=1))
    assert not verdict.allowed and not verdict.acknowledged


def test_an_acknowledgement_from_the_future_is_ignored_beyond_a_few_minutes() -> None:
    assert ack_valid(NOW + dt.timedelta(minutes=4), NOW)
    assert not ack_valid(NOW + dt.timedelta(minutes=6), NOW)
    assert not ack_valid(NOW + dt.timedelta(days=365), NOW)


def test_no_acknowledgement_is_needed_for_ordinary_retention() -> None:
    snaps = hourly(26)
    verdict = judge(snaps, {s.id for s in snaps[:25]}, ack=NOW)
    assert verdict.allowed and not verdict.acknowledged


# --- the clock ------------------------------------------------------------------------------------


def test_a_clock_within_ten_minutes_of_the_store_is_trusted() -> None:
    verdict = judge_clock(NOW, NOW - dt.timedelta(minutes=9))
    assert verdict.allowed and verdict.skew_seconds == 540


def test_a_clock_two_days_ahead_of_the_store_stops_forget_and_prune() -> None:
    verdict = judge_clock(NOW + dt.timedelta(days=2), NOW)
    assert not verdict.allowed and verdict.reasons == (Reason.CLOCK_SKEW,)
    assert verdict.skew_seconds == 2 * 86400
    assert "172800 s ahead of the store's" in verdict.message


def test_a_clock_behind_the_store_is_refused_too() -> None:
    verdict = judge_clock(NOW - dt.timedelta(minutes=11), NOW)
    assert verdict.reasons == (Reason.CLOCK_SKEW,) and "behind" in verdict.message


def test_a_store_whose_time_cannot_be_read_holds_this_round() -> None:
    verdict = judge_clock(NOW, None, error="connection refused")
    assert not verdict.allowed and verdict.reasons == (Reason.CLOCK_UNKNOWN,)
    assert "connection refused" in verdict.message


# --- one grammar for the webhook and the sidecar --------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2026-11-27T10:00:00Z", "2026-11-27 11:00:00+01:00", "2026-11-27T10:00:00.25Z"]
)
def test_the_acknowledgement_is_an_rfc_3339_time_with_a_zone(value: str) -> None:
    assert parse_retention_ack(value).astimezone(dt.UTC).replace(microsecond=0) == dt.datetime(
        2026, 11, 27, 10, 0, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    "value", ["yes", "true", "latest", "", "2026-11-27T10:00:00", "deadbeef", "2026-13-01T00:00Z"]
)
def test_anything_else_is_refused_with_the_command_that_writes_one(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_retention_ack(value)
    assert "date -u +%Y-%m-%dT%H:%M:%SZ" in str(refused.value)


BASE = {
    "LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:9",
    "LIFEBOAT_S3_BUCKET": "bucket",
    "AWS_ACCESS_KEY_ID": "access-key",
    "AWS_SECRET_ACCESS_KEY": "secret-key-value",
    "RESTIC_PASSWORD": "password-value",
    "LIFEBOAT_NAMESPACE": "apps",
}


def test_the_sidecar_carries_the_acknowledgement_into_its_slim_runtime() -> None:
    settings = load_sidecar_settings({**BASE, ENV_RETENTION_ACK: " 2026-11-27T10:00:00Z "})
    runtime = build_runtime(settings, [VolumeSpec("data", Path("/data"))])
    assert runtime.retention_ack == "2026-11-27T10:00:00Z"
    assert Runtime.from_json(runtime.to_json()).retention_ack == "2026-11-27T10:00:00Z"
    assert "retention_ack" in {f.name for f in fields(Runtime)}


def test_the_sidecar_refuses_to_start_on_an_acknowledgement_that_is_not_a_time() -> None:
    with pytest.raises(ConfigError) as refused:
        load_sidecar_settings({**BASE, ENV_RETENTION_ACK: "yes"})
    assert ENV_RETENTION_ACK in str(refused.value)


def admission(**annotations: str) -> object:
    pod = {
        "metadata": {"name": "p", "annotations": {}},
        "spec": {
            "containers": [{"name": "app", "image": "app"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    request = PodRequest("uid", "CREATE", "pods", "", "apps", pod)
    claim = PvcInfo("data", "uid-data", {"backup": "hourly"}, annotations)
    return decide(request, {"data": claim}, Context(own_namespace="lifeboat"))


def test_the_webhook_passes_the_acknowledgement_to_the_backup_sidecar() -> None:
    plan = admission(**{RETENTION_ACK_ANNOTATION: "2026-11-27 11:00:00+01:00"})
    assert isinstance(plan, Inject)
    assert plan.volumes[0].retention_ack == "2026-11-27T10:00:00Z"
    restore, backup = build_containers(plan, InjectorSettings(), "state", "cache", 9090)
    assert "data=2026-11-27T10:00:00Z" in backup["args"]  # --retention-ack, for this PVC only
    assert not any("retention-ack" in a for a in restore["args"])


def test_without_the_annotation_the_sidecar_gets_no_acknowledgement() -> None:
    plan = admission()
    assert isinstance(plan, Inject) and plan.volumes[0].retention_ack is None
    _, backup = build_containers(plan, InjectorSettings(), "state", "cache", 9090)
    assert "--retention-ack" not in backup["args"]


def test_the_webhook_refuses_an_acknowledgement_the_sidecar_could_not_read() -> None:
    denied = admission(**{RETENTION_ACK_ANNOTATION: "yes"})
    assert isinstance(denied, Deny)
    assert RETENTION_ACK_ANNOTATION in denied.message and "date -u" in denied.message

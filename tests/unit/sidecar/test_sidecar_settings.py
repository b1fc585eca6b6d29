"""Sidecar configuration, schedules and jitter: pure, fast, no store needed."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from lifeboat.contract import parse_schedule
from sidecar.daemon.cadence import UTC, jitter_seconds, next_fire, offset, spread
from sidecar.daemon.main import main
from sidecar.daemon.retention import default_retention, parse_retention
from sidecar.daemon.scheduler import JitteredCron
from sidecar.runtime import Runtime
from sidecar.settings import EX_CONFIG, VolumeSpec, build_runtime, load_sidecar_settings

BASE = {
    "LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:9",
    "LIFEBOAT_S3_BUCKET": "bucket",
    "AWS_ACCESS_KEY_ID": "access-key",
    "AWS_SECRET_ACCESS_KEY": "secret-key-value",
    "RESTIC_PASSWORD": "password-value",
    "LIFEBOAT_NAMESPACE": "apps",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIFEBOAT_SCHEDULE", "every hour"),
        ("LIFEBOAT_SCHEDULE", "61 * * * *"),
        ("LIFEBOAT_RETENTION", "hourly=24,dayly=7"),
        ("LIFEBOAT_RETENTION", "daily=0"),
        ("LIFEBOAT_METRICS_PORT", "70000"),
        ("LIFEBOAT_FINAL_BACKUP_TIMEOUT", "soon"),
        ("LIFEBOAT_ADOPT", "perhaps"),
        ("LIFEBOAT_SHRINK_LIMIT", "1.5"),
        ("LIFEBOAT_CHECK_READ_DATA_SUBSET", "120%"),
        ("LIFEBOAT_PRUNE_SCHEDULE", "sometimes"),
    ],
)
def test_invalid_value_exits_78_naming_the_variable(
    name: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([VolumeSpec("data", tmp_path)], {**BASE, name: value})
    assert code == EX_CONFIG
    err = capsys.readouterr().err
    assert name in err
    assert "secret-key-value" not in err and "password-value" not in err


def test_defaults_follow_the_schedule() -> None:
    hourly = load_sidecar_settings(BASE)
    daily = load_sidecar_settings({**BASE, "LIFEBOAT_SCHEDULE": "daily"})
    assert hourly.retention == {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6}
    assert daily.retention == {"daily": 7, "weekly": 4, "monthly": 6}
    assert hourly.metrics_port == 9090
    assert not hourly.adopt
    explicit = load_sidecar_settings({**BASE, "LIFEBOAT_RETENTION": "daily=3, keep-weekly=2"})
    assert explicit.retention == {"daily": 3, "weekly": 2}


def test_retention_parser_orders_rules_like_restic() -> None:
    assert list(parse_retention("monthly=1,last=3")) == ["last", "monthly"]
    assert default_retention("cron")["last"] == 24


def test_jitter_is_stable_and_spreads_500_pvcs_over_the_hour() -> None:
    names = [f"pvc-{i}" for i in range(500)]
    offsets = [jitter_seconds("apps", n, "backup", 3600) for n in names]
    assert offsets == [jitter_seconds("apps", n, "backup", 3600) for n in names]  # deterministic
    per_minute = collections.Counter(o // 60 for o in offsets)
    assert len(per_minute) >= 55  # nearly every minute of the hour is used
    assert max(per_minute.values()) <= 20  # ~8.3 expected; no minute gets a crowd
    assert len(set(offsets)) >= 450
    # the backup, prune and check of one volume do not share a second
    assert len({jitter_seconds("apps", "db", job, 3600) for job in ("backup", "prune", "check")}) == 3


def test_hourly_schedule_fires_at_the_volume_offset_every_hour() -> None:
    schedule = parse_schedule("hourly")
    offset = jitter_seconds("apps", "db", "backup", spread(schedule))
    now = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    first = next_fire(schedule.cron, offset, now)
    second = next_fire(schedule.cron, offset, first)
    assert first == now + dt.timedelta(seconds=offset)
    assert second - first == dt.timedelta(hours=1)


def test_daily_schedule_runs_in_the_quiet_hours() -> None:
    schedule = parse_schedule("daily")
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    for name in ("a", "b", "c", "postgres-data"):
        fire = next_fire(schedule.cron, jitter_seconds("apps", name, "backup", spread(schedule)), now)
        assert fire.date() == dt.date(2026, 11, 28) and fire.hour < 6


def test_cron_jitter_never_exceeds_the_gap_between_runs() -> None:
    schedule = parse_schedule("*/5 * * * *")
    assert schedule.kind == "cron" and spread(schedule) == 300
    offset = jitter_seconds("apps", "db", "backup", spread(schedule))
    now = dt.datetime(2026, 11, 27, 12, 1, tzinfo=UTC)
    times = [next_fire(schedule.cron, offset, now)]
    for _ in range(3):
        times.append(next_fire(schedule.cron, offset, times[-1]))
    assert all(b - a == dt.timedelta(minutes=5) for a, b in itertools.pairwise(times))


def test_apscheduler_trigger_returns_a_due_time_unchanged() -> None:
    """APScheduler asks with `now` equal to the due time and must get it back (or it skips a run)."""
    trigger = JitteredCron("0 * * * *", 125)
    due = dt.datetime(2026, 11, 27, 10, 2, 5, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, due) == due
    assert trigger.get_next_fire_time(due, due + dt.timedelta(seconds=1)) == due + dt.timedelta(hours=1)


def test_the_long_running_process_imports_no_pydantic_boto3_or_kubernetes() -> None:
    """The idle footprint: validation happens before the process re-executes into this form."""
    code = (
        "import sys, sidecar.daemon.main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pydantic', 'pydantic_settings', 'boto3', 'botocore', 'kubernetes', 'injector'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_runtime_survives_the_handover_between_processes() -> None:
    settings = load_sidecar_settings({**BASE, "LIFEBOAT_SCHEDULE": "15 3 * * *", "LIFEBOAT_ADOPT": "true"})
    runtime = build_runtime(settings, [VolumeSpec("data", Path("/data"), pvc_uid="u1")])
    again = Runtime.from_json(runtime.to_json())
    assert again == runtime
    assert "secret-key-value" not in repr(again)
    assert again.volumes[0].repository == "s3:http://127.0.0.1:9/bucket/lifeboat/apps/data"


def test_per_pvc_settings_survive_the_handover_to_the_slim_process(tmp_path: Path) -> None:
    from sidecar.settings import parse_volumes

    volumes = parse_volumes(
        [f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}"],
        schedule=["a=*/10 * * * *"],
        retention=["b=last=3"],
        adopt=["a=true"],
        retention_ack=["b=2026-11-27T10:00:00Z"],
    )
    runtime = build_runtime(load_sidecar_settings({**BASE, "LIFEBOAT_SCHEDULE": "daily"}), volumes)
    again = Runtime.from_json(runtime.to_json())
    a, b = again.volumes
    assert (again.schedule_of(a).cron, again.retention_of(a), again.adopt_of(a)) == (
        "*/10 * * * *",
        {"last": 24, "daily": 7, "weekly": 4, "monthly": 6},  # the default of a's own (cron) schedule
        True,
    )
    assert (again.schedule_of(b).kind, again.retention_of(b), again.adopt_of(b)) == (
        "daily",
        {"last": 3},
        False,
    )
    assert again.retention_ack_of(b) == "2026-11-27T10:00:00Z" and again.retention_ack_of(a) is None


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("schedule", "a=99 * * * *", "--schedule a"),
        ("retention", "a=last=0", "--retention a"),
        ("adopt", "a=perhaps", "--adopt a"),
        ("retention_ack", "a=yesterday", "--retention-ack a"),
        ("schedule", "zz=hourly", "--schedule: PVC 'zz' has no matching --volume"),
    ],
)
def test_a_bad_per_pvc_setting_names_the_option_and_the_pvc(
    option: str, value: str, named: str, tmp_path: Path
) -> None:
    from sidecar.settings import ConfigError, parse_volumes

    with pytest.raises(ConfigError) as refused:
        parse_volumes([f"a={tmp_path / 'a'}"], **{option: [value]})
    assert named in str(refused.value)


def test_weekly_checks_of_many_volumes_spread_over_every_night_of_the_week() -> None:
    weekly = parse_schedule("weekly", weekly=True)
    offsets = [offset("apps", f"pvc-{i}", "check", weekly) for i in range(500)]
    assert offsets == [offset("apps", f"pvc-{i}", "check", weekly) for i in range(500)]  # stable
    assert {o // 86400 for o in offsets} == set(range(7))
    assert all(o % 86400 < 6 * 3600 for o in offsets)


def test_hourly_and_daily_offsets_are_the_plain_jitter() -> None:
    for text in ("hourly", "daily"):
        schedule = parse_schedule(text)
        assert offset("apps", "db", "backup", schedule) == jitter_seconds(
            "apps", "db", "backup", spread(schedule)
        )

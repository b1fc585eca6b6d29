"""The user-facing contract: admission accepts exactly what the runtime runs, cron means crontab.

Three kinds of test: the cases the architecture review found (each admitted then crash-looping, or
refused at admission while the runtime would run it); crontab semantics checked against croniter
(with `implement_cron_bug`, which reproduces Debian's vixie cron day rule) on generated expressions;
and generated values pushed through the webhook's PVC plan and the runtime's own loaders, which must
agree on every one, with every refusal naming the field and the fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from injector.decision import InvalidSetting, PvcInfo, volume_plan
from lifeboat import contract
from lifeboat.contract import (
    REPOSITORY_ANNOTATION,
    RETENTION_ANNOTATION,
    SCHEDULE_ANNOTATION,
    SNAPSHOT_ANNOTATION,
    ConfigError,
    next_run,
    parse_cron,
)
from sidecar.repository import parse_override
from sidecar.settings import load_sidecar_settings

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # a Thursday
RUNTIME_ENV = {
    "LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:9",
    "LIFEBOAT_S3_BUCKET": "bucket",
    "AWS_ACCESS_KEY_ID": "access-key",
    "AWS_SECRET_ACCESS_KEY": "secret-key-value",
    "RESTIC_PASSWORD": "password-value",
    "LIFEBOAT_NAMESPACE": "apps",
}


def admit(annotation: str, value: str) -> Any:
    """What the webhook makes of one PVC annotation: the plan's value, or InvalidSetting."""
    pvc = PvcInfo("data", "uid-1", {"backup": "hourly"}, {annotation: value})
    plan = volume_plan("data", pvc)
    return {
        SCHEDULE_ANNOTATION: plan.schedule,
        RETENTION_ANNOTATION: plan.retention,
        SNAPSHOT_ANNOTATION: plan.snapshot,
        REPOSITORY_ANNOTATION: plan.repository,
    }[annotation]


def runtime_accepts(annotation: str, value: str) -> bool:
    """Whether the restore container or the sidecar would run with `value` (as the webhook hands it)."""
    try:
        if annotation == SCHEDULE_ANNOTATION:
            load_sidecar_settings({**RUNTIME_ENV, "LIFEBOAT_SCHEDULE": value})
        elif annotation == RETENTION_ANNOTATION:
            load_sidecar_settings({**RUNTIME_ENV, "LIFEBOAT_RETENTION": value})
        elif annotation == SNAPSHOT_ANNOTATION:
            contract.parse_pin(value)  # what `lifeboat restore --snapshot` runs (sidecar.restore.run)
        else:
            parse_override(value, "data")
    except ConfigError:
        return False
    return True


# --- the review's cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (SCHEDULE_ANNOTATION, "99 * * * *"),
        (SCHEDULE_ANNOTATION, "0 3 * * 8"),
        (SCHEDULE_ANNOTATION, "*/0 * * * *"),
        (SCHEDULE_ANNOTATION, "0 0 30 2 *"),
        (SCHEDULE_ANNOTATION, "0 3 ? * *"),
        (REPOSITORY_ANNOTATION, "s3:host/bucket/path"),
        (REPOSITORY_ANNOTATION, "s3:https://key:secret@s3.example.com/bucket/path"),
        (RETENTION_ANNOTATION, "hourly=24,daily=0"),
        (SNAPSHOT_ANNOTATION, "2026-01-31T23:00:00"),
    ],
)
def test_values_the_runtime_cannot_run_are_refused_at_admission(annotation: str, value: str) -> None:
    assert not runtime_accepts(annotation, value)
    with pytest.raises(InvalidSetting) as refused:
        admit(annotation, value)
    assert annotation in str(refused.value)
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (SNAPSHOT_ANNOTATION, "2026-01-31 23:00:00+00:00"),
        (SNAPSHOT_ANNOTATION, "2026-01-31T23:00:00Z"),
        (SCHEDULE_ANNOTATION, "@daily"),
        (SCHEDULE_ANNOTATION, "0 3 * * 7"),
        (SCHEDULE_ANNOTATION, "30 2 * * mon-fri"),
        (RETENTION_ANNOTATION, "keep-daily=7, weekly=4"),
        (REPOSITORY_ANNOTATION, "s3:http://minio.storage:9000/backups/volsync/db"),
    ],
)
def test_values_the_runtime_runs_are_admitted(annotation: str, value: str) -> None:
    admitted = admit(annotation, value)
    assert runtime_accepts(annotation, admitted)


def test_backup_label_values_are_the_contracts_and_also_schedules() -> None:
    assert contract.BACKUP_VALUES == ("hourly", "daily")
    for value in contract.BACKUP_VALUES:
        assert contract.parse_schedule(value).kind == value


# --- crontab semantics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "first"),
    [
        ("0 3 * * 0", dt.datetime(2026, 1, 4, 3, 0, tzinfo=dt.UTC)),  # Sunday
        ("0 3 * * 7", dt.datetime(2026, 1, 4, 3, 0, tzinfo=dt.UTC)),  # Sunday too
        ("0 3 * * sun", dt.datetime(2026, 1, 4, 3, 0, tzinfo=dt.UTC)),
        ("0 3 * * 1", dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)),  # Monday (APScheduler: Tuesday)
        ("0 3 * * 1-5", dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)),  # Thursday is a weekday
        ("0 3 * * 6", dt.datetime(2026, 1, 3, 3, 0, tzinfo=dt.UTC)),  # Saturday
        ("0 3 15 * 1", dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)),  # both restricted: either matches
        ("0 3 */2 * 1", dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)),  # `*/2` counts as `*`: both must
        ("0 0 1 feb *", dt.datetime(2026, 2, 1, 0, 0, tzinfo=dt.UTC)),
        ("*/20 * * * *", dt.datetime(2026, 1, 1, 0, 20, tzinfo=dt.UTC)),
    ],
)
def test_cron_follows_standard_crontab(cron: str, first: dt.datetime) -> None:
    assert next_run(cron, T0) == first


def test_weekdays_run_monday_to_friday_only() -> None:
    runs, t = [], T0
    for _ in range(10):
        t = next_run("0 3 * * 1-5", t)
        runs.append(t.strftime("%a"))
    assert runs == ["Thu", "Fri", "Mon", "Tue", "Wed", "Thu", "Fri", "Mon", "Tue", "Wed"]


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    # a < b: croniter reads a one-value range such as `0-0` in day of week as "every day"
    ranged = st.tuples(number, number).filter(lambda p: p[0] != p[1]).map(lambda p: f"{min(p)}-{max(p)}")
    stars = st.one_of(st.just("*"), st.integers(1, high - low + 1).map(lambda s: f"*/{s}"))
    element = st.one_of(
        number.map(str), ranged, st.tuples(ranged, st.integers(1, 9)).map(lambda p: f"{p[0]}/{p[1]}")
    )
    # a star stands alone: in a list (`1,*`) vixie cron and croniter disagree on the day rule
    return st.one_of(stars, st.lists(element, min_size=1, max_size=3).map(",".join))


CRONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(CRONS)
def test_generated_crontabs_fire_when_vixie_cron_would(cron: str) -> None:
    oracle = croniter(cron, T0, implement_cron_bug=True)
    ours = T0
    for _ in range(4):
        ours = next_run(cron, ours)
        assert ours == oracle.get_next(dt.datetime), cron


def test_a_cron_that_never_fires_is_refused() -> None:
    with pytest.raises(ConfigError, match="never fires"):
        parse_cron("0 0 31 4 *")


# --- admission and runtime agree on generated values -------------------------------------------------

TOKENS = st.sampled_from(
    [
        "*",
        "*/5",
        "*/0",
        "0",
        "7",
        "8",
        "59",
        "60",
        "99",
        "1-5",
        "5-1",
        "mon",
        "MON-FRI",
        "jan",
        "?",
        "L",
        "-",
        ",",
    ]
)
SCHEDULES = st.one_of(
    st.lists(TOKENS, min_size=3, max_size=7).map(" ".join),
    st.sampled_from(["hourly", "daily", "weekly", "@hourly", "@daily", "nightly", "Hourly", " daily "]),
    st.text(max_size=20),
)
RETENTIONS = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["last", "hourly", "daily", "keep-weekly", "Monthly", "yearly", "fortnightly", ""]
            ),
            st.sampled_from(["=", ":", ""]),
            st.sampled_from(["1", "7", "0", "-1", "x", "24 ", ""]),
        ).map("".join),
        max_size=4,
    ).map(",".join),
    st.text(max_size=20),
)
PINS = st.one_of(
    st.sampled_from(
        [
            "latest",
            "1a2b3c4d",
            "1A2B3C4D",
            "1a2b",
            "2026-01-31T23:00:00Z",
            "2026-01-31 23:00:00+00:00",
            "2026-01-31t23:00:00z",
            "2026-01-31",
            "2026-02-30T00:00:00Z",
            "2026-01-31T23:00Z",
            "2026-01-31T23:00:00.5+01:00",
        ]
    ),
    st.text(alphabet="0123456789abcdefTZ:+- ", max_size=30),
)
REPOSITORIES = st.one_of(
    st.tuples(
        st.sampled_from(["s3:", "S3:", "b2:", ""]),
        st.sampled_from(["http://", "https://", "ftp://", ""]),
        st.sampled_from(["s3.example.com", "minio:9000", "user:pw@host", ""]),
        st.sampled_from(["/bucket/path", "/bucket", "/bucket/a/b", "/b/p?x=1", "", "/bucket/ p"]),
    ).map("".join),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        SCHEDULES.map(lambda v: (SCHEDULE_ANNOTATION, v)),
        RETENTIONS.map(lambda v: (RETENTION_ANNOTATION, v)),
        PINS.map(lambda v: (SNAPSHOT_ANNOTATION, v)),
        REPOSITORIES.map(lambda v: (REPOSITORY_ANNOTATION, v)),
    )
)
def test_admission_admits_exactly_what_the_runtime_runs(case: tuple[str, str]) -> None:
    annotation, value = case
    try:
        admitted = admit(annotation, value)
    except InvalidSetting as exc:
        message = str(exc)
        assert annotation in message  # names the field
        assert any(word in message for word in ("use ", "write ", "add ", "must be", "leave", "first")), (
            message
        )
        assert not runtime_accepts(annotation, value), f"refused at admission but the runtime runs {value!r}"
        return
    assert runtime_accepts(annotation, admitted), (
        f"admitted {value!r} as {admitted!r}, the runtime refuses it"
    )

"""Restore drills, the pure part: when each PVC's drill runs, what a sampled drill restores, and
what a restored tree proves (sidecar.drill.plan; the annotation's grammar is lifeboat.contract's)."""

from __future__ import annotations

import datetime as dt

import pytest

from lifeboat.contract import ConfigError, Schedule, parse_drill
from sidecar.daemon.cadence import next_fire
from sidecar.drill.plan import (
    BLOCK,
    DAY,
    DatabaseCheck,
    DrillReport,
    Sample,
    choose_sample,
    drill_offset,
    includable,
    include_lines,
    judge,
)

WEEKLY = Schedule("weekly", "0 0 * * 0")
DAILY = Schedule("daily", "0 0 * * *")


# --- the annotation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("weekly", WEEKLY),
        ("Daily", DAILY),
        ("30 3 * * 6", Schedule("cron", "30 3 * * 6")),
        ("off", None),
        ("false", None),
        (" OFF ", None),
    ],
)
def test_the_drill_annotation_takes_weekly_daily_cron_or_off(text: str, expected: Schedule | None) -> None:
    assert parse_drill(text) == expected


@pytest.mark.parametrize("text", ["hourly", "sometimes", "", "61 * * * *", "* * *"])
def test_a_bad_drill_value_names_the_annotation_and_the_fix(text: str) -> None:
    with pytest.raises(ConfigError, match=r"lifeboat.dev/drill: weekly") as caught:
        parse_drill(text)
    assert "off" in str(caught.value)


# --- when -----------------------------------------------------------------------------------------


def test_a_weekly_drill_runs_on_one_day_of_the_week_in_the_quiet_hours_at_a_stable_second() -> None:
    offset = drill_offset("apps", "data", WEEKLY)
    assert offset == drill_offset("apps", "data", WEEKLY)  # a restart never moves it
    assert 0 <= offset < 7 * DAY and offset % DAY < 6 * 3600
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    first = next_fire(WEEKLY.cron, offset, start)
    second = next_fire(WEEKLY.cron, offset, first)
    assert (second - first) == dt.timedelta(days=7)
    assert first.hour < 6


def test_a_clusters_weekly_drills_spread_over_every_day_of_the_week() -> None:
    days = {drill_offset("apps", f"pvc-{i}", WEEKLY) // DAY for i in range(200)}
    assert days == set(range(7))


def test_a_daily_drill_runs_at_a_second_of_the_quiet_hours_and_a_crontab_one_moves_little() -> None:
    assert 0 <= drill_offset("apps", "data", DAILY) < 6 * 3600
    assert 0 <= drill_offset("apps", "data", Schedule("cron", "30 3 * * 6")) < 15 * 60


# --- what -----------------------------------------------------------------------------------------

FILES = [(f"/dir{i % 3}/file{i}.bin", 10_000) for i in range(50)] + [
    ("/app/app.db", 40_960),
    ("/app/app.db-wal", 8_192),
    ("/config/settings.sqlite3", 20_480),
]


def test_a_snapshot_that_fits_the_budget_is_restored_whole() -> None:
    sample = choose_sample(FILES, dirs=5, budget=10 * 2**20, seed="abc")
    assert sample.full and sample.paths == ()
    assert (sample.files, sample.bytes) == (sample.total_files, sample.total_bytes) == (53, 569_632)


def test_a_sample_takes_databases_first_with_their_wal_and_stays_within_the_budget() -> None:
    budget = 200 * 1024
    sample = choose_sample(FILES, dirs=5, budget=budget, seed="abc")
    assert not sample.full
    assert {"/app/app.db", "/app/app.db-wal", "/config/settings.sqlite3"} <= set(sample.paths)
    assert sample.databases_chosen == 2
    assert 3 < sample.files < sample.total_files
    dirs = {p.rsplit("/", 1)[0] for p in sample.paths}
    assert (
        sum(-(-size // BLOCK) * BLOCK for p, size in FILES if p in sample.paths) + (len(dirs) + 1) * BLOCK
        <= budget
    )


def test_the_same_snapshot_gives_the_same_sample_and_the_next_snapshot_another() -> None:
    one = choose_sample(FILES, dirs=5, budget=150 * 1024, seed="snapshot-1")
    assert one == choose_sample(list(reversed(FILES)), dirs=5, budget=150 * 1024, seed="snapshot-1")
    assert one.paths != choose_sample(FILES, dirs=5, budget=150 * 1024, seed="snapshot-2").paths


def test_a_database_larger_than_the_budget_is_named_as_not_checked() -> None:
    files = [("/big.db", 50 * 2**20), ("/small.txt", 100)]
    sample = choose_sample(files, dirs=0, budget=2**20, seed="x")
    assert sample.too_large == ("/big.db",)
    assert sample.paths == ("/small.txt",)


def test_paths_restic_cannot_name_in_an_include_file_are_left_out_and_globs_are_escaped() -> None:
    assert not includable("/a/$HOME/x") and not includable("/a/trailing ") and not includable("/a\nb")
    assert includable("/a/b[1]*?.txt")
    sample = Sample(False, ("/a/b[1]*?.txt",), 1, 1, 2, 2)
    assert include_lines(sample) == "/a/b\\[1\\]\\*\\?.txt\n"


# --- verdict --------------------------------------------------------------------------------------

FULL = Sample(True, (), 3, 300, 3, 300)


def test_a_whole_restore_matching_the_summary_with_sound_databases_succeeds() -> None:
    report = judge(
        snapshot="abc",
        expected=(3, 300),
        listed=(3, 300),
        sample=FULL,
        restored=(3, 300),
        databases=[DatabaseCheck("app.db", True)],
    )
    assert report.result == "success" and report.problems == () and report.databases == 1


def test_missing_files_a_restore_error_and_a_broken_database_are_each_named() -> None:
    report = judge(
        snapshot="abc",
        expected=(3, 300),
        listed=(3, 300),
        sample=FULL,
        restored=(2, 200),
        databases=[DatabaseCheck("app.db", False, "database disk image is malformed")],
        restore_errors=["/x.bin: ciphertext verification failed"],
    )
    assert report.result == "failed"
    assert report.problems == (
        "restore: /x.bin: ciphertext verification failed",
        "restored 2 files, 200 bytes; the snapshot's summary says 3 files, 300 bytes",
        "database app.db: database disk image is malformed",
    )
    assert report.databases_failed == 1


def test_a_snapshot_without_a_summary_is_judged_by_its_listing() -> None:
    report = judge(
        snapshot="abc", expected=(None, None), listed=(3, 300), sample=FULL, restored=(3, 299), databases=[]
    )
    assert report.problems == ("restored 3 files, 299 bytes; the snapshot lists 3 files, 300 bytes",)


def test_a_sampled_drill_is_judged_by_its_sample_and_says_so() -> None:
    sample = Sample(False, ("/a", "/b"), 2, 20, 10, 100)
    report = judge(
        snapshot="abc", expected=(10, 100), listed=(10, 100), sample=sample, restored=(2, 20), databases=[]
    )
    assert report.result == "success" and report.sampled
    assert (report.files_checked, report.files_total, report.bytes_checked, report.bytes_total) == (
        2,
        10,
        20,
        100,
    )


def test_a_report_survives_the_trip_from_the_child_process() -> None:
    report = DrillReport(result="failed", snapshot="abc", sampled=True, problems=("x",), seconds=1.5)
    assert DrillReport.from_dict(report.as_dict()) == report
    assert DrillReport.from_dict({"result": "nonsense"}).result == "failed"

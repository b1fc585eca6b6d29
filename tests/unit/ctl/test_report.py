"""`lifeboat status` rows: injection, staleness and problems from plain facts; the table and JSON."""

from __future__ import annotations

import datetime as dt
import json

from ctl.report import (
    PodFacts,
    PvcFacts,
    SnapshotFacts,
    StoreFacts,
    human_bytes,
    render_table,
    status_row,
    status_table,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
POD = PodFacts("app-0", injected=True, skipped=False, phase="Running", created=NOW - dt.timedelta(days=3))


def snap(hours_ago: float) -> SnapshotFacts:
    return SnapshotFacts("a" * 64, NOW - dt.timedelta(hours=hours_ago), "lifeboat", ("lifeboat",), 3, 10)


def facts(**changes) -> PvcFacts:
    base = dict(
        namespace="apps",
        name="data",
        label="hourly",
        annotations={},
        namespace_opted_in=True,
        pods=(POD,),
        store=StoreFacts("s3:http://s3/b/lifeboat/apps/data", (snap(5), snap(0.5)), 2048),
    )
    base.update(changes)
    return PvcFacts(**base)


def test_a_protected_pvc_with_a_recent_backup_has_no_problem() -> None:
    row = status_row(facts(), NOW)
    assert (row.injected, row.result, row.snapshots, row.repository_bytes) == ("yes: app-0", "ok", 2, 2048)
    assert row.last_backup_age_seconds == 1800 and row.problems == []


def test_a_backup_older_than_twice_the_schedule_is_stale() -> None:
    row = status_row(facts(store=StoreFacts("r", (snap(3),), 1)), NOW)
    assert row.result == "stale" and "3h old" in row.problems[0]
    daily = status_row(facts(label="daily", store=StoreFacts("r", (snap(30),), 1)), NOW)
    assert daily.result == "ok"


def test_the_schedule_annotation_wins_over_the_label_and_sets_the_interval() -> None:
    row = status_row(facts(annotations={"lifeboat.dev/schedule": "30 2 * * 1-5"}), NOW)
    assert row.schedule == "30 2 * * 1-5" and row.interval_seconds == 3 * 86400


def test_an_annotation_that_does_not_parse_is_a_problem() -> None:
    row = status_row(facts(annotations={"lifeboat.dev/schedule": "every now and then"}), NOW)
    assert row.interval_seconds is None and "does not parse" in row.problems[0]


def test_a_misspelled_label_is_not_injected_and_says_the_fix() -> None:
    row = status_row(facts(label="Daily"), NOW)
    assert row.injected.startswith("no: label")
    assert "kubectl -n apps label pvc data backup=daily --overwrite" in row.problems[0]


def test_a_namespace_that_did_not_opt_in_is_named() -> None:
    row = status_row(facts(namespace_opted_in=False), NOW)
    assert row.injected == "no: namespace not opted in"
    assert "kubectl label namespace apps lifeboat.dev/inject=enabled" in row.problems[0]


def test_a_pod_created_before_lifeboat_must_be_restarted() -> None:
    old = PodFacts("legacy", injected=False, skipped=False, phase="Running")
    row = status_row(facts(pods=(old,)), NOW)
    assert row.injected == "no: pod legacy" and "delete the pod" in row.problems[0]


def test_no_backup_long_after_the_pod_started_is_a_problem_but_not_right_after() -> None:
    assert "no backup yet" in status_row(facts(store=StoreFacts("r", (), 0)), NOW).problems[0]
    young = PodFacts("app-0", True, False, "Running", created=NOW - dt.timedelta(minutes=5))
    row = status_row(facts(pods=(young,), store=StoreFacts("r", (), 0)), NOW)
    assert row.result == "never" and row.problems == []


def test_a_store_error_is_shown_and_counts_nothing() -> None:
    row = status_row(facts(store=StoreFacts("r", error="AccessDenied")), NOW)
    assert (row.result, row.snapshots) == ("store error", None)
    assert "AccessDenied" in row.problems[0]


def test_a_missing_credentials_mirror_is_a_problem() -> None:
    assert "no lifeboat-credentials Secret" in status_row(facts(mirrored_secret=False), NOW).problems[0]


def test_the_table_aligns_columns_and_lists_problems_below() -> None:
    text = status_table([status_row(facts(), NOW), status_row(facts(name="logs", label="Daily"), NOW)])
    header, first, second = text.splitlines()[:3]
    assert header.split()[:3] == ["NAMESPACE", "PVC", "SCHEDULE"]
    assert header.index("PVC") == first.index("data") == second.index("logs")
    assert "Problems:\n- apps/logs: label backup='Daily'" in text


def test_render_table_prints_none_as_a_dash() -> None:
    assert render_table(["a", "b"], [(None, 1)]) == "A   B\n-   1"


def test_sizes_are_human() -> None:
    assert [human_bytes(v) for v in (None, 12, 2048, 5 * 2**30)] == ["-", "12 B", "2.0 KiB", "5.0 GiB"]


def test_json_output_is_the_rows_fields() -> None:
    from ctl.report import to_json

    (row,) = json.loads(to_json([status_row(facts(), NOW)]))
    assert row["pvc"] == "data" and row["snapshots"] == 2 and row["problems"] == []

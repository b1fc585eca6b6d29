"""Which Events the controller plans from pods, sidecar scrapes and PVC labels (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from injector.podevents import (
    blocked_from_metrics,
    guard_events,
    invalid_label_events,
    invalid_labels,
    metrics_endpoint,
    report_events,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def pod(init_statuses: list[dict[str, Any]], claims: tuple[str, ...] = ("data",)) -> dict[str, Any]:
    return {
        "metadata": {"name": "app-0", "namespace": "apps", "uid": "u-1"},
        "spec": {
            "initContainers": [
                {"name": "lifeboat-restore"},
                {"name": "lifeboat-backup", "ports": [{"name": "metrics", "containerPort": 9090}]},
            ],
            "containers": [{"name": "app"}],
            "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
        },
        "status": {"phase": "Running", "podIP": "10.0.0.7", "initContainerStatuses": init_statuses},
    }


def terminated(message: str, code: int = 0, key: str = "state") -> dict[str, Any]:
    return {"name": "lifeboat-restore", key: {"terminated": {"exitCode": code, "message": message}}}


def test_a_restore_is_reported_with_its_snapshot_files_and_bytes() -> None:
    (event,) = report_events(pod([terminated("data: restored 1a2b3c4d (12 files, 3.4 MiB, 2.0s)")]), NOW)
    assert (event.reason, event.type, event.target.kind) == ("LifeboatRestored", "Normal", "Pod")
    assert "1a2b3c4d (12 files, 3.4 MiB, 2.0s)" in event.message and "PVC data" in event.message


def test_each_volume_of_a_pod_gets_its_own_outcome() -> None:
    events = report_events(
        pod([terminated("data: fresh; media: restored 0badcafe (1 files, 2 B, 0.1s)")]), NOW
    )
    assert [(e.reason, e.volume) for e in events] == [
        ("LifeboatStartedFresh", "data"),
        ("LifeboatRestored", "media"),
    ]


def test_refused_credentials_from_the_previous_run_are_reported() -> None:
    status = terminated(
        "data: failed (exit 77): the store refused the credentials: AccessDenied", 77, "lastState"
    )
    (event,) = report_events(pod([status]), NOW)
    assert (event.reason, event.type) == ("LifeboatCredentialsRefused", "Warning")


def test_a_configuration_error_is_reported_for_every_volume() -> None:
    status = terminated("lifeboat restore: invalid configuration: LIFEBOAT_S3_BUCKET: missing", 78)
    (event,) = report_events(pod([status]), NOW)
    assert event.reason == "LifeboatConfigError" and "every volume" in event.message


def test_a_crash_without_a_report_does_not_echo_the_log_tail() -> None:
    (event,) = report_events(pod([terminated('{"event": "crash", "x": "y"}', 1)]), NOW)
    assert event.reason == "LifeboatRestoreFailed" and "crash" not in event.message


def test_a_restore_running_past_a_minute_is_waiting() -> None:
    started = (NOW - dt.timedelta(minutes=5)).isoformat()
    status = {"name": "lifeboat-restore", "state": {"running": {"startedAt": started}}}
    (event,) = report_events(pod([status]), NOW)
    assert (event.reason, event.type) == ("LifeboatRestoreWaiting", "Warning")
    assert (
        report_events(pod([{"name": "lifeboat-restore", "state": {"running": {"startedAt": NOW}}}]), NOW)
        == []
    )


def test_a_drill_container_reporting_in_the_grammar_gets_a_generic_event() -> None:
    drill = {
        "name": "lifeboat-drill",
        "state": {"terminated": {"exitCode": 65, "message": "data: drill-failed (exit 65): 11 of 12 files"}},
    }
    (event,) = report_events(pod([drill]), NOW)
    assert (event.reason, event.type) == ("LifeboatDrillFailed", "Warning")
    overdue = {
        "name": "lifeboat-drill",
        "state": {"terminated": {"exitCode": 0, "message": "data: drill-overdue: 9 days"}},
    }
    (event,) = report_events(pod([overdue]), NOW)
    assert event.reason == "LifeboatDrillOverdue"


def test_the_same_outcome_has_the_same_event_name_and_another_outcome_another() -> None:
    first = report_events(pod([terminated("data: fresh")]), NOW)[0]
    again = report_events(pod([terminated("data: fresh")]), NOW + dt.timedelta(hours=1))[0]
    other = report_events(pod([terminated("data: restored 1a2b3c4d (1 files, 1 B, 0.1s)")]), NOW)[0]
    assert first.name == again.name != other.name
    assert len(first.name) <= 253


def test_guard_refusals_are_read_from_the_sidecar_scrape() -> None:
    scrape = (
        "# TYPE lifeboat_guard_blocked gauge\n"
        'lifeboat_guard_blocked{namespace="apps",persistentvolumeclaim="data",reason="empty"} 1.0\n'
        'lifeboat_guard_blocked{namespace="apps",persistentvolumeclaim="data",reason="shrunk"} 0.0\n'
    )
    blocked = blocked_from_metrics(scrape)
    assert blocked == [("data", "empty")]
    (event,) = guard_events(pod([]), blocked)
    assert (event.reason, event.type) == ("LifeboatBackupRefused", "Warning") and "empty" in event.message
    assert metrics_endpoint(pod([])) == "http://10.0.0.7:9090/metrics"


def test_a_misspelled_backup_label_is_reported_on_the_pvc_and_its_pods() -> None:
    pvcs = [
        {"metadata": {"name": "data", "namespace": "apps", "uid": "p-1", "labels": {"backup": "Daily"}}},
        {"metadata": {"name": "ok", "namespace": "apps", "uid": "p-2", "labels": {"backup": "daily"}}},
    ]
    found = invalid_labels(pvcs)
    assert [(f.pvc.name, f.value) for f in found] == [("data", "Daily")]
    on_pvc, on_pod = invalid_label_events(found, [pod([])])
    assert (on_pvc.target.kind, on_pod.target.kind) == ("PersistentVolumeClaim", "Pod")
    assert "backup=daily --overwrite" in on_pvc.message and on_pvc.reason == "LifeboatInvalidBackupLabel"


def test_a_failed_drill_in_the_sidecar_scrape_is_an_event() -> None:
    from injector.podevents import drill_events, failed_drills_from_metrics

    scrape = (
        "# TYPE lifeboat_drill_last_result gauge\n"
        'lifeboat_drill_last_result{namespace="apps",persistentvolumeclaim="data",result="failed"} 1.0\n'
        'lifeboat_drill_last_result{namespace="apps",persistentvolumeclaim="data",result="success"} 0.0\n'
        'lifeboat_drill_last_result{namespace="apps",persistentvolumeclaim="logs",result="success"} 1.0\n'
    )
    assert failed_drills_from_metrics(scrape) == ["data"]
    (event,) = drill_events(pod([]), failed_drills_from_metrics(scrape))
    assert (event.reason, event.type, event.volume) == ("LifeboatDrillFailed", "Warning", "data/drill")

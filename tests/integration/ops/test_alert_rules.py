"""The chart's monitoring: PodMonitor, PrometheusRule and Grafana dashboard (docs/operations.md).

The rules are rendered with helm exactly as a cluster gets them, their groups are written to a
rules file, and promtool (Debian's, unpacked by scripts/setup.sh into .venv/bin) checks them and
runs unit tests on synthetic series: every alert fires when it should and stays silent when it
should. promtool's clock starts at 0, so timestamps in the series are seconds since the start of
the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "chart"
BIN = str(Path(sys.executable).parent)
HELM = shutil.which("helm", path=BIN) or shutil.which("helm")
PROMTOOL = shutil.which("promtool", path=BIN) or shutil.which("promtool")
KUBE_VERSION = "1.33.0"
RUNBOOK = "https://github.com/lifeboat-dev/lifeboat/blob/main/docs/operations.md"
JOB = "lifeboat/lifeboat-sidecars"

pytestmark = pytest.mark.skipif(HELM is None, reason="helm is installed by `make setup`")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is installed by `make setup`")

ALL_ON = [
    "--set",
    "metrics.podMonitor.enabled=true",
    "--set",
    "metrics.podMonitor.labels.release=kube-prometheus-stack",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "metrics.prometheusRule.pvcNotProtected.enabled=true",
    "--set",
    "metrics.dashboard.enabled=true",
    "--set",
    "metrics.serviceMonitor.enabled=true",
]
MONITORING_KINDS = {"PodMonitor", "PrometheusRule", "ConfigMap"}

# Series from elsewhere that the rules and the dashboard read, with who exports them.
EXTERNAL_METRICS = {
    "up": "Prometheus",
    "kubelet_volume_stats_capacity_bytes": "kubelet",
    "kubelet_volume_stats_used_bytes": "kubelet",
    "kube_persistentvolumeclaim_labels": "kube-state-metrics",
    "kube_pod_spec_volumes_persistentvolumeclaims_info": "kube-state-metrics",
    "kube_pod_status_phase": "kube-state-metrics",
    "kube_pod_init_container_status_running": "kube-state-metrics",
    "kube_pod_init_container_status_waiting_reason": "kube-state-metrics",
    "kube_pod_init_container_status_terminated_reason": "kube-state-metrics",
    "kube_pod_init_container_status_restarts_total": "kube-state-metrics",
}
PROMQL_WORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "count",
    "count_values",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "without",
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def render(*extra: str) -> list[dict[str, Any]]:
    result = helm(
        "template", "lifeboat", str(CHART), "--namespace", "lifeboat", "--kube-version", KUBE_VERSION, *extra
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(*ALL_ON)


@pytest.fixture(scope="module")
def groups(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return one(objects, "PrometheusRule")["spec"]["groups"]


@pytest.fixture(scope="module")
def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (text,) = one(objects, "ConfigMap")["data"].values()
    return json.loads(text)


@pytest.fixture(scope="module")
def rules_dir(groups: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rules.yaml as rendered; bare.yaml the same without annotations, so that the unit tests
    compare labels only (promtool compares annotations exactly when an alert has any)."""
    path = tmp_path_factory.mktemp("rules")
    (path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    bare = [
        {**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]]}
        for group in groups
    ]
    (path / "bare.yaml").write_text(yaml.safe_dump({"groups": bare}, sort_keys=False))
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=300)


def run_unit_tests(rules_dir: Path, name: str, tests: list[dict[str, Any]], rules: str = "bare.yaml") -> None:
    test_file = rules_dir / f"test-{name}.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [rules], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


# --- synthetic series --------------------------------------------------------------------------

PVC = {"namespace": "app", "persistentvolumeclaim": "data"}
POD0 = {**PVC, "pod": "app-0", "job": JOB}
POD1 = {**PVC, "pod": "app-1", "job": JOB}
HOUR = 3600
DAY = 86400


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def case(
    input_series: list[dict[str, str]],
    alert: str,
    checks: list[tuple[str, list[dict[str, str]]]],
    interval: str = "1m",
) -> dict[str, Any]:
    """One promtool test: at each eval time, exactly the alerts with these labels are firing."""
    return {
        "interval": interval,
        "input_series": input_series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels} for labels in fired]}
            for at, fired in checks
        ],
    }


def sidecar(interval: int, last_success: str | None, pod: dict[str, str] = POD0) -> list[dict[str, str]]:
    """A sidecar of PVC app/data started at 0 with this schedule; `last_success` as promtool values."""
    found = [
        series("lifeboat_sidecar_start_time_seconds", pod, "0x3000"),
        series("lifeboat_backup_interval_seconds", pod, f"{interval}x3000"),
    ]
    if last_success is not None:
        found.append(series("lifeboat_backup_last_success_timestamp_seconds", pod, last_success))
    return found


STALE = {**PVC, "severity": "critical"}
NEVER = {**POD0, "severity": "critical"}

CASES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "LifeboatBackupStale": {
        "a daily PVC fires when 30 h old, not when 20 h or 25 h old": [
            case(sidecar(DAY, "0x2000"), "LifeboatBackupStale", [("20h", []), ("25h", []), ("30h", [STALE])])
        ],
        "an hourly PVC fires past 2.5 intervals (plus for: 10m), not at 2 h": [
            case(
                sidecar(HOUR, "0x300"), "LifeboatBackupStale", [("2h", []), ("2h35m", []), ("2h45m", [STALE])]
            )
        ],
        "a new complete backup resolves it": [
            case(sidecar(HOUR, "0x180 10800x120"), "LifeboatBackupStale", [("2h50m", [STALE]), ("3h30m", [])])
        ],
        "the freshest of two pods of one PVC counts": [
            case(
                sidecar(HOUR, "0x300") + sidecar(HOUR, "0x100 6000x200", POD1),
                "LifeboatBackupStale",
                [("2h45m", []), ("4h", []), ("4h30m", [STALE])],
            )
        ],
    },
    "LifeboatBackupNeverSucceeded": {
        "an hourly sidecar without a backup fires after 2.5 h, not at 2 h": [
            case(sidecar(HOUR, None), "LifeboatBackupNeverSucceeded", [("2h", []), ("2h45m", [NEVER])])
        ],
        "a daily sidecar is given 25.5 h": [
            case(sidecar(DAY, None), "LifeboatBackupNeverSucceeded", [("20h", []), ("26h", [NEVER])])
        ],
        "a sidecar that backed up once stays silent (staleness is the other alert)": [
            case(sidecar(HOUR, "_x30 1800x300"), "LifeboatBackupNeverSucceeded", [("3h", [])])
        ],
    },
    "LifeboatBackupIncomplete": {
        "an incomplete backup with no complete one after it fires": [
            case(
                [
                    *sidecar(HOUR, "0x300"),
                    series("lifeboat_backups_total", {**POD0, "result": "incomplete"}, "0x100 1x200"),
                ],
                "LifeboatBackupIncomplete",
                [
                    ("90m", []),
                    ("2h", [{**PVC, "severity": "warning"}]),
                    ("4h", [{**PVC, "severity": "warning"}]),
                ],
            )
        ],
        "a complete backup after it resolves it": [
            case(
                [
                    *sidecar(HOUR, "0x150 9000x150"),
                    series("lifeboat_backups_total", {**POD0, "result": "incomplete"}, "0x100 1x200"),
                ],
                "LifeboatBackupIncomplete",
                [("2h", [{**PVC, "severity": "warning"}]), ("3h", [])],
            )
        ],
        "complete backups only: silent": [
            case(
                [
                    *sidecar(HOUR, "0x300"),
                    series("lifeboat_backups_total", {**POD0, "result": "incomplete"}, "0x300"),
                    series("lifeboat_backups_total", {**POD0, "result": "success"}, "0+1x300"),
                ],
                "LifeboatBackupIncomplete",
                [("2h", [])],
            )
        ],
    },
    "LifeboatGuardBlocked": {
        "a refusal fires with its reason; the other reasons stay silent": [
            case(
                [
                    series("lifeboat_guard_blocked", {**POD0, "reason": "shrunk"}, "0x10 1x50"),
                    series("lifeboat_guard_blocked", {**POD0, "reason": "empty"}, "0x60"),
                    series("lifeboat_guard_blocked", {**POD0, "reason": "conflict"}, "0x60"),
                ],
                "LifeboatGuardBlocked",
                [("5m", []), ("30m", [{**PVC, "reason": "shrunk", "severity": "critical"}])],
            )
        ],
    },
    "LifeboatRestoreWaiting": {
        "a restore running (retrying) for 30 min fires": [
            case(
                [
                    series(
                        "kube_pod_init_container_status_running",
                        {"namespace": "app", "pod": "app-0", "container": "lifeboat-restore"},
                        "1x60",
                    )
                ],
                "LifeboatRestoreWaiting",
                [("20m", []), ("40m", [{"namespace": "app", "pod": "app-0", "severity": "critical"}])],
            )
        ],
        "running, then crash-looping (a deadline was set) counts as one wait": [
            case(
                [
                    series(
                        "kube_pod_init_container_status_running",
                        {"namespace": "app", "pod": "app-0", "container": "lifeboat-restore"},
                        "1x15 0x45",
                    ),
                    series(
                        "kube_pod_init_container_status_waiting_reason",
                        {
                            "namespace": "app",
                            "pod": "app-0",
                            "container": "lifeboat-restore",
                            "reason": "CrashLoopBackOff",
                        },
                        "_x15 1x45",
                    ),
                    series(
                        "kube_pod_init_container_status_restarts_total",
                        {"namespace": "app", "pod": "app-0", "container": "lifeboat-restore"},
                        "0x15 1x45",
                    ),
                ],
                "LifeboatRestoreWaiting",
                [("40m", [{"namespace": "app", "pod": "app-0", "severity": "critical"}])],
            )
        ],
        "a restore that finished in 10 min, and the running backup sidecar, stay silent": [
            case(
                [
                    series(
                        "kube_pod_init_container_status_running",
                        {"namespace": "app", "pod": "app-0", "container": "lifeboat-restore"},
                        "1x10 0x110",
                    ),
                    series(
                        "kube_pod_init_container_status_terminated_reason",
                        {
                            "namespace": "app",
                            "pod": "app-0",
                            "container": "lifeboat-restore",
                            "reason": "Completed",
                        },
                        "_x10 1x110",
                    ),
                    series(
                        "kube_pod_init_container_status_running",
                        {"namespace": "app", "pod": "app-0", "container": "lifeboat-backup"},
                        "1x120",
                    ),
                ],
                "LifeboatRestoreWaiting",
                [("40m", []), ("2h", [])],
            )
        ],
    },
    "LifeboatLockContention": {
        "15 min of lock waits per hour fires, 5 min does not": [
            case(
                [
                    series("lifeboat_lock_wait_seconds_total", {**POD0, "operation": "backup"}, "0+15x120"),
                    series("lifeboat_lock_wait_seconds_total", {**POD0, "operation": "prune"}, "0+5x120"),
                ],
                "LifeboatLockContention",
                [("90m", [{**PVC, "operation": "backup", "severity": "warning"}])],
            )
        ],
    },
    "LifeboatCheckFailed": {
        "a failed check fires; clean checks do not": [
            case(
                [
                    series(
                        "lifeboat_maintenance_total",
                        {**POD0, "operation": "check", "result": "failed"},
                        "0x30 1x60",
                    ),
                    series(
                        "lifeboat_maintenance_total",
                        {**POD1, "operation": "check", "result": "success"},
                        "0+1x90",
                    ),
                ],
                "LifeboatCheckFailed",
                [("20m", []), ("1h", [{**PVC, "severity": "critical"}])],
            )
        ],
    },
    "LifeboatCheckStale": {
        "no clean check for 9 days (plus for: 1h) fires, 8 days does not": [
            case(
                [series("lifeboat_check_last_success_timestamp_seconds", POD0, "0x3000")],
                "LifeboatCheckStale",
                [("8d", []), ("9d2h", [{**PVC, "severity": "warning"}])],
                interval="5m",
            )
        ],
    },
    "LifeboatRetentionBreakerTripped": {
        "held for 2 hours fires; one refused round does not": [
            case(
                [
                    series("lifeboat_retention_breaker_tripped", POD0, "0x10 1x200"),
                    series(
                        "lifeboat_retention_breaker_tripped",
                        POD1 | {"persistentvolumeclaim": "logs"},
                        "0x10 1x60 0x140",
                    ),
                ],
                "LifeboatRetentionBreakerTripped",
                [("1h", []), ("2h30m", [{**PVC, "severity": "warning"}])],
            )
        ],
    },
    "LifeboatVolumeNearlyFull": {
        "95% used fires, joined with the kubelet's capacity; 50% does not": [
            case(
                [
                    series("lifeboat_volume_used_bytes", POD0, "95x60"),
                    series("lifeboat_volume_used_bytes", {**POD0, "persistentvolumeclaim": "logs"}, "50x60"),
                    series(
                        "kubelet_volume_stats_capacity_bytes",
                        {**PVC, "job": "kubelet", "node": "n1"},
                        "100x60",
                    ),
                    series(
                        "kubelet_volume_stats_capacity_bytes",
                        {"namespace": "app", "persistentvolumeclaim": "logs", "job": "kubelet", "node": "n1"},
                        "100x60",
                    ),
                ],
                "LifeboatVolumeNearlyFull",
                [("10m", []), ("30m", [{**PVC, "severity": "warning"}])],
            )
        ],
    },
    "LifeboatDrillFailed": {
        "a failed drill fires until a drill succeeds; a pod whose drill succeeded does not hide it": [
            case(
                [
                    series("lifeboat_drill_last_result", {**POD0, "result": "failed"}, "0x30 1x60 0x30"),
                    series("lifeboat_drill_last_result", {**POD0, "result": "success"}, "1x30 0x60 1x30"),
                    series("lifeboat_drill_last_result", {**POD1, "result": "success"}, "1x120"),
                ],
                "LifeboatDrillFailed",
                [("20m", []), ("1h", [{**PVC, "severity": "critical"}]), ("1h50m", [])],
            )
        ],
    },
    "LifeboatDrillOverdue": {
        "a weekly drill last good 8 days ago (plus for: 1h) fires, 7 days does not": [
            case(
                [
                    series("lifeboat_sidecar_start_time_seconds", POD0, "0x3000"),
                    series("lifeboat_drill_interval_seconds", POD0, f"{7 * DAY}x3000"),
                    series("lifeboat_drill_last_success_timestamp_seconds", POD0, "0x3000"),
                ],
                "LifeboatDrillOverdue",
                [("7d", []), ("8d2h", [{**PVC, "severity": "warning"}])],
                interval="5m",
            )
        ],
        "a sidecar with drills on and no good drill since it started fires after 8 days": [
            case(
                [
                    series("lifeboat_sidecar_start_time_seconds", POD0, "0x3000"),
                    series("lifeboat_drill_interval_seconds", POD0, f"{7 * DAY}x3000"),
                ],
                "LifeboatDrillOverdue",
                [("7d", []), ("8d2h", [{**PVC, "severity": "warning"}])],
                interval="5m",
            )
        ],
        "drills turned off (no interval series) stay silent": [
            case(
                [series("lifeboat_sidecar_start_time_seconds", POD0, "0x3000")],
                "LifeboatDrillOverdue",
                [("9d", [])],
                interval="5m",
            )
        ],
    },
    "LifeboatSidecarDown": {
        "a sidecar target down for 10 min fires; other jobs do not": [
            case(
                [
                    series("up", {"job": JOB, "namespace": "app", "pod": "app-0"}, "1x5 0x30"),
                    series("up", {"job": JOB, "namespace": "app", "pod": "app-1"}, "1x35"),
                    series("up", {"job": "other", "namespace": "app", "pod": "web-0"}, "0x35"),
                ],
                "LifeboatSidecarDown",
                [
                    ("10m", []),
                    ("30m", [{"job": JOB, "namespace": "app", "pod": "app-0", "severity": "warning"}]),
                ],
            )
        ],
    },
    "LifeboatPVCNotProtected": {
        "a labelled PVC mounted by a running pod without a sidecar fires; a protected one does not": [
            case(
                [
                    series(
                        "kube_persistentvolumeclaim_labels",
                        {**PVC, "label_backup": "daily", "job": "kube-state-metrics"},
                        "1x60",
                    ),
                    series(
                        "kube_persistentvolumeclaim_labels",
                        {"namespace": "app", "persistentvolumeclaim": "safe", "label_backup": "hourly"},
                        "1x60",
                    ),
                    series(
                        "kube_persistentvolumeclaim_labels",
                        {"namespace": "app", "persistentvolumeclaim": "scratch"},
                        "1x60",
                    ),
                    *[
                        series(
                            "kube_pod_spec_volumes_persistentvolumeclaims_info",
                            {"namespace": "app", "pod": "app-0", "volume": v, "persistentvolumeclaim": v},
                            "1x60",
                        )
                        for v in ("data", "safe", "scratch")
                    ],
                    series(
                        "kube_pod_status_phase",
                        {"namespace": "app", "pod": "app-0", "phase": "Running"},
                        "1x60",
                    ),
                    series(
                        "lifeboat_backup_interval_seconds",
                        {"namespace": "app", "persistentvolumeclaim": "safe", "pod": "app-0"},
                        "3600x60",
                    ),
                ],
                "LifeboatPVCNotProtected",
                [("10m", []), ("30m", [{**PVC, "severity": "critical"}])],
            )
        ],
        "a pod that is not running does not count": [
            case(
                [
                    series("kube_persistentvolumeclaim_labels", {**PVC, "label_backup": "daily"}, "1x60"),
                    series(
                        "kube_pod_spec_volumes_persistentvolumeclaims_info",
                        {
                            "namespace": "app",
                            "pod": "app-0",
                            "volume": "data",
                            "persistentvolumeclaim": "data",
                        },
                        "1x60",
                    ),
                    series(
                        "kube_pod_status_phase",
                        {"namespace": "app", "pod": "app-0", "phase": "Running"},
                        "0x60",
                    ),
                ],
                "LifeboatPVCNotProtected",
                [("30m", [])],
            )
        ],
    },
}
CASE_IDS = [(alert, name) for alert, named in CASES.items() for name in named]


# --- rendering -----------------------------------------------------------------------------------


def test_defaults_render_no_monitoring_objects() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & MONITORING_KINDS


def test_all_toggles_render_deterministically_and_valid(objects: list[dict[str, Any]]) -> None:
    assert render(*ALL_ON) == objects
    assert {o["kind"] for o in objects} >= MONITORING_KINDS | {"ServiceMonitor"}
    kubernetes_validate.validate(one(objects, "ConfigMap"), KUBE_VERSION, strict=True)


def test_the_pod_monitor_keeps_only_injected_sidecars(objects: list[dict[str, Any]]) -> None:
    monitor = one(objects, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["selector"] == {}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "lb-metrics"
    assert endpoint["path"] == "/metrics"
    keeps = {tuple(r["sourceLabels"]): r["regex"] for r in endpoint["relabelings"] if r["action"] == "keep"}
    assert keeps == {
        ("__meta_kubernetes_pod_container_port_name",): "lb-metrics",
        ("__meta_kubernetes_pod_annotationpresent_lifeboat_dev_injected",): "true",
    }
    # the rules' up{job=...} is prometheus-operator's job for this PodMonitor
    namespace, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    assert f"{namespace}/{name}" == JOB


def test_the_port_name_is_the_injectors() -> None:
    from injector.patches import METRICS_PORT_NAME

    assert METRICS_PORT_NAME == "lb-metrics"


def test_the_dashboard_config_map_is_found_by_grafanas_sidecar(objects: list[dict[str, Any]]) -> None:
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    overridden = render(
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.dashboard.namespace=monitoring",
        "--set-string",
        "metrics.dashboard.labels.grafana_dashboard=1",  # given again: still one label
        "--set",
        "metrics.dashboard.annotations.grafana_folder=Backups",
    )
    moved = one(overridden, "ConfigMap")["metadata"]
    assert moved["namespace"] == "monitoring"
    assert moved["annotations"] == {"grafana_folder": "Backups"}
    assert moved["labels"]["grafana_dashboard"] == "1"


def test_the_dashboard_shows_what_issue_11_asks_for(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "lifeboat-backups"
    exprs = " ".join(dashboard_exprs(dashboard))
    for name in (
        "lifeboat_backup_last_success_timestamp_seconds",  # last backup age
        "lifeboat_backup_duration_seconds_sum",  # duration
        "lifeboat_backup_added_bytes",
        "lifeboat_snapshots",
        'lifeboat_backups_total{namespace=~"$namespace", persistentvolumeclaim=~"$pvc", result!="success"}',
        "lifeboat_guard_blocked",
        "lifeboat_check_last_success_timestamp_seconds",
    ):
        assert name in exprs, name
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_rules_are_not_rendered_without_their_toggles() -> None:
    objects = render("--set", "metrics.prometheusRule.enabled=true")
    alerts = {r["alert"] for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert "LifeboatPVCNotProtected" not in alerts
    assert not [o for o in objects if o["kind"] in {"PodMonitor", "ConfigMap"}]


def test_values_tune_the_thresholds() -> None:
    objects = render(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.backupStaleSlackSeconds=1800",
        "--set",
        "metrics.prometheusRule.sidecarJob=pods/lifeboat",
        "--set",
        "metrics.prometheusRule.alertLabels.team=storage",
    )
    rules = {r["alert"]: r for g in one(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert "+ 1800" in rules["LifeboatBackupStale"]["expr"]
    assert 'up{job="pods/lifeboat"}' in rules["LifeboatSidecarDown"]["expr"]
    assert all(rule["labels"]["team"] == "storage" for rule in rules.values())


# --- the rules -----------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_rules(rules_dir: Path) -> None:
    result = promtool("check", "rules", "--lint-fatal", str(rules_dir / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(
    alerts: dict[str, dict[str, Any]],
) -> None:
    anchors = {github_anchor(line) for line in (ROOT / "docs/operations.md").read_text().splitlines()}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        url = rule["annotations"]["runbook_url"]
        page, anchor = url.split("#")
        assert page == RUNBOOK, name
        assert anchor == name.lower() and anchor in anchors, (
            f"{name}: no section #{anchor} in docs/operations.md"
        )


def test_every_alert_has_promtool_cases(alerts: dict[str, dict[str, Any]]) -> None:
    assert set(alerts) == set(CASES)


@needs_promtool
@pytest.mark.parametrize(("alert", "name"), CASE_IDS, ids=[f"{a}: {n}" for a, n in CASE_IDS])
def test_alert_fires_when_it_should_and_only_then(rules_dir: Path, alert: str, name: str) -> None:
    index = CASE_IDS.index((alert, name))
    run_unit_tests(rules_dir, f"{alert}-{index}", CASES[alert][name])


@needs_promtool
def test_the_dashboards_queries_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_annotations_render_with_the_alerts_labels_and_value(rules_dir: Path) -> None:
    tests = [
        {
            "interval": "1m",
            "input_series": sidecar(DAY, "0x2000"),
            "alert_rule_test": [
                {
                    "eval_time": "30h",
                    "alertname": "LifeboatBackupStale",
                    "exp_alerts": [
                        {
                            "exp_labels": STALE,
                            "exp_annotations": {
                                "summary": "No backup of PVC app/data for 1d 6h 0m 0s",
                                "description": "The last successful backup is older than the PVC's own "
                                "interval plus 5400s: backups stopped, fail, or come out incomplete.",
                                "runbook_url": f"{RUNBOOK}#lifeboatbackupstale",
                            },
                        }
                    ],
                }
            ],
        }
    ]
    run_unit_tests(rules_dir, "annotations", tests, rules="rules.yaml")


# --- metric names --------------------------------------------------------------------------------


def exported_metric_names() -> set[str]:
    """Every series name the sidecar's own registry exports (a Metrics instance, as in a pod)."""
    from sidecar.daemon.metrics import Metrics

    names: set[str] = set()
    for family in Metrics("apps", ["data"]).registry.collect():
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":  # labelled: no samples before the first observation
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers that stand where a series name can: not label names, strings or functions."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    names = set()
    for found in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b\s*(\()?", expr):
        word, call = found.group(1), found.group(2)
        if call or word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]?|e|Inf|NaN", word):
            continue
        names.add(word)
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_the_parser_finds_series_names() -> None:
    assert metric_names(
        'time() - max by (namespace, pvc) (a_b{x="y"}) > on (namespace) group_left () max(c[5m]) + 10'
    ) == {"a_b", "c"}


def test_rules_and_dashboard_use_only_exported_metric_names(
    alerts: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    exported = exported_metric_names()
    assert {"lifeboat_backups_total", "lifeboat_backup_duration_seconds_bucket"} <= exported
    used = {name for rule in alerts.values() for name in metric_names(rule["expr"])}
    used |= {name for expr in dashboard_exprs(dashboard) for name in metric_names(expr)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(SERIES, LABEL)
            query = variable["query"]["query"]
            used |= metric_names(query[len("label_values(") : query.rindex(",")])
    unknown = {name for name in used if name.startswith("lifeboat_")} - exported
    assert not unknown, f"not exported by the sidecar: {sorted(unknown)}"
    others = {name for name in used if not name.startswith("lifeboat_")}
    assert others <= set(EXTERNAL_METRICS), sorted(others - set(EXTERNAL_METRICS))
    assert {"lifeboat_backup_interval_seconds", "lifeboat_sidecar_start_time_seconds"} <= used


def github_anchor(line: str) -> str | None:
    if not line.startswith("#"):
        return None
    title = line.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-")

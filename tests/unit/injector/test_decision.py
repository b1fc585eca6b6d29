"""The admission decision as a table: each row is one situation a user can put a pod in."""

from __future__ import annotations

from typing import Any

import pytest

from injector.decision import (
    Admit,
    Context,
    Deny,
    Inject,
    InvalidSetting,
    PodRequest,
    PvcInfo,
    PvcUnavailable,
    decide,
    native_sidecars_supported,
    parse_retention,
    parse_schedule,
    parse_snapshot,
    pvc_claims,
)

CONTEXT = Context(own_namespace="lifeboat", excluded_namespaces=("kube-system",))


def pod(*claims: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": annotations or {}},
        "spec": {
            "containers": [{"name": "app", "image": "app"}],
            "volumes": [{"name": f"v-{c}", "persistentVolumeClaim": {"claimName": c}} for c in claims],
            **spec,
        },
    }


def request(p: dict[str, Any], namespace: str = "apps", operation: str = "CREATE", resource: str = "pods"):
    return PodRequest("uid", operation, resource, "", namespace, p)


def pvc(name: str, backup: str | None = "daily", **annotations: str) -> PvcInfo:
    labels = {"backup": backup} if backup is not None else {}
    return PvcInfo(name, f"uid-{name}", labels, annotations)


CASES: list[tuple[str, Any, dict[str, Any], Context, type]] = [
    ("labelled daily PVC is injected", request(pod("data")), {"data": pvc("data")}, CONTEXT, Inject),
    ("labelled hourly PVC is injected", request(pod("d")), {"d": pvc("d", "hourly")}, CONTEXT, Inject),
    ("PVC without the label is admitted", request(pod("d")), {"d": pvc("d", None)}, CONTEXT, Admit),
    (
        "unknown backup value is admitted with a warning",
        request(pod("d")),
        {"d": pvc("d", "weekly")},
        CONTEXT,
        Admit,
    ),
    (
        "missing PVC is denied",
        request(pod("d")),
        {"d": PvcUnavailable("d", "it does not exist")},
        CONTEXT,
        Deny,
    ),
    (
        "API error reading the PVC is denied",
        request(pod("d")),
        {"d": PvcUnavailable("d", "API error 500")},
        CONTEXT,
        Deny,
    ),
    ("PVC not looked up is denied", request(pod("d")), {}, CONTEXT, Deny),
    ("update is never mutated", request(pod("d"), operation="UPDATE"), {"d": pvc("d")}, CONTEXT, Admit),
    (
        "non-pod resource is ignored",
        request(pod("d"), resource="deployments"),
        {"d": pvc("d")},
        CONTEXT,
        Admit,
    ),
    (
        "kube-system is never injected",
        request(pod("d"), namespace="kube-system"),
        {"d": pvc("d")},
        CONTEXT,
        Admit,
    ),
    (
        "the injector's own namespace is never injected",
        request(pod("d"), namespace="lifeboat"),
        {"d": pvc("d")},
        CONTEXT,
        Admit,
    ),
    (
        "skip annotation opts out",
        request(pod("d", annotations={"lifeboat.dev/skip": "true"})),
        {"d": pvc("d")},
        CONTEXT,
        Admit,
    ),
    ("pod without PVCs is admitted", request(pod()), {}, CONTEXT, Admit),
    (
        "a stale namespace watch cannot stop injection (the namespaceSelector decides)",
        request(pod("d")),
        {"d": pvc("d")},
        Context(own_namespace="lifeboat", namespace_labels={"team": "x"}),
        Inject,
    ),
    (
        "namespace labelled enabled is injected",
        request(pod("d")),
        {"d": pvc("d")},
        Context(own_namespace="lifeboat", namespace_labels={"lifeboat.dev/inject": "enabled"}),
        Inject,
    ),
    (
        "already injected pod is left alone (reinvocation)",
        request(pod("d", initContainers=[{"name": "lifeboat-restore", "image": "x"}])),
        {"d": pvc("d")},
        CONTEXT,
        Admit,
    ),
    (
        "bad retention annotation is denied",
        request(pod("d")),
        {"d": pvc("d", **{"lifeboat.dev/retention": "daily=x"})},
        CONTEXT,
        Deny,
    ),
    (
        "bad schedule annotation is denied",
        request(pod("d")),
        {"d": pvc("d", **{"lifeboat.dev/schedule": "sometimes"})},
        CONTEXT,
        Deny,
    ),
    (
        "bad snapshot annotation is denied",
        request(pod("d")),
        {"d": pvc("d", **{"lifeboat.dev/restore-snapshot": "yesterday"})},
        CONTEXT,
        Deny,
    ),
    (
        "bad adopt annotation is denied",
        request(pod("d")),
        {"d": pvc("d", **{"lifeboat.dev/adopt": "yes"})},
        CONTEXT,
        Deny,
    ),
    (
        "repository with credentials is denied",
        request(pod("d")),
        {"d": pvc("d", **{"lifeboat.dev/repository": "s3:https://key:secret@s3.example.com/b"})},
        CONTEXT,
        Deny,
    ),
    (
        "reserved container name is denied",
        request(pod("d", containers=[{"name": "lifeboat-backup", "image": "x"}])),
        {"d": pvc("d")},
        CONTEXT,
        Deny,
    ),
    (
        "one missing PVC among labelled ones is denied",
        request(pod("a", "b")),
        {"a": pvc("a"), "b": PvcUnavailable("b", "it does not exist")},
        CONTEXT,
        Deny,
    ),
]


@pytest.mark.parametrize(("name", "req", "pvcs", "context", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decision_table(name: str, req: PodRequest, pvcs: dict, context: Context, expected: type) -> None:
    assert isinstance(decide(req, pvcs, context), expected)


def test_unknown_backup_value_warning_names_the_allowed_values() -> None:
    decision = decide(request(pod("d")), {"d": pvc("d", "weekly")}, CONTEXT)
    assert isinstance(decision, Admit)
    assert "backup='weekly'" in decision.warnings[0]
    assert "hourly or daily" in decision.warnings[0]
    # The API server may truncate warnings longer than 256 characters.
    assert len(decision.warnings[0]) <= 256


def test_denial_for_a_missing_pvc_names_the_pvc_and_the_way_out() -> None:
    decision = decide(request(pod("data")), {"data": PvcUnavailable("data", "it does not exist")}, CONTEXT)
    assert isinstance(decision, Deny)
    assert "apps/data" in decision.message
    assert "it does not exist" in decision.message
    assert "lifeboat.dev/skip" in decision.message


def test_denial_for_a_bad_annotation_names_the_annotation_and_an_example() -> None:
    decision = decide(request(pod("d")), {"d": pvc("d", **{"lifeboat.dev/retention": "forever"})}, CONTEXT)
    assert isinstance(decision, Deny)
    assert "lifeboat.dev/retention" in decision.message
    assert "hourly=24,daily=7" in decision.message


def test_plan_carries_uid_schedule_retention_snapshot_adopt_and_repository() -> None:
    annotations = {
        "lifeboat.dev/schedule": "0 3 * * *",
        "lifeboat.dev/retention": "weekly=4, daily=7",
        "lifeboat.dev/restore-snapshot": "2026-01-31T23:00:00Z",
        "lifeboat.dev/adopt": "true",
        "lifeboat.dev/repository": "s3:https://s3.example.com/volsync/app",
    }
    decision = decide(request(pod("d")), {"d": pvc("d", **annotations)}, CONTEXT)
    assert isinstance(decision, Inject)
    (volume,) = decision.volumes
    assert volume.uid == "uid-d"
    assert volume.schedule == "0 3 * * *"
    assert volume.retention == "daily=7,weekly=4"
    assert volume.snapshot == "2026-01-31T23:00:00Z"
    assert volume.adopt is True
    assert volume.repository == "s3:https://s3.example.com/volsync/app"


def test_every_per_pvc_setting_stays_with_its_own_pvc() -> None:
    """Issue 9 item 3: a scratch PVC's `last=1` or `adopt` never reaches the database PVC."""
    scratch = pvc("scratch", "hourly", **{"lifeboat.dev/retention": "last=1", "lifeboat.dev/adopt": "true"})
    database = pvc("db", "daily", **{"lifeboat.dev/schedule": "*/10 * * * *"})
    decision = decide(request(pod("scratch", "db")), {"scratch": scratch, "db": database}, CONTEXT)
    assert isinstance(decision, Inject)
    plans = {v.pvc: v for v in decision.volumes}
    assert (plans["scratch"].schedule, plans["scratch"].retention, plans["scratch"].adopt) == (
        "hourly",
        "last=1",
        True,
    )
    assert (plans["db"].schedule, plans["db"].retention, plans["db"].adopt) == ("*/10 * * * *", None, False)
    assert not decision.warnings  # nothing is merged, so there is nothing to warn about


def test_a_pvc_mounted_by_two_volumes_is_backed_up_once() -> None:
    p = pod("d")
    p["spec"]["volumes"].append({"name": "again", "persistentVolumeClaim": {"claimName": "d"}})
    assert pvc_claims(p) == [("v-d", "d")]


def test_without_a_pod_level_user_the_backup_runs_as_the_app_container_that_mounts_the_data() -> None:
    """Issue 9 item 4: 65532 could not read a non-root app's files; the backup left them out."""
    p = pod("d", securityContext={"runAsNonRoot": True, "fsGroup": 2000})
    p["spec"]["containers"] = [
        {"name": "helper", "image": "h", "securityContext": {"runAsUser": 5000}},
        {
            "name": "app",
            "image": "app",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1001},
            "volumeMounts": [{"name": "v-d", "mountPath": "/data"}],
        },
    ]
    decision = decide(request(p), {"d": pvc("d")}, CONTEXT)
    assert isinstance(decision, Inject) and decision.hardening == "non-root"
    assert (decision.run_as_user, decision.run_as_group) == (1000, 1001)
    p["spec"]["securityContext"]["runAsUser"] = 7  # a pod-level user wins, as Kubernetes applies it
    decision = decide(request(p), {"d": pvc("d")}, CONTEXT)
    assert isinstance(decision, Inject) and (decision.run_as_user, decision.run_as_group) == (7, None)


def test_restricted_namespaces_and_non_root_pods_get_non_root_containers() -> None:
    restricted = Context(
        own_namespace="lifeboat",
        namespace_labels={
            "lifeboat.dev/inject": "enabled",
            "pod-security.kubernetes.io/enforce": "restricted",
        },
    )
    decision = decide(request(pod("d")), {"d": pvc("d")}, restricted)
    assert isinstance(decision, Inject) and decision.hardening == "non-root"
    assert decision.run_as_user == 65532
    non_root_pod = pod("d", securityContext={"runAsNonRoot": True, "runAsUser": 999})
    decision = decide(request(non_root_pod), {"d": pvc("d")}, CONTEXT)
    assert isinstance(decision, Inject) and decision.run_as_user == 999
    decision = decide(request(pod("d")), {"d": pvc("d")}, CONTEXT)
    assert isinstance(decision, Inject) and decision.hardening == "root-minimal-capabilities"


@pytest.mark.parametrize(
    ("major", "minor", "native"),
    [
        ("1", "28", False),
        ("1", "29", True),
        ("1", "33+", True),
        ("2", "0", True),
        ("1", "", False),
        ("x", "1", False),
    ],
)
def test_native_sidecars_need_kubernetes_1_29(major: str, minor: str, native: bool) -> None:
    assert native_sidecars_supported(major, minor) is native


@pytest.mark.parametrize(
    "value", ["hourly", "daily", "@daily", "*/15 * * * *", "0 3 * * MON-FRI", "0 3 * * 7"]
)
def test_valid_schedules_are_accepted(value: str) -> None:
    assert parse_schedule(value, "s") == value


@pytest.mark.parametrize(
    "value", ["weekly", "* * * *", "0 3 * * * *", "99 * * * *", "0 3 * * 8", "*/0 * * * *", "0 0 31 2 *"]
)
def test_invalid_schedules_are_refused(value: str) -> None:
    with pytest.raises(InvalidSetting, match="crontab"):
        parse_schedule(value, "s")


@pytest.mark.parametrize("value", ["", "daily=0", "daily", "fortnightly=2", "daily=7,daily=8"])
def test_invalid_retention_is_refused(value: str) -> None:
    with pytest.raises(InvalidSetting):
        parse_retention(value, "r")


@pytest.mark.parametrize("value", ["latest", "4f2a9c1b", "a" * 64, "2026-01-31T23:00:00+01:00"])
def test_snapshot_ids_and_zoned_times_are_accepted(value: str) -> None:
    assert parse_snapshot(value, "s") == value


@pytest.mark.parametrize("value", ["2026-01-31", "2026-01-31T23:00:00", "4f2a", "HEAD"])
def test_ambiguous_snapshots_are_refused(value: str) -> None:
    with pytest.raises(InvalidSetting):
        parse_snapshot(value, "s")

"""The user's scenarios on a cluster with a node: real pods, real restore and backup, real S3.

Skipped when the cluster has no Ready node (the control-plane tier). Scenarios that must stop S3
or rebuild the cluster take the commands from the environment (`make e2e` sets them for
cluster/); without them those tests are skipped:
  LIFEBOAT_E2E_S3_STOP / LIFEBOAT_E2E_S3_START   stop/start the S3 the cluster's Secret points at
  LIFEBOAT_E2E_REBUILD                           destroy the cluster (etcd included), keep S3, rebuild
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import workloads as w
from tests.e2e.conftest import INJECT_LABEL, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def nodes(core: Any, webhook: Any) -> None:
    ready = [
        n
        for n in core.list_node().items
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    if not ready:
        pytest.skip("the cluster has no Ready node (control-plane tier): workload scenarios need a kubelet")


@pytest.fixture
def namespace(core: Any, nodes: None) -> Iterator[str]:
    name = f"lb-e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(core, name)
    yield name
    delete_namespace(core, name)


def create_namespace(core: Any, name: str) -> None:
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"lifeboat.dev/e2e": "true", INJECT_LABEL: "enabled"}}}
    )
    eventually(
        f"lifeboat-credentials in {name}", lambda: core.read_namespaced_secret("lifeboat-credentials", name)
    )


def delete_namespace(core: Any, name: str, limit: float = 240) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(f"namespace {name} deleted", gone, limit)


def run_hook(variable: str) -> None:
    command = os.environ.get(variable)
    if not command:
        pytest.skip(f"{variable} is not set (the command that does this on the cluster under test)")
    subprocess.run(command, shell=True, check=True, timeout=900)


def fresh_app_backed_up(api: Any, core: Any, namespace: str, name: str) -> tuple[str, dict]:
    """Scenario 1's steps: the app starts on an empty volume, its first backup lands in S3."""
    w.apply_app(api, namespace, name)
    pod = w.running_pod(core, namespace, name)
    start = w.app_start(core, namespace, pod.metadata.name)
    assert start["state"] == "empty", start
    assert w.restore_message(core, namespace, pod.metadata.name) == f"{name}: fresh"
    backup = w.backup_finished(core, namespace, pod.metadata.name)
    return pod.metadata.name, backup


def test_1_fresh_app_starts_empty_and_a_snapshot_appears(api: Any, core: Any, namespace: str) -> None:
    started = time.monotonic()
    pod, backup = fresh_app_backed_up(api, core, namespace, "app")
    assert len(backup["snapshot"]) >= 8 and backup["files"] >= 2
    stored = core.read_namespaced_pod(pod, namespace)
    assert [c.name for c in stored.spec.init_containers] == ["lifeboat-restore", "lifeboat-backup"]
    print(f"scenario 1: {time.monotonic() - started:.0f} s")


def test_3_4_remove_and_readd_restores_the_final_writes(api: Any, core: Any, namespace: str) -> None:
    started = time.monotonic()
    pod, _ = fresh_app_backed_up(api, core, namespace, "app")
    # Writes after the first backup: only the final backup (native sidecar, on SIGTERM) has them.
    before = eventually(
        "more writes after the first backup", lambda: w.files_written(core, namespace, pod) >= 45
    )
    assert before
    seen = w.files_written(core, namespace, pod)
    delete_namespace(core, namespace)
    create_namespace(core, namespace)
    w.apply_app(api, namespace, "app")
    restored = w.running_pod(core, namespace, "app")
    start = w.app_start(core, namespace, restored.metadata.name)
    assert start["state"] == "intact", start
    assert start["files"] >= seen, (start, seen)  # the writes made just before removal
    assert start["uid"] == w.APP_UID  # ownership came back (the app checks every file's uid)
    assert "restored" in w.restore_message(core, namespace, restored.metadata.name)
    # Scenario 3: a new app alongside starts fresh.
    w.apply_app(api, namespace, "other")
    other = w.running_pod(core, namespace, "other")
    assert w.app_start(core, namespace, other.metadata.name)["state"] == "empty"
    assert w.restore_message(core, namespace, other.metadata.name) == "other: fresh"
    print(f"scenarios 3+4: {time.monotonic() - started:.0f} s")


def test_4b_a_sqlite_app_under_write_comes_back_whole_after_remove_and_readd(
    api: Any, core: Any, namespace: str
) -> None:
    started = time.monotonic()
    w.apply_app(api, namespace, "ledger", mode="sqlite")
    pod = w.running_pod(core, namespace, "ledger").metadata.name
    assert w.app_start(core, namespace, pod)["state"] == "empty"
    first = w.backup_finished(core, namespace, pod)  # taken while the app commits ~20/s
    sqlite = [e for e in w.events(core, namespace, pod, "lifeboat-backup") if "sqlite" in str(e.get("event"))]
    reasons = [e.get("reason") for e in sqlite if e.get("reason")]
    assert first["sqlite_captured"] == 1 and first["sqlite_failed"] == 0, reasons
    eventually("more commits after the first backup", lambda: w.files_written(core, namespace, pod) >= 600)
    seen = w.files_written(core, namespace, pod)
    delete_namespace(core, namespace)  # the final backup captures the database on SIGTERM
    create_namespace(core, namespace)
    w.apply_app(api, namespace, "ledger", mode="sqlite")
    restored = w.running_pod(core, namespace, "ledger").metadata.name
    start = w.app_start(core, namespace, restored)
    assert start["state"] == "intact", start  # opens, integrity_check ok, the sum is whole
    assert start["files"] >= seen, (start, seen)
    assert start["uid"] == w.APP_UID
    assert "restored" in w.restore_message(core, namespace, restored)
    print(f"scenario 4b (SQLite): {time.monotonic() - started:.0f} s")


def test_5_s3_down_while_restoring_waits_in_init(api: Any, core: Any, namespace: str) -> None:
    if not (os.environ.get("LIFEBOAT_E2E_S3_STOP") and os.environ.get("LIFEBOAT_E2E_S3_START")):
        pytest.skip("LIFEBOAT_E2E_S3_STOP/START are not set")
    started = time.monotonic()
    pod, _ = fresh_app_backed_up(api, core, namespace, "app")
    eventually("a few writes", lambda: w.files_written(core, namespace, pod) >= 5)
    delete_namespace(core, namespace)
    create_namespace(core, namespace)
    run_hook("LIFEBOAT_E2E_S3_STOP")
    try:
        w.apply_app(api, namespace, "app")
        time.sleep(25)
        pods = core.list_namespaced_pod(namespace, label_selector="app=app").items
        assert pods and all(p.status.phase == "Pending" for p in pods), [p.status.phase for p in pods]
        for p in pods:  # the app never started
            assert not any(s.state.running or s.state.terminated for s in p.status.container_statuses or [])
    finally:
        run_hook("LIFEBOAT_E2E_S3_START")
    restored = w.running_pod(core, namespace, "app", limit=300)
    start = w.app_start(core, namespace, restored.metadata.name)
    assert start["state"] == "intact" and start["files"] >= 5, start
    print(f"scenario 5: {time.monotonic() - started:.0f} s")


def test_6_injector_down_blocks_only_opted_in_namespaces(
    api: Any, core: Any, namespace: str, release_namespace: str
) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    started = time.monotonic()
    plain = f"lb-e2e-plain-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": plain, "labels": {"lifeboat.dev/e2e": "true"}}})
    deployment = apps.read_namespaced_deployment("lifeboat-injector", release_namespace)
    replicas = deployment.spec.replicas
    try:
        apps.patch_namespaced_deployment_scale(
            "lifeboat-injector", release_namespace, {"spec": {"replicas": 0}}
        )
        eventually(
            "no injector pod left",
            lambda: (
                not core.list_namespaced_pod(
                    release_namespace, label_selector="app.kubernetes.io/name=lifeboat"
                ).items
                or all(
                    p.metadata.deletion_timestamp for p in core.list_namespaced_pod(release_namespace).items
                )
            ),
            120,
        )
        eventually(
            "the injector gone",
            lambda: not core.list_namespaced_pod(release_namespace).items,
            120,
        )
        w.apply_app(api, namespace, "app")
        w.apply_app(api, plain, "app")
        w.running_pod(core, plain, "app")  # other namespaces are unaffected
        time.sleep(10)
        assert core.list_namespaced_pod(namespace).items == []  # refused, not started un-injected
    finally:
        apps.patch_namespaced_deployment_scale(
            "lifeboat-injector", release_namespace, {"spec": {"replicas": replicas}}
        )
    pod = w.running_pod(core, namespace, "app", limit=300)
    stored = core.read_namespaced_pod(pod.metadata.name, namespace)
    assert stored.spec.init_containers[0].name == "lifeboat-restore"
    delete_namespace(core, plain)
    print(f"scenario 6: {time.monotonic() - started:.0f} s")


def test_7_statefulset_templates_and_a_misspelled_label(api: Any, core: Any, namespace: str) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    started = time.monotonic()
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "e2e-app"}, "data": {"app.py": w.APP_SOURCE}}
    )
    for name, label in (("db", "daily"), ("typo", "dayly")):
        template = w.pod_template(name, "data")
        template["spec"]["volumes"] = [v for v in template["spec"]["volumes"] if v["name"] != "data"]
        apps.create_namespaced_stateful_set(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "serviceName": name,
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": template,
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data", "labels": {"backup": label}},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "64Mi"}},
                            },
                        }
                    ],
                },
            },
        )
    db = w.running_pod(core, namespace, "db")
    assert [c.name for c in db.spec.init_containers] == ["lifeboat-restore", "lifeboat-backup"]
    assert db.metadata.annotations["lifeboat.dev/injected"] == "data-db-0"
    assert w.app_start(core, namespace, db.metadata.name)["state"] == "empty"
    typo = w.running_pod(core, namespace, "typo")
    assert not typo.spec.init_containers  # admitted, not injected (the warning went to the controller)
    print(f"scenario 7: {time.monotonic() - started:.0f} s")


def test_9_cluster_rebuild_restores_before_the_app_starts(api: Any, core: Any, nodes: None) -> None:
    """Scenario 2. Runs last (it rebuilds the cluster); keeps S3, loses etcd."""
    if not os.environ.get("LIFEBOAT_E2E_REBUILD"):
        pytest.skip("LIFEBOAT_E2E_REBUILD is not set")
    started = time.monotonic()
    name = f"lb-e2e-rebuild-{uuid.uuid4().hex[:6]}"
    create_namespace(core, name)
    fresh_app_backed_up(api, core, name, "app")
    run_hook("LIFEBOAT_E2E_REBUILD")
    eventually("the rebuilt API server", lambda: core.list_namespace(), 300)
    with pytest.raises(Exception):  # noqa: B017 - etcd was wiped: the namespace is gone
        core.read_namespace(name)
    create_namespace(core, name)
    w.apply_app(api, name, "app")
    restored = w.running_pod(core, name, "app", limit=300)
    start = w.app_start(core, name, restored.metadata.name)
    assert start["state"] == "intact" and start["files"] >= 1, start
    assert "restored" in w.restore_message(core, name, restored.metadata.name)
    delete_namespace(core, name)
    print(f"scenario 2: {time.monotonic() - started:.0f} s")

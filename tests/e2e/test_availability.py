"""The webhook's availability (issue 12 item 7): what an injector outage and a rolling update do.

With every injector replica down, the API server cannot call the webhook; its ``failurePolicy:
Fail`` refuses pod creation, but only in namespaces that opted in (the ``namespaceSelector``):
their apps wait, nothing starts un-injected, and the ReplicaSet's retries (with its backoff) create
the pod, injected, once the injector is back. A rolling update of the injector (``kubectl rollout
restart``, a ``helm upgrade`` changing the pod template) must refuse no pod at all.
The figures printed here are the ones quoted in docs/RELIABILITY.md "Availability".
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import workloads as w
from tests.e2e.conftest import eventually, pod, pvc
from tests.e2e.test_scenarios import create_namespace, delete_namespace, nodes  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e

INJECTOR = "lifeboat-injector"
SELECTOR = "app.kubernetes.io/name=lifeboat,app.kubernetes.io/component=injector"
OUTAGE = 15.0  # seconds the app's ReplicaSet is refused before the injector comes back
BACKLOG_BOUND = 90.0  # injector Ready -> the app's pod Ready (ReplicaSet backoff, restore, start)


@pytest.fixture
def namespace(api: Any, core: Any, nodes: None) -> Iterator[str]:  # noqa: F811 - the imported fixture
    name = f"lb-e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(core, name)
    yield name
    _stop_apps_now(api, core, name)
    delete_namespace(core, name)


@pytest.fixture
def plain(api: Any, core: Any, nodes: None) -> Iterator[str]:  # noqa: F811
    name = f"lb-e2e-plain-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"lifeboat.dev/e2e": "true"}}})
    yield name
    _stop_apps_now(api, core, name)
    delete_namespace(core, name)


def _stop_apps_now(api: Any, core: Any, namespace: str) -> None:
    """Scales the apps to 0 and deletes their pods without a grace period (no final backup
    needed here), so the namespaces go in seconds rather than after the pods' grace periods."""
    from kubernetes import client

    apps = client.AppsV1Api(api)
    for d in apps.list_namespaced_deployment(namespace).items:
        apps.patch_namespaced_deployment_scale(d.metadata.name, namespace, {"spec": {"replicas": 0}})
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)


def _injector_pods(core: Any, release_namespace: str) -> list[Any]:
    return core.list_namespaced_pod(release_namespace, label_selector=SELECTOR).items


def _ready(p: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


def _injector_ready(core: Any, release_namespace: str, replicas: int) -> bool:
    pods = _injector_pods(core, release_namespace)
    live = [p for p in pods if not p.metadata.deletion_timestamp]
    return len(live) == replicas and all(_ready(p) for p in live)


def _refusal(apps: Any, namespace: str, name: str) -> str | None:
    """The message of the app's ReplicaSet's ReplicaFailure condition, once its creates fail."""
    for rs in apps.list_namespaced_replica_set(namespace, label_selector=f"app={name}").items:
        for c in rs.status.conditions or []:
            if c.type == "ReplicaFailure" and c.status == "True":
                return str(c.message)
    return None


def test_injector_down_opted_in_apps_wait_and_start_injected_when_it_returns(
    api: Any, core: Any, namespace: str, plain: str, release_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(api)
    replicas = apps.read_namespaced_deployment(INJECTOR, release_namespace).spec.replicas
    try:
        apps.patch_namespaced_deployment_scale(INJECTOR, release_namespace, {"spec": {"replicas": 0}})
        eventually("every injector pod gone", lambda: not _injector_pods(core, release_namespace), 120)
        down = time.monotonic()
        w.apply_app(api, namespace, "app")
        w.apply_app(api, plain, "app")

        message = eventually("the app's ReplicaSet refused", lambda: _refusal(apps, namespace, "app"))
        assert "inject.lifeboat.dev" in message, message
        with pytest.raises(ApiException) as err:  # any pod, labelled PVC or not: the namespace opted in
            core.create_namespaced_pod(namespace, pod("unlabelled", []), dry_run="All")
        assert err.value.status == 500 and "inject.lifeboat.dev" in err.value.body

        started = w.running_pod(core, plain, "app")  # a namespace that did not opt in is unaffected
        assert not started.spec.init_containers
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
        assert core.list_namespaced_pod(namespace).items == []  # refused, never started un-injected
    finally:
        apps.patch_namespaced_deployment_scale(INJECTOR, release_namespace, {"spec": {"replicas": replicas}})
    back = time.monotonic()
    eventually("the injector Ready", lambda: _injector_ready(core, release_namespace, replicas), 120)
    injector_ready = time.monotonic()

    def created() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=app").items
        return pods[0] if pods else None

    first = eventually("the app's pod created", created, BACKLOG_BOUND)
    pod_created = time.monotonic()
    assert [c.name for c in first.spec.init_containers] == ["lifeboat-restore", "lifeboat-backup"]
    assert first.spec.init_containers[1].restart_policy == "Always"  # the backup sidecar
    assert first.metadata.annotations["lifeboat.dev/injected"] == "app"

    def ready() -> Any:
        p = core.read_namespaced_pod(first.metadata.name, namespace)
        return p if _ready(p) else None

    eventually("the app's pod Ready", ready, BACKLOG_BOUND - (pod_created - injector_ready))
    app_ready = time.monotonic()
    assert w.restore_message(core, namespace, first.metadata.name) == "app: fresh"
    assert len(core.list_namespaced_pod(namespace).items) == 1
    print(
        f"\navailability: app refused for {back - down:.0f} s; injector Ready {injector_ready - back:.1f} s "
        f"after scale-up; app pod created {pod_created - injector_ready:.1f} s and Ready "
        f"{app_ready - injector_ready:.1f} s after the injector was Ready"
    )


def test_rolling_update_of_the_injector_refuses_no_pod(
    kubeconfig: str, api: Any, core: Any, opted_in: str, release_namespace: str
) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(api)
    replicas = apps.read_namespaced_deployment(INJECTOR, release_namespace).spec.replicas
    eventually("the injector Ready", lambda: _injector_ready(core, release_namespace, replicas), 120)
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("data", {"backup": "hourly"}))
    body = pod("probe", ["data"])
    eventually(
        "a dry-run pod injected",
        lambda: core.create_namespaced_pod(opted_in, body, dry_run="All").spec.init_containers,
    )
    stop = threading.Event()
    admitted: list[int] = []
    refused: list[str] = []

    def create_continuously() -> None:
        own = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        count = 0
        while not stop.is_set():
            try:
                created = own.create_namespaced_pod(opted_in, body, dry_run="All")
            except ApiException as exc:
                refused.append(f"{exc.status}: {exc.body}")
            else:
                count += 1
                if not created.spec.init_containers:
                    refused.append("admitted without injection")
        admitted.append(count)

    clients = [threading.Thread(target=create_continuously) for _ in range(2)]
    old = {p.metadata.name for p in _injector_pods(core, release_namespace)}
    started = time.monotonic()
    for t in clients:
        t.start()
    try:
        time.sleep(2)
        restarted = datetime.datetime.now(datetime.UTC).isoformat()  # what `kubectl rollout restart` sets
        apps.patch_namespaced_deployment(
            INJECTOR,
            release_namespace,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted}}
                    }
                }
            },
        )

        def rolled() -> bool:
            names = {p.metadata.name for p in _injector_pods(core, release_namespace)}
            return not names & old and _injector_ready(core, release_namespace, replicas)

        eventually("the rollout done and every old injector pod gone", rolled, 180)
        rollout = time.monotonic() - started - 2
        time.sleep(3)  # and a little after
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    total = sum(admitted)
    print(
        f"\nrolling update: {total} dry-run pod creates over {time.monotonic() - started:.0f} s "
        f"(rollout {rollout:.0f} s, {len(clients)} clients), {len(refused)} refused"
    )
    assert refused == [], refused[:5]
    assert total > 50

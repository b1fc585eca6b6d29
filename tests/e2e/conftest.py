"""End-to-end tests against a real Kubernetes API server with Lifeboat installed.

Cluster-agnostic: they take a kubeconfig (``LIFEBOAT_E2E_KUBECONFIG``) for a cluster where the
chart is installed and the injector is ready: `make cluster-up` (cluster/, upstream components on
this machine) or any other cluster (kind, a dev cluster). Without the variable every test here is
skipped, so the unit suite stays runnable anywhere.

Settings (environment):
  LIFEBOAT_E2E_KUBECONFIG   kubeconfig with cluster-admin rights (required)
  LIFEBOAT_E2E_NAMESPACE    the release namespace of the chart (default: lifeboat)
  LIFEBOAT_E2E_TIMEOUT      seconds to wait for asynchronous effects (default: 60)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
INJECT_LABEL = "lifeboat.dev/inject"
WEBHOOK_NAME = "lifeboat-injector"
# Pods made by these tests must never run anywhere: admission is what is under test.
UNSCHEDULABLE = {"lifeboat.dev/e2e-never-schedule": "true"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: needs a real cluster with Lifeboat installed (LIFEBOAT_E2E_KUBECONFIG)"
    )


SCAN_LAST = "test_secrets_scan.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The secrets scan reads what the whole run showed: it runs last (a stable sort keeps the rest)."""
    items.sort(key=lambda item: item.path.name == SCAN_LAST)


def timeout() -> float:
    return float(os.environ.get("LIFEBOAT_E2E_TIMEOUT", "60"))


def eventually(what: str, probe: Callable[[], T | None], limit: float | None = None) -> T:
    """Polls ``probe`` until it returns something truthy; fails naming ``what`` and the last value."""
    deadline = time.monotonic() + (limit if limit is not None else timeout())
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {last!r}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("LIFEBOAT_E2E_KUBECONFIG")
    if not path:
        pytest.skip(
            "LIFEBOAT_E2E_KUBECONFIG is not set: e2e tests need a cluster with Lifeboat installed "
            "(`make cluster-up`, then `make e2e`)"
        )
    if not os.path.exists(path):
        pytest.fail(f"LIFEBOAT_E2E_KUBECONFIG={path} does not exist (is the cluster up?)")
    return path


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


@pytest.fixture(scope="session", autouse=True)
def recorder(kubeconfig: str, api: Any) -> Iterator[Any]:
    """Records what the run shows (logs, Events, pods, process command lines) for the secrets scan."""
    from tests.e2e.secrets_watch import Recorder

    watching = Recorder(api)
    watching.start()
    yield watching
    watching.stop()


@pytest.fixture(scope="session")
def release_namespace() -> str:
    return os.environ.get("LIFEBOAT_E2E_NAMESPACE", "lifeboat")


@pytest.fixture(scope="session")
def webhook(api: Any) -> Any:
    """The injector's webhook configuration, once its caBundle is in (the injector is up)."""
    from kubernetes import client

    admission = client.AdmissionregistrationV1Api(api)

    def ready() -> Any:
        config = admission.read_mutating_webhook_configuration(WEBHOOK_NAME)
        return config if all(w.client_config.ca_bundle for w in config.webhooks) else None

    return eventually(f"MutatingWebhookConfiguration {WEBHOOK_NAME} with a caBundle", ready)


def _namespace(core: Any, labels: dict[str, str]) -> Iterator[str]:
    name = f"lb-e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"lifeboat.dev/e2e": "true", **labels}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture
def opted_in(core: Any, webhook: Any) -> Iterator[str]:
    """A fresh namespace labelled for injection (deleted afterwards)."""
    yield from _namespace(core, {INJECT_LABEL: "enabled"})


@pytest.fixture
def plain_namespace(core: Any, webhook: Any) -> Iterator[str]:
    """A fresh namespace that did not opt in."""
    yield from _namespace(core, {})


def pvc(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }


def pod(name: str, claims: list[str], annotations: dict[str, str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "nodeSelector": dict(UNSCHEDULABLE),
            "containers": [
                {
                    "name": "app",
                    "image": "docker.io/library/lifeboat:dev",
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "volumeMounts": [
                        {"name": f"v{i}", "mountPath": f"/data/{c}"} for i, c in enumerate(claims)
                    ],
                }
            ],
            "volumes": [
                {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)
            ],
        },
    }

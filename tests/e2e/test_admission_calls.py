"""One webhook call per pod through a real API server: nothing changes the pod after Lifeboat's
webhook, so `reinvocationPolicy: IfNeeded` never makes the apiserver call it a second time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import pod, pvc

pytestmark = pytest.mark.e2e

METRIC = "apiserver_admission_webhook_admission_duration_seconds_count"


def _webhook_calls(core: Any) -> float:
    """The apiserver's own count of calls to Lifeboat's webhook, every label summed."""
    client = core.api_client
    response = client.call_api("GET", client.configuration.host + "/metrics")
    response.read()
    text = response.data.decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(METRIC + "{") and 'name="inject.lifeboat.dev"' in line
    )


def test_an_injected_pod_is_admitted_with_one_webhook_call(core: Any, opted_in: str) -> None:
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("data", {"backup": "hourly"}))
    core.create_namespaced_pod(opted_in, pod("warm-up", ["data"]), dry_run="All")  # the PVC is seen
    before = _webhook_calls(core)
    created = core.create_namespaced_pod(opted_in, pod("app", ["data"]), dry_run="All")
    assert [c.name for c in created.spec.init_containers] == ["lifeboat-restore", "lifeboat-backup"]
    assert _webhook_calls(core) - before == 1
    for container in created.spec.init_containers:  # no API token in Lifeboat's containers
        (mount,) = [
            m
            for m in container.volume_mounts
            if m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"
        ]
        assert mount.name.startswith("lifeboat-no-api-token") and mount.read_only
    app = created.spec.containers[0]
    assert any(m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount" for m in app.volume_mounts)

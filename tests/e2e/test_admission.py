"""The webhook through a real API server: registration, mutation, denial, warnings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import INJECT_LABEL, pod, pvc

pytestmark = pytest.mark.e2e


def _create_pod(core: Any, namespace: str, body: dict) -> tuple[Any, list[str]]:
    """Creates the pod; returns the stored pod and the API server's Warning headers."""
    created, _status, headers = core.create_namespaced_pod_with_http_info(namespace, body)
    warnings = [w for k, w in headers.items() if k.lower() == "warning"]
    return created, warnings


def test_webhook_is_registered_with_the_chart_policy(webhook: Any, release_namespace: str) -> None:
    (hook,) = webhook.webhooks
    assert hook.failure_policy == "Fail"
    assert hook.reinvocation_policy == "IfNeeded"
    assert hook.namespace_selector.match_labels == {INJECT_LABEL: "enabled"}
    excluded = next(
        e for e in hook.namespace_selector.match_expressions if e.key == "kubernetes.io/metadata.name"
    )
    assert release_namespace in excluded.values and "kube-system" in excluded.values
    assert [r.resources for r in hook.rules] == [["pods"]]


def test_pod_in_opted_in_namespace_is_injected(core: Any, opted_in: str) -> None:
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("data", {"backup": "hourly"}))
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("scratch"))
    created, _ = _create_pod(core, opted_in, pod("app", ["data", "scratch"]))

    stored = core.read_namespaced_pod("app", opted_in)  # what etcd holds, not just the response
    for p in (created, stored):
        init = p.spec.init_containers
        assert [c.name for c in init] == ["lifeboat-restore", "lifeboat-backup"]
        restore, backup = init
        assert backup.restart_policy == "Always"  # native sidecar on >= 1.29
        assert restore.args[0] == "restore" and backup.args[0] == "sidecar"
        assert "--volume" in restore.args and "data=/lifeboat/volumes/data" in restore.args
        assert not any("scratch" in a for a in restore.args + backup.args)  # unlabelled PVC untouched
        uid = core.read_namespaced_persistent_volume_claim("data", opted_in).metadata.uid
        assert f"data={uid}" in restore.args
        secret_refs = {
            e.name: e.value_from.secret_key_ref.name
            for e in restore.env
            if e.value_from and e.value_from.secret_key_ref
        }
        assert secret_refs["RESTIC_PASSWORD"] == "lifeboat-credentials"
        assert "AWS_SECRET_ACCESS_KEY" in secret_refs
        mounts = {m.mount_path for m in restore.volume_mounts}
        assert "/lifeboat/volumes/data" in mounts
        assert p.metadata.annotations["lifeboat.dev/injected"] == "data"
        assert [c.name for c in p.spec.containers] == ["app"]
        volumes = {v.name for v in p.spec.volumes}
        assert {"lifeboat-state", "lifeboat-cache"} <= volumes
        # the chart's inject.finalBackupTimeoutSeconds (120) plus 30 s for the app to stop first
        assert p.spec.termination_grace_period_seconds >= 150


def test_pod_referencing_a_missing_pvc_is_denied(core: Any, opted_in: str) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(opted_in, pod("orphan", ["does-not-exist"]))
    assert err.value.status in (400, 403, 422)
    assert "inject.lifeboat.dev" in err.value.body
    assert f"cannot read PersistentVolumeClaim {opted_in}/does-not-exist" in err.value.body
    assert core.list_namespaced_pod(opted_in).items == []


def test_misspelled_backup_value_is_admitted_with_a_warning(core: Any, opted_in: str) -> None:
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("data", {"backup": "hourlyy"}))
    created, warnings = _create_pod(core, opted_in, pod("app", ["data"]))
    assert not created.spec.init_containers
    assert "lifeboat.dev/injected" not in (created.metadata.annotations or {})
    joined = " ".join(warnings)
    assert "hourlyy" in joined and "hourly or daily" in joined, warnings


def test_namespace_that_did_not_opt_in_is_untouched(core: Any, plain_namespace: str) -> None:
    core.create_namespaced_persistent_volume_claim(plain_namespace, pvc("data", {"backup": "hourly"}))
    # Not even a missing PVC is refused there: the webhook is never called.
    created, warnings = _create_pod(core, plain_namespace, pod("app", ["data", "missing"]))
    assert not created.spec.init_containers
    assert warnings == []


def test_skip_annotation_is_honoured(core: Any, opted_in: str) -> None:
    core.create_namespaced_persistent_volume_claim(opted_in, pvc("data", {"backup": "daily"}))
    created, _ = _create_pod(core, opted_in, pod("app", ["data"], {"lifeboat.dev/skip": "true"}))
    assert not created.spec.init_containers

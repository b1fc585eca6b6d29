"""The cache and the controller against an in-memory stand-in for the Kubernetes API.

The real apiserver comes with the real-cluster issue; here the point is the logic at the edges:
cache fallbacks, the TLS Secret and caBundle round trip, mirror writes confined to opted-in
namespaces, and one Event per un-injected pod.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from injector.cache import CacheMiss, ClusterCache
from injector.config import InjectorSettings
from injector.controller import Controller
from injector.credentials import namespace_password
from injector.decision import PvcInfo, PvcUnavailable
from injector.metrics import Metrics
from injector.tls import Bundle

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


def meta(name: str, namespace: str | None = None, **kw: Any) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        namespace=namespace,
        uid=kw.get("uid", f"uid-{name}"),
        labels=kw.get("labels"),
        annotations=kw.get("annotations"),
    )


class FakeCore:
    """Secrets, PVCs, pods and events in dicts; records every write."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], SimpleNamespace] = {}
        self.pvcs: dict[tuple[str, str], SimpleNamespace] = {}
        self.pods: dict[str, list[client.V1Pod]] = {}
        self.events: dict[tuple[str, str], Any] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.fail_pvc_reads = False
        self.terminating: set[str] = set()  # namespaces whose writes the API server refuses (403)

    def read_namespaced_persistent_volume_claim(self, name: str, namespace: str, _request_timeout: float = 0):
        if self.fail_pvc_reads:
            raise ApiError(500)
        if (namespace, name) not in self.pvcs:
            raise ApiError(404)
        return self.pvcs[(namespace, name)]

    def read_namespaced_secret(self, name: str, namespace: str):
        if (namespace, name) not in self.secrets:
            raise ApiError(404)
        s = self.secrets[(namespace, name)]
        return SimpleNamespace(
            metadata=s.metadata, data=dict(s.data or {}), resource_version=s.resource_version
        )

    def _store(self, namespace: str, name: str, body: Any, verb: str) -> None:
        if namespace in self.terminating:
            raise ApiError(403)  # "namespace is being terminated"
        data = getattr(body, "data", None)
        if getattr(body, "string_data", None):
            data = {k: base64.b64encode(v.encode()).decode() for k, v in body.string_data.items()}
        labels = body.metadata.labels if hasattr(body.metadata, "labels") else None
        self.secrets[(namespace, name)] = SimpleNamespace(
            metadata=meta(name, namespace, labels=labels), data=data, resource_version="2"
        )
        self.writes.append((verb, namespace, name))

    def create_namespaced_secret(self, namespace: str, body: Any):
        self._store(namespace, body.metadata.name, body, "create")

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any):
        self._store(namespace, name, body, "replace")

    def delete_namespaced_secret(self, name: str, namespace: str):
        del self.secrets[(namespace, name)]
        self.writes.append(("delete", namespace, name))

    def list_namespaced_pod(self, namespace: str):
        return SimpleNamespace(items=self.pods.get(namespace, []))

    def create_namespaced_event(self, namespace: str, body: Any):
        key = (namespace, body.metadata.name)
        if key in self.events:
            raise ApiError(409)
        self.events[key] = body
        self.writes.append(("event", namespace, body.metadata.name))


class FakeAdmission:
    def __init__(self) -> None:
        hook = SimpleNamespace(client_config=SimpleNamespace(ca_bundle=None))
        self.config = SimpleNamespace(webhooks=[hook])
        self.replaced = 0

    def read_mutating_webhook_configuration(self, name: str):
        return self.config

    def replace_mutating_webhook_configuration(self, name: str, body: Any):
        self.config = body
        self.replaced += 1


SOURCE = {
    "LIFEBOAT_S3_ENDPOINT": "https://s3.example.com",
    "LIFEBOAT_S3_BUCKET": "backups",
    "LIFEBOAT_S3_PREFIX": "",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-key-value",
    "RESTIC_MASTER_PASSWORD": "master",
}


@pytest.fixture
def world(tmp_path: Path):
    core, adm, metrics = FakeCore(), FakeAdmission(), Metrics()
    settings = InjectorSettings(namespace="lifeboat")
    core.secrets[("lifeboat", "lifeboat-injector-tls")] = SimpleNamespace(
        metadata=meta("lifeboat-injector-tls", "lifeboat"), data=None, resource_version="1"
    )
    core.secrets[("lifeboat", "lifeboat-source")] = SimpleNamespace(
        metadata=meta("lifeboat-source", "lifeboat"),
        data={k: base64.b64encode(v.encode()).decode() for k, v in SOURCE.items()},
        resource_version="1",
    )
    cache = ClusterCache(core, metrics)
    for name, labels in {
        "apps": {"lifeboat.dev/inject": "enabled"},
        "media": {"lifeboat.dev/inject": "enabled"},
        "other": {},
        "lifeboat": {"lifeboat.dev/inject": "enabled"},
        "kube-system": {"lifeboat.dev/inject": "enabled"},
    }.items():
        cache.apply_namespace_event("ADDED", SimpleNamespace(metadata=meta(name, labels=labels)))
    controller = Controller(settings, core, adm, cache, metrics, tmp_path / "tls", now=lambda: NOW)
    return SimpleNamespace(
        core=core, adm=adm, cache=cache, controller=controller, metrics=metrics, tmp=tmp_path
    )


def test_a_cached_pvc_is_answered_without_the_api(world) -> None:
    world.cache.apply_pvc_event(
        "ADDED", SimpleNamespace(metadata=meta("data", "apps", labels={"backup": "daily"}))
    )
    world.core.fail_pvc_reads = True
    assert world.cache.cached("apps", "data") == PvcInfo("data", "uid-data", {"backup": "daily"}, {})
    assert world.cache.lookup("apps", "data").labels == {"backup": "daily"}


def test_a_cache_miss_falls_back_to_a_direct_get(world) -> None:
    with pytest.raises(CacheMiss):
        world.cache.cached("apps", "fresh")
    world.core.pvcs[("apps", "fresh")] = SimpleNamespace(
        metadata=meta("fresh", "apps", labels={"backup": "hourly"})
    )
    assert world.cache.lookup("apps", "fresh").labels == {"backup": "hourly"}
    assert world.cache.cached("apps", "fresh").uid == "uid-fresh"


def test_a_missing_pvc_or_api_error_is_unavailable_with_a_reason(world) -> None:
    assert world.cache.lookup("apps", "ghost") == PvcUnavailable("ghost", "it does not exist")
    world.core.fail_pvc_reads = True
    assert world.cache.lookup("apps", "other") == PvcUnavailable("other", "API error 500")


def test_deleted_pvcs_leave_the_cache(world) -> None:
    obj = SimpleNamespace(metadata=meta("data", "apps", labels={"backup": "daily"}))
    world.cache.apply_pvc_event("ADDED", obj)
    world.cache.apply_pvc_event("DELETED", obj)
    with pytest.raises(CacheMiss):
        world.cache.cached("apps", "data")


def test_tls_is_bootstrapped_into_the_secret_and_the_ca_bundle(world) -> None:
    bundle = world.controller.ensure_tls()
    stored = world.core.secrets[("lifeboat", "lifeboat-injector-tls")]
    assert Bundle.from_secret_data({k: base64.b64decode(v) for k, v in stored.data.items()}) == bundle
    assert world.adm.config.webhooks[0].client_config.ca_bundle == base64.b64encode(bundle.ca_cert).decode()
    assert (world.tmp / "tls" / "tls.crt").read_bytes() == bundle.cert
    # A second replica (or the next resync) reuses the stored chain and patches nothing.
    again = world.controller.ensure_tls()
    assert again == bundle and world.adm.replaced == 1


def test_credentials_are_mirrored_only_into_opted_in_namespaces(world) -> None:
    world.controller.mirror_credentials()
    written = sorted(ns for verb, ns, _ in world.core.writes)
    assert written == ["apps", "media"]
    data = world.core.secrets[("apps", "lifeboat-credentials")].data
    assert base64.b64decode(data["RESTIC_PASSWORD"]).decode() == namespace_password("master", "apps")
    assert "RESTIC_MASTER_PASSWORD" not in data
    world.core.writes.clear()
    assert world.controller.mirror_credentials() == 0


def test_a_terminating_namespace_never_blocks_mirroring_into_the_others(world) -> None:
    """Issue 14 item 3: "apps" sorts first and refuses every write; "media" still gets its Secret."""
    world.core.terminating.add("apps")
    assert world.controller.mirror_credentials() == 1
    assert ("media", "lifeboat-credentials") in world.core.secrets
    assert ("apps", "lifeboat-credentials") not in world.core.secrets
    text = world.metrics.render().decode()
    assert 'lifeboat_credentials_mirror_failures_total{namespace="apps"} 1.0' in text
    world.core.terminating.clear()  # the next resync catches up
    assert world.controller.mirror_credentials() == 1
    assert ("apps", "lifeboat-credentials") in world.core.secrets


def test_a_namespace_that_opts_out_loses_its_mirror_but_foreign_secrets_stay(world) -> None:
    world.controller.mirror_credentials()
    world.core.secrets[("other", "lifeboat-credentials")] = SimpleNamespace(
        metadata=meta("lifeboat-credentials", "other", labels={"team": "x"}),
        data={"x": "eQ=="},
        resource_version="1",
    )
    world.cache.apply_namespace_event("MODIFIED", SimpleNamespace(metadata=meta("media", labels={})))
    world.core.writes.clear()
    world.controller.mirror_credentials()
    assert world.core.writes == [("delete", "media", "lifeboat-credentials")]
    assert ("other", "lifeboat-credentials") in world.core.secrets


def test_a_namespace_change_wakes_the_controller(world) -> None:
    world.cache.on_namespace_change = world.controller.wake.set
    world.cache.apply_namespace_event(
        "ADDED", SimpleNamespace(metadata=meta("new", labels={"lifeboat.dev/inject": "enabled"}))
    )
    assert world.controller.wake.is_set()


def test_running_pods_admitted_without_injection_are_reported_once(world) -> None:
    world.cache.apply_pvc_event(
        "ADDED", SimpleNamespace(metadata=meta("data", "apps", labels={"backup": "daily"}))
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="legacy", namespace="apps", uid="pod-uid-1"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="app")],
            volumes=[
                client.V1Volume(
                    name="d",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="data"),
                )
            ],
        ),
        status=client.V1PodStatus(phase="Running"),
    )
    world.core.pods["apps"] = [pod]
    found = world.controller.report_uninjected()
    assert [p.name for p in found] == ["legacy"]
    (event,) = world.core.events.values()
    assert event.reason == "LifeboatNotInjected" and "data" in event.message
    assert event.involved_object.uid == "pod-uid-1"
    world.controller.report_uninjected()
    assert len(world.core.events) == 1
    assert "lifeboat_uninjected_pods 1.0" in world.metrics.render().decode()

"""What a homelab install gets injected (issue 14 items 1, 9, 10): the chart's pull secrets, no
cache limit that could evict the app, metrics that can be turned off, memory limits per volume.

The real admission code turns a pod into a JSON Patch; the patched pod is checked as Kubernetes
would see it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from injector.admission import review
from injector.config import InjectorSettings
from tests.support.injector_fixtures import admission_review, decode_patch, pvc_table, table_lookup


def pod(pvcs: dict[str, dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "pod": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": "home"},
            "spec": {
                "containers": [{"name": "app", "image": "app:1"}],
                "volumes": [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in pvcs],
                **spec,
            },
        },
        "pvcs": {
            name: {"uid": f"uid-{name}", "labels": {"backup": "daily"}, "annotations": annotations}
            for name, annotations in pvcs.items()
        },
    }


def admit(case: dict[str, Any], settings: InjectorSettings) -> dict[str, Any]:
    body = json.dumps(admission_review(case["pod"])).encode()
    reply = review(body, settings, table_lookup(pvc_table(case)), lambda ns: None, True)
    return dict(json.loads(reply.body)["response"])


def injected(case: dict[str, Any], settings: InjectorSettings) -> dict[str, Any]:
    response = admit(case, settings)
    assert response["allowed"] is True, response
    return dict(jsonpatch.apply_patch(copy.deepcopy(case["pod"]), decode_patch(response))["spec"])


def lifeboat_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in spec["initContainers"] if c["name"].startswith("lifeboat-")]


@pytest.fixture
def base() -> InjectorSettings:
    return InjectorSettings(image="registry.example.net/lifeboat:0.1.0", namespace="lifeboat")


def test_the_charts_pull_secrets_are_added_to_an_injected_pod(base: InjectorSettings) -> None:
    settings = base.model_copy(update={"image_pull_secrets": ("regcred",)})
    spec = injected(pod({"data": {}}), settings)
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_a_pods_own_pull_secrets_are_kept_and_not_repeated(base: InjectorSettings) -> None:
    settings = base.model_copy(update={"image_pull_secrets": ("regcred", "mirror")})
    spec = injected(
        pod({"data": {}}, imagePullSecrets=[{"name": "app-registry"}, {"name": "mirror"}]), settings
    )
    assert spec["imagePullSecrets"] == [{"name": "app-registry"}, {"name": "mirror"}, {"name": "regcred"}]


def test_without_pull_secrets_the_pod_gets_none(base: InjectorSettings) -> None:
    assert "imagePullSecrets" not in injected(pod({"data": {}}), base)


def test_the_pull_secrets_arrive_from_the_charts_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFEBOAT_INJECTOR_IMAGE_PULL_SECRETS", '[{"name": "regcred"}]')
    with pytest.raises(ValueError, match=r"image_pull_secrets"):
        InjectorSettings()  # the chart passes names, not objects: see the Deployment template
    monkeypatch.setenv("LIFEBOAT_INJECTOR_IMAGE_PULL_SECRETS", '["regcred"]')
    assert InjectorSettings().image_pull_secrets == ("regcred",)


def test_the_restic_cache_has_no_size_limit_by_default_so_it_cannot_evict_the_app(
    base: InjectorSettings,
) -> None:
    spec = injected(pod({"data": {}}), base)
    cache = next(v for v in spec["volumes"] if v["name"] == "lifeboat-cache")
    assert cache["emptyDir"] == {}
    capped = injected(pod({"data": {}}), base.model_copy(update={"restic_cache_size_limit": "2Gi"}))
    assert next(v for v in capped["volumes"] if v["name"] == "lifeboat-cache")["emptyDir"] == {
        "sizeLimit": "2Gi"
    }


def test_metrics_port_0_turns_the_sidecars_metrics_off(base: InjectorSettings) -> None:
    settings = InjectorSettings(image=base.image, metrics_port=0)
    backup = lifeboat_containers(injected(pod({"data": {}}), settings))[1]
    assert "ports" not in backup
    assert {"name": "LIFEBOAT_METRICS_PORT", "value": "0"} in backup["env"]


def test_a_pvc_memory_limit_annotation_sets_the_injected_containers_limit(base: InjectorSettings) -> None:
    case = pod(
        {
            "small": {},
            "photos": {"lifeboat.dev/memory-limit": "2Gi"},
            "db": {"lifeboat.dev/memory-limit": "768Mi"},
        }
    )
    for container in lifeboat_containers(injected(case, base)):
        assert container["resources"]["limits"] == {"memory": "2Gi"}  # the largest of the pod's PVCs
        assert container["resources"]["requests"]["memory"] == base.memory_request


def test_without_the_annotation_the_charts_memory_limit_applies(base: InjectorSettings) -> None:
    for container in lifeboat_containers(injected(pod({"data": {}}), base)):
        assert container["resources"]["limits"] == {"memory": base.memory_limit}


def test_a_request_above_an_annotated_limit_is_lowered_to_it(base: InjectorSettings) -> None:
    settings = base.model_copy(update={"memory_request": "256Mi"})
    case = pod({"data": {"lifeboat.dev/memory-limit": "128Mi"}})
    for container in lifeboat_containers(injected(case, settings)):
        assert container["resources"]["requests"]["memory"] == "128Mi"
        assert container["resources"]["limits"]["memory"] == "128Mi"


@pytest.mark.parametrize(("value", "named"), [("lots", "not a memory quantity"), ("16Mi", "below 64Mi")])
def test_a_bad_memory_limit_denies_the_pod_naming_the_annotation_and_the_fix(
    base: InjectorSettings, value: str, named: str
) -> None:
    response = admit(pod({"data": {"lifeboat.dev/memory-limit": value}}), base)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "PVC data: annotation lifeboat.dev/memory-limit" in message
    assert named in message and "768Mi" in message

"""The examples are valid, carry only the one label, and get injected as the docs promise."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from injector.admission import review
from injector.config import InjectorSettings
from injector.decision import PvcInfo, PvcUnavailable
from tests.support.injector_fixtures import admission_review, decode_patch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BUILT_IN = {"Namespace", "PersistentVolumeClaim", "Deployment", "StatefulSet", "Service"}


def load(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / path).read_text()) if d]


def all_files() -> list[str]:
    return sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize("path", all_files())
def test_every_example_parses_and_built_in_objects_are_valid(path: str) -> None:
    for obj in load(path):
        if obj.get("kind") in BUILT_IN:
            kubernetes_validate.validate(obj, "1.33.0", strict=True)


def lifeboat_keys(node: Any, trail: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{trail}/{key}"
            if "lifeboat" in str(key) or key == "backup":
                found.append(here)
            found += lifeboat_keys(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += lifeboat_keys(value, f"{trail}/{i}")
    return found


@pytest.mark.parametrize(
    "path", ["plain/app.yaml", "statefulset/postgres.yaml", "app-template/values.yaml", "flux/app.yaml"]
)
def test_apps_carry_the_one_label_and_nothing_else_lifeboat_specific(path: str) -> None:
    keys = [k for doc in load(path) for k in lifeboat_keys(doc)]
    backup = [k for k in keys if k.endswith("/backup")]
    assert len(backup) == 1, keys
    assert set(keys) - set(backup) <= {"/metadata/labels/lifeboat.dev/inject"}


def pod_from_template(workload: dict[str, Any], name: str) -> dict[str, Any]:
    template = copy.deepcopy(workload["spec"]["template"])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata", {}),
        "spec": template["spec"],
    }
    pod["metadata"].update(name=name, namespace=workload["metadata"]["namespace"])
    return pod


def injected(pod: dict[str, Any], pvcs: dict[str, dict[str, str]]) -> dict[str, Any]:
    def lookup(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        return PvcInfo(name, f"uid-{name}", pvcs[name]) if name in pvcs else PvcUnavailable(name, "missing")

    reply = review(
        json.dumps(admission_review(pod)).encode(), InjectorSettings(), lookup, lambda ns: None, True
    )
    response = json.loads(reply.body)["response"]
    assert response["allowed"] and "patch" in response, response
    patched = jsonpatch.apply_patch(pod, decode_patch(response))
    kubernetes_validate.validate(patched, "1.33.0", strict=True)
    return patched


def test_the_plain_deployment_gets_restore_and_backup_containers() -> None:
    objects = {o["kind"]: o for o in load("plain/app.yaml")}
    pvc = objects["PersistentVolumeClaim"]
    pod = pod_from_template(objects["Deployment"], "wiki-abc")
    patched = injected(pod, {pvc["metadata"]["name"]: pvc["metadata"]["labels"]})
    assert [c["name"] for c in patched["spec"]["initContainers"]] == ["lifeboat-restore", "lifeboat-backup"]


def test_each_statefulset_replica_gets_its_own_pvc_backed_up_as_non_root() -> None:
    objects = {o["kind"]: o for o in load("statefulset/postgres.yaml")}
    sts = objects["StatefulSet"]
    (template,) = sts["spec"]["volumeClaimTemplates"]
    for ordinal in range(2):
        pod = pod_from_template(sts, f"postgres-{ordinal}")
        claim = f"{template['metadata']['name']}-postgres-{ordinal}"
        # The StatefulSet controller adds the claim volume from the template.
        pod["spec"]["volumes"] = [{"name": "pgdata", "persistentVolumeClaim": {"claimName": claim}}]
        patched = injected(pod, {claim: template["metadata"]["labels"]})
        restore = patched["spec"]["initContainers"][0]
        assert f"{claim}=/lifeboat/volumes/{claim}" in restore["args"]
        assert restore["securityContext"]["runAsUser"] == 999


def test_argocd_installs_lifeboat_in_an_earlier_wave_and_ignores_the_runtime_ca_bundle() -> None:
    (lifeboat,) = load("argocd/lifeboat.yaml")
    (app,) = load("argocd/app.yaml")
    wave = lambda o: int(o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])  # noqa: E731
    assert wave(lifeboat) < wave(app)
    ignored = lifeboat["spec"]["ignoreDifferences"][0]
    assert ignored["kind"] == "MutatingWebhookConfiguration"
    assert ".webhooks[].clientConfig.caBundle" in ignored["jqPathExpressions"]
    assert "RespectIgnoreDifferences=true" in lifeboat["spec"]["syncPolicy"]["syncOptions"]


def test_flux_apps_depend_on_lifeboat() -> None:
    release = next(o for o in load("flux/app.yaml") if o["kind"] == "HelmRelease")
    assert {"name": "lifeboat", "namespace": "lifeboat"} in release["spec"]["dependsOn"]
    lifeboat = next(o for o in load("flux/lifeboat.yaml") if o["kind"] == "HelmRelease")
    assert lifeboat["metadata"]["name"] == "lifeboat" and lifeboat["metadata"]["namespace"] == "lifeboat"


def test_the_app_template_values_label_the_pvc() -> None:
    (values,) = load("app-template/values.yaml")
    assert values["persistence"]["config"]["labels"] == {"backup": "daily"}

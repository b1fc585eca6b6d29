"""The GitOps examples order things as examples/README.md claims (issue 14 item 5), checked offline.

Every manifest parses; built-in kinds are valid Kubernetes objects; the custom resources have the
fields their controllers need; the chain source Secret -> chart -> apps holds in ArgoCD (waves plus
the Application health check) and in Flux (Kustomization dependsOn + wait); the release namespace
exists before the HelmRelease that lives in it; the placeholder Secret carries every key the
injector requires; and the chart renders with the values the examples give it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from injector.credentials import REQUIRED_SOURCE_KEYS
from tests.integration.injector.test_chart import CHART, HELM, helm

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BUILT_IN = {
    "Namespace",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "Service",
}
CUSTOM = {
    ("argoproj.io/v1alpha1", "Application"): ["spec.project", "spec.source", "spec.destination"],
    ("external-secrets.io/v1", "ExternalSecret"): ["spec.secretStoreRef", "spec.target.name", "spec.data"],
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): ["spec.interval", "spec.path", "spec.sourceRef"],
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): ["resources"],
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): ["spec.interval"],
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): ["spec.url", "spec.interval"],
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"): ["spec.url", "spec.interval"],
}


def load(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / path).read_text()) if d]


def gitops_files() -> list[str]:
    return sorted(
        str(p.relative_to(EXAMPLES)) for d in ("argocd", "flux") for p in (EXAMPLES / d).rglob("*.yaml")
    )


def dig(obj: dict[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("path", gitops_files())
def test_every_gitops_manifest_is_a_valid_object(path: str) -> None:
    for obj in load(path):
        kind = obj["kind"]
        if kind in BUILT_IN:
            kubernetes_validate.validate(obj, "1.33.0", strict=True)
            continue
        key = (obj["apiVersion"], kind)
        assert key in CUSTOM, f"{path}: unexpected {key}"
        for field in CUSTOM[key]:
            assert dig(obj, field) is not None, f"{path}: {kind} lacks {field}"
        if kind != "Kustomization" or "metadata" in obj:
            assert obj["metadata"]["name"]


def wave(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_argocd_orders_the_source_secret_then_the_chart_then_the_apps() -> None:
    (source,) = load("argocd/lifeboat-source.yaml")
    (chart,) = load("argocd/lifeboat.yaml")
    (app,) = load("argocd/app.yaml")
    assert wave(source) < wave(chart) < wave(app)
    # the first Application into the release namespace creates it
    assert (
        source["spec"]["destination"]["namespace"] == chart["spec"]["destination"]["namespace"] == "lifeboat"
    )
    assert "CreateNamespace=true" in source["spec"]["syncPolicy"]["syncOptions"]
    assert source["spec"]["syncPolicy"]["automated"]["prune"] is False
    # the app's namespace is created already opted in
    assert app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"] == {
        "lifeboat.dev/inject": "enabled"
    }
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_argocd_waits_on_application_health_with_a_lua_health_check() -> None:
    (config,) = load("argocd/argocd-cm-health.yaml")
    assert config["metadata"] == {**config["metadata"], "name": "argocd-cm", "namespace": "argocd"}
    lua = config["data"]["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health.status" in lua and lua.strip().endswith("return hs")
    assert 'hs.status = "Progressing"' in lua  # no status yet: not Healthy


def test_the_external_secret_makes_every_required_key_and_never_deletes_the_secret() -> None:
    (external,) = load("argocd/lifeboat-source/external-secret.yaml")
    assert external["metadata"]["namespace"] == "lifeboat"
    assert external["spec"]["target"]["name"] == "lifeboat-source"
    assert external["spec"]["target"]["deletionPolicy"] == "Retain"
    assert set(REQUIRED_SOURCE_KEYS) <= {d["secretKey"] for d in external["spec"]["data"]}


def test_flux_chains_source_secret_lifeboat_and_apps_with_wait() -> None:
    kustomizations = {k["metadata"]["name"]: k for k in load("flux/clusters.yaml")}
    assert set(kustomizations) == {"lifeboat-source", "lifeboat", "apps"}
    assert kustomizations["lifeboat"]["spec"]["dependsOn"] == [{"name": "lifeboat-source"}]
    assert kustomizations["apps"]["spec"]["dependsOn"] == [{"name": "lifeboat"}]
    assert kustomizations["lifeboat-source"]["spec"]["wait"] is True
    assert kustomizations["lifeboat"]["spec"]["wait"] is True
    assert kustomizations["lifeboat-source"]["spec"]["prune"] is False
    assert kustomizations["lifeboat-source"]["spec"]["decryption"]["provider"] == "sops"


def test_flux_creates_the_release_namespace_before_the_helm_release_that_lives_in_it() -> None:
    (kustomize,) = load("flux/lifeboat-source/kustomization.yaml")
    objects = [o for path in kustomize["resources"] for o in load(f"flux/lifeboat-source/{path}")]
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    release = next(o for o in load("flux/lifeboat.yaml") if o["kind"] == "HelmRelease")
    assert release["metadata"]["namespace"] in namespaces
    assert "createNamespace" not in release["spec"].get("install", {})
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["metadata"] == {"name": "lifeboat-source", "namespace": "lifeboat"}
    assert set(REQUIRED_SOURCE_KEYS) <= set(secret["stringData"])
    app = next(o for o in load("flux/app.yaml") if o["kind"] == "HelmRelease")
    assert {"name": "lifeboat", "namespace": "lifeboat"} in app["spec"]["dependsOn"]


@pytest.mark.skipif(HELM is None, reason="helm is installed by `make setup`")
@pytest.mark.parametrize(
    ("path", "values_at"),
    [("argocd/lifeboat.yaml", "spec.source.helm.valuesObject"), ("flux/lifeboat.yaml", "spec.values")],
)
def test_the_chart_renders_with_the_examples_values(path: str, values_at: str, tmp_path: Path) -> None:
    obj = next(o for o in load(path) if o["kind"] in ("Application", "HelmRelease"))
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(dig(obj, values_at)))
    done = helm(
        "template", "lifeboat", str(CHART), "-n", "lifeboat", "--kube-version", "1.33.0", "-f", str(values)
    )
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert "Deployment" in kinds and "PodDisruptionBudget" not in kinds  # one replica: drainable

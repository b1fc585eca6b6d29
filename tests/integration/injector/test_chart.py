"""The Helm chart, rendered with `helm template` and validated against the Kubernetes schema.

helm is built from the Go module proxy by scripts/setup.sh into .venv/bin/helm. The renders must
be byte-identical across runs (ArgoCD shows no perpetual diff), every object must be valid for
Kubernetes, and the injector's environment must be accepted by its own settings class.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from injector.config import InjectorSettings

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "chart"
HELM = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
KUBE_VERSION = "1.33.0"
pytestmark = pytest.mark.skipif(HELM is None, reason="helm is installed by `make setup`")

VALUE_SETS = {
    "defaults": [],
    "cert-manager": ["--set", "tls.mode=certManager", "--set", "metrics.serviceMonitor.enabled=true"],
    "own-secret": [
        "--set",
        "tls.mode=secret",
        "--set",
        "tls.secretName=my-tls",
        "--set",
        "tls.caBundle=Zm9v",
    ],
    "one-replica-no-pdb": ["--set", "replicaCount=1", "--set", "podDisruptionBudget.enabled=false"],
}
CRDS = {"ServiceMonitor", "Certificate", "Issuer"}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def render(*extra: str) -> str:
    result = helm(
        "template", "lifeboat", str(CHART), "--namespace", "lifeboat", "--kube-version", KUBE_VERSION, *extra
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_helm_lint_passes() -> None:
    result = helm("lint", str(CHART), "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_valid_for_kubernetes(name: str) -> None:
    objects = docs(render(*VALUE_SETS[name]))
    assert objects
    for obj in objects:
        if obj["kind"] in CRDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {str(exc)[:500]}")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendering_is_deterministic(name: str) -> None:
    assert render(*VALUE_SETS[name]) == render(*VALUE_SETS[name])


def test_the_webhook_fails_closed_only_for_opted_in_namespaces() -> None:
    objects = docs(render())
    (hook,) = by_kind(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] <= 10
    assert hook["namespaceSelector"]["matchLabels"] == {"lifeboat.dev/inject": "enabled"}
    (excluded,) = hook["namespaceSelector"]["matchExpressions"]
    assert excluded["operator"] == "NotIn" and {"lifeboat", "kube-system"} <= set(excluded["values"])
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert "caBundle" not in hook["clientConfig"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"


def test_the_deployment_is_highly_available_and_hardened() -> None:
    objects = docs(render())
    deployment = by_kind(objects, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["affinity"]["podAntiAffinity"]
    assert by_kind(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    (container,) = spec["containers"]
    assert container["args"] == ["injector", "serve"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_injector_environment_is_accepted_by_its_settings(name: str, monkeypatch) -> None:
    container = by_kind(docs(render(*VALUE_SETS[name])), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    known = {f"LIFEBOAT_INJECTOR_{field.upper()}" for field in InjectorSettings.model_fields}
    for env in container["env"]:
        assert env["name"] in known, env["name"]
        monkeypatch.setenv(env["name"], env.get("value", "lifeboat"))
    settings = InjectorSettings()
    assert settings.service_name == "lifeboat-injector"
    assert settings.tls_mode == ("bootstrap" if name not in ("cert-manager", "own-secret") else "files")
    assert settings.excluded_namespaces == ("kube-system", "kube-public", "kube-node-lease")


def test_rbac_limits_secret_and_webhook_writes_by_name() -> None:
    objects = docs(render())
    cluster_rules = by_kind(objects, "ClusterRole")["rules"]
    for rule in cluster_rules:
        if "secrets" in rule["resources"] and set(rule["verbs"]) - {"create"}:
            assert rule["resourceNames"] == ["lifeboat-credentials"]
        if "mutatingwebhookconfigurations" in rule["resources"]:
            assert rule["resourceNames"] == ["lifeboat-injector"]
        assert "*" not in rule["verbs"]
        if "secrets" in rule["resources"]:
            assert not {"list", "watch"} & set(rule["verbs"]), "no Secret may be listed cluster-wide"
    for rule in by_kind(objects, "Role")["rules"]:
        assert rule["resourceNames"]


def test_the_tls_placeholder_secret_has_no_data_and_survives_uninstall() -> None:
    secret = by_kind(docs(render()), "Secret")
    assert "data" not in secret and "stringData" not in secret
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_cert_manager_mode_asks_for_ca_injection_and_mounts_the_certificate() -> None:
    objects = docs(render(*VALUE_SETS["cert-manager"]))
    config = by_kind(objects, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "lifeboat/lifeboat-injector"
    certificate = by_kind(objects, "Certificate")
    assert "lifeboat-injector.lifeboat.svc" in certificate["spec"]["dnsNames"]
    spec = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "lifeboat-injector-tls"}} in spec["volumes"]
    assert not [o for o in objects if o["kind"] == "Secret"]


@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "tls.mode=magic"],
        ["--set", "replicaCount=0"],
        ["--set", "inject.resticCacheSizeLimit=lots"],
        ["--set", "tls.mode=secret"],
        ["--set", "webhook.failurePolicy=Sometimes"],
    ],
)
def test_values_outside_the_schema_are_refused(bad: list[str]) -> None:
    result = helm("template", "lifeboat", str(CHART), "--kube-version", KUBE_VERSION, *bad)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_no_service_link_variables_reach_the_injector(name: str) -> None:
    # The Service "lifeboat-injector" would otherwise inject LIFEBOAT_INJECTOR_PORT=tcp://...,
    # which collides with the settings prefix: the injector crash-looped on a real cluster (e2e).
    spec = by_kind(docs(render(*VALUE_SETS[name])), "Deployment")["spec"]["template"]["spec"]
    assert spec["enableServiceLinks"] is False


RECOMMENDED_LABELS = ("name", "instance", "version", "component", "part-of", "managed-by")
EVERYTHING_ON = [
    *("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true"),
    *("--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.dashboard.enabled=true"),
]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_and_the_injector_pod_carry_the_recommended_labels(name: str) -> None:
    objects = docs(render(*VALUE_SETS[name], *EVERYTHING_ON))
    deployment = by_kind(objects, "Deployment")
    for meta in [o["metadata"] for o in objects] + [deployment["spec"]["template"]["metadata"]]:
        labels = meta.get("labels") or {}
        missing = [k for k in RECOMMENDED_LABELS if f"app.kubernetes.io/{k}" not in labels]
        assert not missing, f"{name}: {meta.get('name')} lacks app.kubernetes.io/{missing}"
        assert labels["app.kubernetes.io/part-of"] == "lifeboat"
        assert labels["app.kubernetes.io/instance"] == "lifeboat"


def test_the_log_levels_reach_the_injector_and_are_validated(monkeypatch) -> None:
    objects = docs(render("--set", "logLevel=debug", "--set", "inject.logLevel=warning"))
    env = {
        e["name"]: e.get("value")
        for e in by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["LIFEBOAT_INJECTOR_LOG_LEVEL"] == "debug"
    assert env["LIFEBOAT_INJECTOR_SIDECAR_LOG_LEVEL"] == "warning"
    assert (
        helm(
            "template", "lifeboat", str(CHART), "--kube-version", KUBE_VERSION, "--set", "logLevel=loud"
        ).returncode
        != 0
    )


def test_events_may_be_created_but_not_changed_by_the_injector() -> None:
    role = by_kind(docs(render()), "ClusterRole")
    (events,) = [r for r in role["rules"] if "events" in r["resources"]]
    assert events["verbs"] == ["create"]  # one Event per outcome: never patched, so no patch right

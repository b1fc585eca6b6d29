"""The chart as a release publishes it and a homelab installs it (issue 14 items 1, 9, 10).

One version (pyproject.toml's) names the image tag, the chart's version and its appVersion; the
default image is one this project can publish; the chart's pull secrets reach injected pods; a
one-node cluster can be drained; the values the docs describe are the values the schema takes.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import yaml

from injector.config import InjectorSettings
from tests.integration.injector.test_chart import CHART, ROOT, by_kind, docs, helm, pytestmark, render

__all__ = ["pytestmark"]


def injector_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (container,) = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_the_chart_version_app_version_and_image_tag_are_the_projects_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == version, "run `make chart-version`"
    assert chart["appVersion"] == version, "run `make chart-version`"
    env = injector_env(docs(render()))
    assert env["LIFEBOAT_INJECTOR_IMAGE"] == f"ghcr.io/lifeboat-dev/lifeboat:{version}"


def test_the_image_repository_is_configurable() -> None:
    env = injector_env(
        docs(render("--set", "image.repository=registry.home.arpa/lifeboat", "--set", "image.tag=dev"))
    )
    assert env["LIFEBOAT_INJECTOR_IMAGE"] == "registry.home.arpa/lifeboat:dev"


def test_the_charts_pull_secrets_go_to_the_injector_pod_and_to_injected_pods() -> None:
    objects = docs(
        render("--set", "imagePullSecrets[0].name=regcred", "--set", "imagePullSecrets[1].name=mirror")
    )
    spec = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    env = injector_env(objects)
    assert json.loads(env["LIFEBOAT_INJECTOR_IMAGE_PULL_SECRETS"]) == ["regcred", "mirror"]
    settings = InjectorSettings(image_pull_secrets=json.loads(env["LIFEBOAT_INJECTOR_IMAGE_PULL_SECRETS"]))
    assert settings.image_pull_secrets == ("regcred", "mirror")


def test_one_replica_renders_no_disruption_budget_so_a_one_node_drain_never_hangs() -> None:
    objects = docs(render("--set", "replicaCount=1"))
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_two_replicas_may_be_drained_one_at_a_time() -> None:
    budget = by_kind(docs(render()), "PodDisruptionBudget")["spec"]
    assert budget == {"maxUnavailable": 1, "selector": budget["selector"]}


def test_the_default_grace_period_is_two_and_a_half_minutes_and_the_cache_has_no_limit() -> None:
    env = injector_env(docs(render()))
    assert env["LIFEBOAT_INJECTOR_FINAL_BACKUP_TIMEOUT_SECONDS"] == "120"  # grace: 120 + 30 s
    assert env["LIFEBOAT_INJECTOR_RESTIC_CACHE_SIZE_LIMIT"] == ""
    assert InjectorSettings(restic_cache_size_limit="").restic_cache_size_limit == ""


def test_metrics_port_0_is_accepted_as_documented() -> None:
    env = injector_env(docs(render("--set", "inject.metricsPort=0")))
    assert InjectorSettings(metrics_port=int(env["LIFEBOAT_INJECTOR_METRICS_PORT"])).metrics_port == 0


def test_a_pem_ca_bundle_is_refused_naming_the_field_and_base64_is_taken() -> None:
    base = ["template", "lifeboat", str(CHART), "-n", "lifeboat", "--kube-version", "1.33.0"]
    own = ["--set", "tls.mode=secret", "--set", "tls.secretName=my-tls"]
    refused = helm(*base, *own, "--set", "tls.caBundle=-----BEGIN CERTIFICATE-----")
    assert refused.returncode != 0
    assert "/tls/caBundle" in refused.stderr
    assert helm(*base, *own, "--set", "tls.caBundle=LS0tLS1CRUdJTg==").returncode == 0

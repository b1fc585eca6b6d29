"""`make kind-e2e` checked as far as a machine without a usable Docker allows (issue 12 item 8).

The target itself (cluster/kind-e2e.sh) needs Docker and kind's node image. What is checked here:
kind (built with Go by the script, cached by version) accepts kind/cluster.yaml with its strict
decoder; the chart renders with kind/values.yaml into objects valid for Kubernetes, and points the
injector and the injected containers at exactly the image the script builds and `kind load`s, never
pulled; the script parses and wires the e2e suite's hooks under the names the suite reads.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.integration.injector.test_chart import CRDS, HELM, KUBE_VERSION, docs

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "cluster" / "kind-e2e.sh"
CONFIG = ROOT / "kind" / "cluster.yaml"
VALUES = ROOT / "kind" / "values.yaml"


def _script_value(name: str) -> str:
    match = re.search(rf'^{name}="(?:\$\{{{name}:-)?([^"}}]+)\}}?"', SCRIPT.read_text(), re.M)
    assert match, f"{name} not found in {SCRIPT}"
    return match.group(1)


KIND_VERSION = _script_value("KIND_VERSION")
KIND = (
    Path(os.environ.get("LIFEBOAT_CACHE", Path.home() / ".cache/lifeboat")) / f"kind-{KIND_VERSION}" / "kind"
)


def _kind_create(config: Path) -> str:
    """`kind create cluster` with no Docker to talk to: kind decodes and checks the config first."""
    result = subprocess.run(
        [str(KIND), "create", "cluster", "--config", str(config), "--name", "lifeboat-config-check"],
        env={
            **os.environ,
            "DOCKER_HOST": "unix:///nonexistent/docker.sock",
            "KIND_EXPERIMENTAL_PROVIDER": "docker",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_the_kind_config_is_one_node_of_the_v1alpha4_schema() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [n["role"] for n in config["nodes"]] == ["control-plane"]
    assert config["name"] == "lifeboat"


@pytest.mark.skipif(not KIND.exists(), reason=f"kind {KIND_VERSION} is built by cluster/kind-e2e.sh up")
def test_kind_accepts_the_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    accepted = _kind_create(CONFIG)
    assert "unable to decode config" not in accepted and "invalid" not in accepted.lower(), accepted
    assert "docker" in accepted.lower(), accepted  # it got past the config, to the provider
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        CONFIG.read_text().replace("role: control-plane", "role: control-plane\n    extraField: 1")
    )
    assert "unable to decode config" in _kind_create(broken)


@pytest.mark.skipif(HELM is None, reason="helm is installed by `make setup`")
def test_the_chart_renders_for_kind_and_uses_the_loaded_image_without_pulling() -> None:
    assert HELM is not None
    rendered = subprocess.run(
        [
            HELM,
            "template",
            "lifeboat",
            str(ROOT / "chart"),
            "-n",
            "lifeboat",
            "--kube-version",
            KUBE_VERSION,
            "-f",
            str(VALUES),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = docs(rendered.stdout)
    for obj in objects:
        if obj["kind"] not in CRDS:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image = _script_value("IMAGE")
    assert (container["image"], container["imagePullPolicy"]) == (image, "Never")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LIFEBOAT_INJECTOR_IMAGE"] == image
    assert env["LIFEBOAT_INJECTOR_IMAGE_PULL_POLICY"] == "Never"


def test_the_script_parses_and_wires_the_suites_hooks() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    text = SCRIPT.read_text()
    suite = (ROOT / "tests/e2e/test_scenarios.py").read_text() + (ROOT / "tests/e2e/workloads.py").read_text()
    for hook in (
        "LIFEBOAT_E2E_S3_STOP",
        "LIFEBOAT_E2E_S3_START",
        "LIFEBOAT_E2E_REBUILD",
        "LIFEBOAT_E2E_PULL_POLICY",
    ):
        assert f"{hook}=" in text and hook in suite, hook
    assert 'go install "sigs.k8s.io/kind@v$KIND_VERSION"' in text
    assert "kind-e2e: setup\n\tcluster/kind-e2e.sh all" in (ROOT / "Makefile").read_text()

"""The injected containers' memory: defaults sized from restic's measured peaks, and per-PVC
overrides by annotation (docs/RELIABILITY.md "Memory").

The real admission code turns a pod into a JSON Patch; the patched pod is checked as Kubernetes
would see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from injector.config import InjectorSettings
from injector.plan import memory_bytes
from tests.unit.injector.test_install_defaults import admit, injected, lifeboat_containers, pod

CHART_VALUES = Path(__file__).resolve().parents[3] / "chart" / "values.yaml"
MiB = 1024 * 1024


@pytest.fixture
def base() -> InjectorSettings:
    return InjectorSettings(image="registry.example.net/lifeboat:0.1.0", namespace="lifeboat")


def test_the_chart_and_the_injector_default_to_the_same_memory() -> None:
    resources = yaml.safe_load(CHART_VALUES.read_text())["inject"]["resources"]
    defaults = InjectorSettings(image="lifeboat:0.1.0")
    assert resources["memoryRequest"] == defaults.memory_request
    assert resources["memoryLimit"] == defaults.memory_limit


def test_the_default_limit_holds_a_100000_file_restore_with_headroom_and_1000000_small_files() -> None:
    # measured peaks (docs/BENCHMARKS.md): restic restore 289 MiB + `lifeboat restore` ~50 MiB
    defaults = InjectorSettings(image="lifeboat:0.1.0")
    assert memory_bytes(defaults.memory_limit) >= 2 * (289 + 50) * MiB
    # 1,000,000 files: restic 712 MiB, Python ~50 MiB, the executables' pages ~45 MiB
    assert memory_bytes(defaults.memory_limit) >= (712 + 50 + 45) * MiB * 1.2
    # the request covers a 10,000-file volume's restore: restic 82 MiB + `lifeboat restore` ~50 MiB
    assert memory_bytes(defaults.memory_request) >= (82 + 50) * MiB * 0.95


def test_a_pvc_memory_request_annotation_sets_the_injected_containers_request(base: InjectorSettings) -> None:
    case = pod(
        {
            "small": {},
            "photos": {"lifeboat.dev/memory-request": "384Mi"},
            "db": {"lifeboat.dev/memory-request": "256Mi"},
        }
    )
    for container in lifeboat_containers(injected(case, base)):
        assert container["resources"]["requests"]["memory"] == "384Mi"  # the largest of the pod's PVCs
        assert container["resources"]["limits"] == {"memory": base.memory_limit}


def test_an_annotated_request_above_the_charts_limit_raises_the_limit_to_it(base: InjectorSettings) -> None:
    case = pod({"data": {"lifeboat.dev/memory-request": "3Gi"}})
    for container in lifeboat_containers(injected(case, base)):
        assert container["resources"]["requests"]["memory"] == "3Gi"
        assert container["resources"]["limits"] == {"memory": "3Gi"}


def test_request_and_limit_annotations_apply_together(base: InjectorSettings) -> None:
    case = pod({"data": {"lifeboat.dev/memory-request": "512Mi", "lifeboat.dev/memory-limit": "2Gi"}})
    for container in lifeboat_containers(injected(case, base)):
        assert container["resources"]["requests"]["memory"] == "512Mi"
        assert container["resources"]["limits"] == {"memory": "2Gi"}


def test_a_request_above_the_same_pvcs_limit_denies_the_pod_naming_both_and_the_fix(
    base: InjectorSettings,
) -> None:
    response = admit(
        pod({"data": {"lifeboat.dev/memory-request": "2Gi", "lifeboat.dev/memory-limit": "1Gi"}}), base
    )
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "PVC data: annotation lifeboat.dev/memory-request" in message
    assert "lifeboat.dev/memory-limit" in message
    assert "lower the request or raise the limit" in message


@pytest.mark.parametrize(("value", "named"), [("plenty", "not a memory quantity"), ("8Mi", "below 32Mi")])
def test_a_bad_memory_request_denies_the_pod_naming_the_annotation_and_the_fix(
    base: InjectorSettings, value: str, named: str
) -> None:
    response = admit(pod({"data": {"lifeboat.dev/memory-request": value}}), base)
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "PVC data: annotation lifeboat.dev/memory-request" in message
    assert named in message and "256Mi" in message


def test_an_empty_memory_request_annotation_means_the_charts_default(base: InjectorSettings) -> None:
    for container in lifeboat_containers(injected(pod({"data": {"lifeboat.dev/memory-request": " "}}), base)):
        assert container["resources"]["requests"]["memory"] == base.memory_request

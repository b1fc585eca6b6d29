"""Shared fixtures for the injector tests: settings, realistic pods, AdmissionReviews, certificates."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from injector.config import InjectorSettings
from injector.decision import PvcInfo, PvcUnavailable
from injector.tls import Bundle, renew

PODS_DIR = Path(__file__).parent / "pods"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings() -> InjectorSettings:
    return InjectorSettings(image="docker.io/library/lifeboat:dev", namespace="lifeboat")


def load_pod_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, yaml.safe_load(p.read_text())) for p in sorted(PODS_DIR.glob("*.yaml"))]


def pvc_table(case: dict[str, Any]) -> dict[str, PvcInfo]:
    return {
        name: PvcInfo(name, spec.get("uid", ""), spec.get("labels") or {}, spec.get("annotations") or {})
        for name, spec in (case.get("pvcs") or {}).items()
    }


def table_lookup(table: dict[str, PvcInfo]) -> Callable[[str, str], PvcInfo | PvcUnavailable]:
    def lookup(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        return table.get(name) or PvcUnavailable(name, "it does not exist")

    return lookup


def admission_review(
    pod: dict[str, Any], uid: str = "7f0c-uid", operation: str = "CREATE", namespace: str | None = None
) -> dict[str, Any]:
    ns = namespace or pod.get("metadata", {}).get("namespace", "default")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def decode_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(base64.b64decode(response["patch"]))


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    names = [*InjectorSettings(namespace="lifeboat").service_dns_names, "localhost"]
    return renew(None, names, dt.datetime.now(dt.UTC), 30, 1)

"""Helpers for the scenario tests: the app's manifests, and reading what its pods said."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.e2e.conftest import eventually

APP_SOURCE = (Path(__file__).parent / "app.py").read_text()
APP_UID = 1000


def image() -> str:
    return os.environ.get("LIFEBOAT_E2E_APP_IMAGE", "docker.io/library/lifeboat:dev")


def pull_policy() -> str:
    return os.environ.get("LIFEBOAT_E2E_PULL_POLICY", "IfNotPresent")


def apply_app(
    api: Any, namespace: str, name: str, backup: str | None = "hourly", mode: str = "files"
) -> None:
    """ConfigMap with the app, a PVC (labelled ``backup: <backup>``) and a one-replica Deployment."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "e2e-app"}, "data": {"app.py": APP_SOURCE}}
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    labels = {"backup": backup} if backup else {}
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
        },
    )
    apps.create_namespaced_deployment(namespace, deployment(name, mode))


def pod_template(name: str, claim: str, mode: str = "files") -> dict:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 60,
            "containers": [
                {
                    "name": "app",
                    "image": image(),
                    "imagePullPolicy": pull_policy(),
                    "command": ["python3", "/app/app.py"],
                    "env": [{"name": "APP_MODE", "value": mode}],
                    "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID},
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "app", "mountPath": "/app"},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                {"name": "app", "configMap": {"name": "e2e-app"}},
            ],
        },
    }


def deployment(name: str, mode: str = "files") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, name, mode),
        },
    }


def running_pod(core: Any, namespace: str, name: str, limit: float = 180) -> Any:
    def probe() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector=f"app={name}").items
        live = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return live[0] if live else None

    return eventually(f"a Running pod of {namespace}/{name}", probe, limit)


def events(core: Any, namespace: str, pod: str, container: str) -> list[dict]:
    text = core.read_namespaced_pod_log(pod, namespace, container=container)
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def app_start(core: Any, namespace: str, pod: str) -> dict:
    def probe() -> dict | None:
        return next((e for e in events(core, namespace, pod, "app") if e.get("event") == "start"), None)

    return eventually(f"the app's start line in {pod}", probe)


def files_written(core: Any, namespace: str, pod: str) -> int:
    wrote = [e["files"] for e in events(core, namespace, pod, "app") if e.get("event") == "wrote"]
    return max(wrote, default=0)


def backup_finished(core: Any, namespace: str, pod: str, limit: float = 180) -> dict:
    def probe() -> dict | None:
        done = [
            e for e in events(core, namespace, pod, "lifeboat-backup") if e.get("event") == "backup.finished"
        ]
        return done[-1] if done and done[-1].get("snapshot") else None

    return eventually(f"a backup.finished with a snapshot from {pod}", probe, limit)


def restore_message(core: Any, namespace: str, pod: str) -> str:
    p = core.read_namespaced_pod(pod, namespace)
    for status in p.status.init_container_statuses or []:
        if status.name == "lifeboat-restore" and status.state.terminated:
            return (status.state.terminated.message or "").strip()
    return ""

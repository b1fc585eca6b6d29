"""`lifeboat injector serve` end to end, against an in-memory stand-in for the Kubernetes API.

The real process is started with a kubeconfig pointing at tests/support/fake_apiserver.py. It
must bootstrap its TLS into the Secret and the webhook's caBundle, serve admission over that TLS
from its watch cache, mirror credentials into opted-in namespaces only, report the pod that was
admitted before it existed, never log a secret, and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from injector.credentials import namespace_password
from tests.support.fake_apiserver import FakeApi
from tests.support.injector_fixtures import admission_review, decode_patch

SECRETS = {
    "LIFEBOAT_S3_ENDPOINT": "https://s3.example.com",
    "LIFEBOAT_S3_BUCKET": "backups",
    "LIFEBOAT_S3_PREFIX": "cluster-a",
    "AWS_ACCESS_KEY_ID": "AKIAFAKEEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "s3-secret-value-never-logged",
    "RESTIC_MASTER_PASSWORD": "master-password-never-logged",
}
SERVICE_HOST = "lifeboat-injector.lifeboat.svc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def seed(api: FakeApi) -> None:
    for name, labels in {"lifeboat": {}, "apps": {"lifeboat.dev/inject": "enabled"}, "other": {}}.items():
        api.put(
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )
    api.put(
        "persistentvolumeclaims",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "apps", "labels": {"backup": "daily"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    api.put(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "lifeboat-injector-tls", "namespace": "lifeboat"},
        },
    )
    api.put(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "lifeboat-source", "namespace": "lifeboat"},
            "data": {k: b64(v) for k, v in SECRETS.items()},
        },
    )
    api.put(
        "mutatingwebhookconfigurations",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "lifeboat-injector"},
            "webhooks": [
                {
                    "name": "inject.lifeboat.dev",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "clientConfig": {
                        "service": {"name": "lifeboat-injector", "namespace": "lifeboat", "path": "/mutate"}
                    },
                }
            ],
        },
    )
    api.put(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "legacy", "namespace": "apps"},
            "spec": {
                "containers": [{"name": "app", "image": "app"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            },
            "status": {"phase": "Running"},
        },
    )


class Injector:
    def __init__(self, api: FakeApi, tmp: Path) -> None:
        (tmp / "kubeconfig").write_text(api.kubeconfig())
        self.port, self.plain_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(tmp / "kubeconfig"),
            "TMPDIR": str(tmp),
            "LIFEBOAT_INJECTOR_LISTEN_HOST": "127.0.0.1",
            "LIFEBOAT_INJECTOR_PORT": str(self.port),
            "LIFEBOAT_INJECTOR_PLAIN_PORT": str(self.plain_port),
            "LIFEBOAT_INJECTOR_NAMESPACE": "lifeboat",
            "LIFEBOAT_INJECTOR_RESYNC_SECONDS": "0.5",
            "LIFEBOAT_INJECTOR_DRAIN_SECONDS": "0",
            "LIFEBOAT_INJECTOR_TLS_RELOAD_SECONDS": "0.2",
        }
        self.log = tmp / "injector.log"
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from injector.cli import main; sys.exit(main(['serve']))"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.plain_port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return 0
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"injector exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            if self.get("/readyz") == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"injector never became ready: {self.log.read_text()[-2000:]}")

    def mutate(self, ca_pem: bytes, review: dict[str, Any]) -> dict[str, Any]:
        context = ssl.create_default_context(cadata=ca_pem.decode())
        body = json.dumps(review).encode()
        request = (
            b"POST /mutate?timeout=5s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (SERVICE_HOST.encode(), len(body))
        ) + body
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        with context.wrap_socket(raw, server_hostname=SERVICE_HOST) as tls:
            tls.sendall(request)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return json.loads(payload)["response"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[FakeApi, Injector]]:
    api = FakeApi(minor="33").start()
    seed(api)
    injector = Injector(api, tmp_path)
    try:
        injector.wait_ready()
        yield api, injector
    finally:
        if injector.process.poll() is None:
            injector.process.kill()
            injector.process.wait(5)
        api.stop()


def wait_for(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("condition not reached in time")


def test_the_injector_bootstraps_tls_serves_admission_mirrors_credentials_and_reports(running) -> None:
    api, injector = running
    tls = api.get("secrets", "lifeboat", "lifeboat-injector-tls")
    assert tls and set(tls["data"]) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    ca = base64.b64decode(tls["data"]["ca.crt"])
    hook = api.get("mutatingwebhookconfigurations", "", "lifeboat-injector")["webhooks"][0]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "apps"},
        "spec": {
            "containers": [{"name": "web", "image": "nginx"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    response = injector.mutate(ca, admission_review(pod, uid="e2e-1"))
    assert response["uid"] == "e2e-1" and response["allowed"] is True
    (init,) = [op for op in decode_patch(response) if op["path"] == "/spec/initContainers"]
    assert [c["name"] for c in init["value"]] == ["lifeboat-restore", "lifeboat-backup"]  # 1.33: native

    missing = json.loads(json.dumps(pod))
    missing["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "not-there"
    denied = injector.mutate(ca, admission_review(missing, uid="e2e-2"))
    assert denied["allowed"] is False and "apps/not-there" in denied["status"]["message"]

    mirror = wait_for(lambda: api.get("secrets", "apps", "lifeboat-credentials"))
    assert base64.b64decode(mirror["data"]["RESTIC_PASSWORD"]).decode() == namespace_password(
        SECRETS["RESTIC_MASTER_PASSWORD"], "apps"
    )
    labels = mirror["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "lifeboat"  # what marks it as Lifeboat's to update
    assert (labels["app.kubernetes.io/part-of"], labels["app.kubernetes.io/component"]) == (
        "lifeboat",
        "credentials",
    )
    assert api.get("secrets", "other", "lifeboat-credentials") is None

    (event,) = wait_for(lambda: api.of_kind("events", "apps"))
    assert event["reason"] == "LifeboatNotInjected" and event["involvedObject"]["name"] == "legacy"

    # Opting out removes the mirror.
    api.put(
        "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": {}}}
    )
    wait_for(lambda: api.get("secrets", "apps", "lifeboat-credentials") is None)

    # No write ever went outside the injector's namespace, opted-in namespaces and its own webhook.
    writes = [(verb, path) for verb, path in api.requests if verb != "GET"]
    for _, path in writes:
        assert (
            "/namespaces/lifeboat/secrets/lifeboat-injector-tls" in path
            or "/namespaces/apps/" in path
            or "mutatingwebhookconfigurations/lifeboat-injector" in path
        ), path

    injector.process.send_signal(signal.SIGTERM)
    assert injector.process.wait(15) == 0

    log = injector.log.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {
        "injector.starting",
        "tls.issued",
        "admission.injected",
        "admission.denied",
        "credentials.created",
        "controller.uninjected_pod",
        "injector.stopped",
    } <= events
    for secret in (*SECRETS.values(), namespace_password(SECRETS["RESTIC_MASTER_PASSWORD"], "apps")):
        if len(secret) > 8:
            assert secret not in log
    assert base64.b64decode(tls["data"]["ca.key"]).decode() not in log

"""The HTTPS server over a real loopback socket with a real TLS client.

Bad requests (wrong content type, garbage JSON, oversize bodies, missing uid, plain HTTP on the
TLS port) must get well-formed replies and leave the server serving; a rotated certificate must
be served to new connections without a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from injector.cache import CacheMiss
from injector.config import InjectorSettings
from injector.decision import PvcInfo, PvcUnavailable
from injector.metrics import Metrics
from injector.server import Lookups, WebhookServer
from injector.tls import Bundle, ReloadingContext, renew, write_files
from lifeboat.logs import event
from tests.support.injector_fixtures import (
    admission_review,
    decode_patch,
    load_pod_cases,
    pvc_table,
    table_lookup,
)

CASE = dict(load_pod_cases())["01-deployment-single-pvc"]


class Running:
    """A WebhookServer on its own event loop thread, bound to loopback port 0."""

    def __init__(self, server: WebhookServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port, self.plain_port = asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def tls_dir(tmp_path: Path, bundle: Bundle) -> Path:
    write_files(bundle, tmp_path / "tls")
    return tmp_path / "tls"


@pytest.fixture
def ready_flag() -> dict[str, bool]:
    return {"ready": True}


@pytest.fixture
def running(tls_dir: Path, ready_flag: dict[str, bool]) -> Iterator[Running]:
    settings = InjectorSettings(
        listen_host="127.0.0.1", port=0, plain_port=0, max_request_bytes=64 * 1024, tls_reload_seconds=0.05
    )
    table = pvc_table(CASE)

    def fast(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        if name == "created-just-now":
            raise CacheMiss(name)
        return table_lookup(table)(namespace, name)

    def slow(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        if name == "created-just-now":
            return PvcInfo(name, "uid-new", {"backup": "daily"})
        return table_lookup(table)(namespace, name)

    server = WebhookServer(
        settings,
        ReloadingContext(tls_dir / "tls.crt", tls_dir / "tls.key"),
        Lookups(fast=fast, slow=slow, namespace_labels=lambda ns: None, miss=CacheMiss),
        Metrics(),
        native_sidecars=lambda: True,
        ready=lambda: ready_flag["ready"],
    )
    run = Running(server)
    yield run
    run.stop()


def client_context(bundle: Bundle) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=bundle.ca_cert.decode())
    return context


def connect(running: Running, bundle: Bundle) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("localhost", running.port, context=client_context(bundle), timeout=10)


def post(
    conn: http.client.HTTPConnection, body: bytes, content_type: str = "application/json"
) -> tuple[int, Any]:
    conn.request("POST", "/mutate?timeout=5s", body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    payload = response.read()
    return response.status, json.loads(payload)


def test_a_pod_mounting_a_labelled_pvc_gets_restore_and_sidecar_over_https(running, bundle) -> None:
    status, review = post(
        connect(running, bundle), json.dumps(admission_review(CASE["pod"], uid="abc")).encode()
    )
    assert status == 200
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert review["response"]["uid"] == "abc" and review["response"]["allowed"] is True
    assert review["response"]["patchType"] == "JSONPatch"
    names = [
        op["value"][0]["name"]
        for op in decode_patch(review["response"])
        if op["path"] == "/spec/initContainers"
    ]
    assert names == ["lifeboat-restore"]


def test_one_connection_serves_many_reviews(running, bundle) -> None:
    conn = connect(running, bundle)
    for i in range(20):
        status, review = post(conn, json.dumps(admission_review(CASE["pod"], uid=f"u{i}")).encode())
        assert status == 200 and review["response"]["uid"] == f"u{i}"


def test_a_pvc_missing_from_the_cache_is_fetched_before_answering(running, bundle) -> None:
    pod = json.loads(json.dumps(CASE["pod"]))
    pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "created-just-now"
    status, review = post(connect(running, bundle), json.dumps(admission_review(pod)).encode())
    assert status == 200 and review["response"]["allowed"] is True and "patch" in review["response"]


def test_a_pvc_that_cannot_be_read_denies_the_pod_with_a_clear_message(running, bundle) -> None:
    pod = json.loads(json.dumps(CASE["pod"]))
    pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "nope"
    status, review = post(connect(running, bundle), json.dumps(admission_review(pod)).encode())
    assert status == 200 and review["response"]["allowed"] is False
    assert review["response"]["status"]["code"] == 403
    assert "shop/nope" in review["response"]["status"]["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"{}", "text/plain", 415, "Content-Type must be application/json"),
        (b"{not json", "application/json", 400, "not JSON"),
        (b"[1,2]", "application/json", 400, "JSON object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}',
            "application/json",
            400,
            "v1",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}',
            "application/json",
            400,
            "uid",
        ),
        (b"\xff\xfe\x00", "application/json", 400, "not JSON"),
    ],
)
def test_bad_requests_get_a_json_error_naming_the_problem(
    running, bundle, body, content_type, status, fragment
):
    conn = connect(running, bundle)
    got, payload = post(conn, body, content_type)
    assert got == status
    assert fragment in payload["error"]
    # The connection and the server are still good.
    ok, _ = post(conn, json.dumps(admission_review(CASE["pod"])).encode())
    assert ok == 200


def test_a_request_with_a_uid_but_no_object_is_denied_not_admitted(running, bundle) -> None:
    review = admission_review(CASE["pod"], uid="u-1")
    del review["request"]["object"]
    status, reply = post(connect(running, bundle), json.dumps(review).encode())
    assert status == 200
    assert reply["response"] == {
        "uid": "u-1",
        "allowed": False,
        "status": {"code": 400, "message": reply["response"]["status"]["message"]},
    }
    assert "request.object" in reply["response"]["status"]["message"]


def test_an_oversize_body_is_refused_before_it_is_read(running, bundle) -> None:
    conn = connect(running, bundle)
    conn.putrequest("POST", "/mutate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(10 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert "exceeds" in json.loads(response.read())["error"]


def test_chunked_bodies_and_bad_lengths_are_refused(running, bundle) -> None:
    conn = connect(running, bundle)
    conn.putrequest("POST", "/mutate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn = connect(running, bundle)
    conn.putrequest("POST", "/mutate")
    conn.putheader("Content-Length", "-4")
    conn.endheaders()
    assert conn.getresponse().status == 400


def test_health_readiness_and_metrics_endpoints(running, bundle, ready_flag) -> None:
    conn = connect(running, bundle)
    post(conn, json.dumps(admission_review(CASE["pod"])).encode())
    for path, status in (("/healthz", 200), ("/readyz", 200), ("/nope", 404)):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == status, path
    conn.request("GET", "/mutate")
    response = conn.getresponse()
    response.read()
    assert response.status == 405
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    assert 'lifeboat_admission_requests_total{outcome="injected"} 1.0' in text
    assert "lifeboat_admission_duration_seconds_bucket" in text
    ready_flag["ready"] = False
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    response.read()
    assert response.status == 503


def test_the_plain_port_serves_probes_but_never_admission(running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running.plain_port, timeout=5)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    conn.request("POST", "/mutate", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status == 404


def test_plain_http_and_garbage_on_the_tls_port_do_not_hurt_the_server(running, bundle) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.recv(100)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05garbage")
    conn = connect(running, bundle)
    conn.sock = None
    wrapped = client_context(bundle).wrap_socket(
        socket.create_connection(("127.0.0.1", running.port), timeout=5), server_hostname="localhost"
    )
    wrapped.sendall(b"NONSENSE\r\n\r\n")
    assert b"400" in wrapped.recv(200)
    wrapped.close()
    status, _ = post(connect(running, bundle), json.dumps(admission_review(CASE["pod"])).encode())
    assert status == 200


def test_a_rotated_certificate_is_served_to_new_connections_without_restart(running, bundle, tls_dir) -> None:
    before = connect(running, bundle)
    before.request("GET", "/healthz")
    before.getresponse().read()
    old_serial = ssl_serial(before)
    rotated = renew(bundle, ["localhost"], dt.datetime.now(dt.UTC), 30, 1)
    assert rotated.ca_cert == bundle.ca_cert
    write_files(rotated, tls_dir)
    for _ in range(100):
        conn = connect(running, bundle)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        if ssl_serial(conn) != old_serial:
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("the rotated certificate was never served")
    event_logger_still_works()


def ssl_serial(conn: http.client.HTTPSConnection) -> bytes:
    assert isinstance(conn.sock, ssl.SSLSocket)
    der = conn.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def event_logger_still_works() -> None:
    import logging

    event(logging.getLogger("test"), "test.done")


def test_a_half_written_key_pair_keeps_the_old_certificate(tls_dir, bundle) -> None:
    context = ReloadingContext(tls_dir / "tls.crt", tls_dir / "tls.key")
    other = renew(None, ["localhost"], dt.datetime.now(dt.UTC), 30, 1)
    (tls_dir / "tls.crt").write_bytes(other.cert)  # new cert, old key: mismatch
    assert context.maybe_reload() is False
    assert context.loads == 1

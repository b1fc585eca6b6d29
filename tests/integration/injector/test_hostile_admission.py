"""Hostile AdmissionReviews against the real webhook server over TLS on 127.0.0.1 (issue 12 item 4).

A seeded generator (bench/hostile_admission.py, which also runs the full 10,000 for
docs/RELIABILITY.md) builds malformed JSON, non-UTF-8 bytes, bodies at and over
``max_request_bytes``, missing and mistyped fields at every level, unicode names, 100 containers,
a pod declaring every port, wrong content types, methods, kinds and apiVersions. Each is sent
twice (two passes) to the production ``WebhookServer``; the PVC lookup is a table, with a cache
miss for some claims so the worker-thread path is exercised too.

The outcome: no crash (no 5xx, no internal-error denial, no connection closed without a reply,
no ERROR log record, the server still serves), every reply well-formed (HTTP 200 with an
AdmissionReview echoing the uid when the body is a v1 AdmissionReview with a uid, else a 4xx
JSON error), byte-identical replies for the same request, each within 10 s. Latencies are
recorded, never asserted.
"""

from __future__ import annotations

import json
import random

import pytest

from bench.hostile_admission import (
    DEFAULT_SEED,
    KINDS,
    Case,
    Client,
    Generator,
    Served,
    expected,
    problems,
    run,
    watched_logs,
)
from injector.tls import Bundle, write_files

COUNT = 2000  # `make reliability` runs 10,000 of the same sequence


def test_two_thousand_hostile_reviews_never_crash_and_always_get_a_well_formed_reply() -> None:
    report = run(COUNT, seed=DEFAULT_SEED, timeout=10.0)
    figures = report.figures()
    print(json.dumps({k: v for k, v in figures.items() if k != "failures"}, ensure_ascii=False))
    assert report.failures == [], "\n".join(report.failures)
    assert (report.crashes, report.malformed, report.nondeterministic, report.timeouts) == (0, 0, 0, 0)
    assert report.healthy_after
    assert report.requests == 2 * COUNT
    assert set(report.kinds) == set(KINDS), "every family of hostile input was generated"
    # The run went through the decision, not only the parser.
    for outcome in ("injected", "admitted", "denied-400", "denied-403", "http-400", "http-413", "http-415"):
        assert report.outcomes[outcome] > 0, outcome


def test_the_generator_is_deterministic_and_each_case_reproducible_alone() -> None:
    a, b = Generator(7, 64 * 1024), Generator(7, 64 * 1024)
    assert [a.case(i) for i in range(200)] == [b.case(i) for i in range(200)]
    assert a.case(150) == Generator(7, 64 * 1024).case(150)


@pytest.fixture
def served(tmp_path, bundle: Bundle):
    write_files(bundle, tmp_path)
    server = Served(tmp_path, 64 * 1024)
    yield server
    server.stop()


def review(**request: object) -> bytes:
    doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(doc).encode()


POD = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "containers": [{"name": "app", "image": "x"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    },
}
CREATE = {"uid": "u-1", "operation": "CREATE", "resource": {"resource": "pods"}, "namespace": "shop"}


def with_pod(**changes: object) -> bytes:
    pod = json.loads(json.dumps(POD))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = pod
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return review(**CREATE, object=pod)


# The shapes the fuzzing found crashing the server (no reply, or a 500 "internal error" denial),
# each answered now with a denial naming the field; the pod is never admitted un-injected.
FOUND = [
    (with_pod(metadata=["web"]), "request.object.metadata must be an object"),
    (with_pod(metadata__annotations=["a"]), "request.object.metadata.annotations must be an object"),
    (with_pod(metadata__annotations={"lifeboat.dev/skip": True}), "annotations['lifeboat.dev/skip'] must be"),
    (with_pod(spec__volumes=5), "request.object.spec.volumes must be a list"),
    (with_pod(spec__volumes__0=["data"]), "request.object.spec.volumes[0] must be an object"),
    (with_pod(spec__volumes__0__persistentVolumeClaim__claimName=5), "claimName must be a non-empty string"),
    (with_pod(spec__volumes__0__persistentVolumeClaim__claimName=""), "claimName must be a non-empty string"),
    (with_pod(spec__volumes__0__name=None), "request.object.spec.volumes[0].name must be a non-empty string"),
    (with_pod(spec__initContainers=5), "request.object.spec.initContainers must be a list"),
    (with_pod(spec__containers=["app"]), "request.object.spec.containers[0] must be an object"),
    (with_pod(spec__containers__0__name={"a": 1}), "request.object.spec.containers[0].name must be a string"),
    (with_pod(spec__containers__0__ports=5), "request.object.spec.containers[0].ports must be a list"),
    (with_pod(spec__securityContext=[]), "request.object.spec.securityContext must be an object"),
]


@pytest.mark.parametrize(("body", "fragment"), FOUND)
def test_shapes_that_crashed_are_denied_naming_the_field(served, bundle, body, fragment) -> None:
    with watched_logs() as logs:
        client = Client(served.port, bundle.ca_cert, 10.0)
        status, headers, reply = client.send(Case("found", body))
        client.close()
    assert problems(Case("found", body), status, headers, reply, 64 * 1024) == ("", "")
    response = json.loads(reply)["response"]
    assert response["uid"] == "u-1" and response["allowed"] is False
    assert response["status"]["code"] == 400
    assert fragment in response["status"]["message"]
    assert logs.errors == []


@pytest.mark.parametrize("depth", [2000, 30_000])
def test_json_nested_past_the_recursion_limit_is_a_400_not_a_dropped_connection(
    served, bundle, depth
) -> None:
    body = ("[" * depth + "]" * depth).encode()
    client = Client(served.port, bundle.ca_cert, 10.0)
    status, _, reply = client.send(Case("deep", body))
    assert status == 400 and "nests JSON too deeply" in json.loads(reply)["error"]
    assert client.healthy()  # same connection, still served


def test_a_pod_declaring_every_port_is_denied_instead_of_hanging_the_event_loop(tmp_path, bundle) -> None:
    write_files(bundle, tmp_path)
    served = Served(tmp_path, 3 * 1024 * 1024)  # 64,512 ports do not fit in 64 KiB
    try:
        ports = [{"containerPort": p} for p in range(1024, 65536)]
        body = with_pod(spec__containers=[{"name": "app", "image": "x", "ports": ports}])
        client = Client(served.port, bundle.ca_cert, 10.0)
        status, _, reply = client.send(Case("all-ports", body))
        response = json.loads(reply)["response"]
        assert status == 200 and response["allowed"] is False and response["status"]["code"] == 403
        assert "every port from 1024 to 65535" in response["status"]["message"]
        assert client.healthy()
    finally:
        assert served.stop(), "the event loop is stuck"


def test_the_oracle_reads_requests_as_the_contract_says() -> None:
    good = review(**CREATE, object=POD)
    assert expected(Case("x", good), 1 << 20) == (200, "u-1")
    assert expected(Case("x", good, content_type="text/plain"), 1 << 20) == (415, None)
    assert expected(Case("x", good, method="GET"), 1 << 20) == (405, None)
    assert expected(Case("x", b"", declared_length=(1 << 20) + 1), 1 << 20) == (413, None)
    assert expected(Case("x", review(operation="CREATE")), 1 << 20) == (400, None)
    assert expected(Case("x", good.replace(b"v1", b"v1beta1", 1)), 1 << 20) == (400, None)
    assert expected(Case("x", bytes(random.Random(1).getrandbits(8) for _ in range(64))), 1 << 20) == (
        400,
        None,
    )

"""The webhook server's shutdown loses no admission (docs/RELIABILITY.md "Availability").

On SIGTERM the injector drains, then closes. An API server that reaches webhooks through the
Service's ClusterIP keeps its keep-alive connections pinned to the old replica: while draining,
each reply must close its connection so the next request goes to a live replica; and close must
let a review in flight finish before the process goes.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from injector.cache import CacheMiss
from injector.config import InjectorSettings
from injector.decision import PvcInfo, PvcUnavailable
from injector.metrics import Metrics
from injector.server import Lookups, WebhookServer
from injector.tls import Bundle, ReloadingContext, write_files
from tests.integration.injector.test_server import CASE, Running, connect
from tests.support.injector_fixtures import admission_review, pvc_table, table_lookup

SLOW_PVC = "slow-to-read"  # not in the watch cache: read from the API server, taking SLOW seconds
SLOW = 1.0


@pytest.fixture
def running(tmp_path: Path, bundle: Bundle) -> Iterator[Running]:
    write_files(bundle, tmp_path / "tls")
    table = table_lookup(pvc_table(CASE))

    def fast(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        if name == SLOW_PVC:
            raise CacheMiss(name)
        return table(namespace, name)

    def slow(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        time.sleep(SLOW)
        return PvcInfo(name, "uid-slow", {"backup": "daily"})

    server = WebhookServer(
        InjectorSettings(listen_host="127.0.0.1", port=0, plain_port=0),
        ReloadingContext(tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key"),
        Lookups(fast=fast, slow=slow, namespace_labels=lambda ns: None, miss=CacheMiss),
        Metrics(),
        native_sidecars=lambda: True,
        ready=lambda: True,
    )
    run = Running(server)
    yield run
    if run.thread.is_alive():
        run.stop()


def _review(pod: dict[str, Any], uid: str) -> bytes:
    return json.dumps(admission_review(pod, uid=uid)).encode()


def _post(conn: http.client.HTTPSConnection, body: bytes) -> http.client.HTTPResponse:
    conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response


def test_while_draining_each_reply_closes_its_keep_alive_connection(running: Running, bundle: Bundle) -> None:
    conn = connect(running, bundle)
    before = _post(conn, _review(CASE["pod"], "before"))
    assert before.status == 200 and before.getheader("Connection") is None  # kept alive
    running.server.draining = True
    during = _post(conn, _review(CASE["pod"], "during"))
    assert during.status == 200 and during.getheader("Connection") == "close"
    assert json.loads(during.read() or b"{}") == {}  # the body was read whole above
    assert during.will_close


def test_close_lets_a_review_in_flight_finish(running: Running, bundle: Bundle) -> None:
    pod = json.loads(json.dumps(CASE["pod"]))
    pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = SLOW_PVC
    idle = connect(running, bundle)
    assert _post(idle, _review(CASE["pod"], "idle")).status == 200
    answers: list[Any] = []

    def in_flight() -> None:
        try:
            response = _post(connect(running, bundle), _review(pod, "in-flight"))
            answers.append(response.status)
        except Exception as exc:
            answers.append(exc)

    client = threading.Thread(target=in_flight)
    client.start()
    time.sleep(SLOW / 3)
    running.stop()  # what the process does after draining: close, then exit the loop
    client.join(10)
    assert answers == [200]
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        _post(idle, _review(CASE["pod"], "after"))  # the idle keep-alive connection was closed

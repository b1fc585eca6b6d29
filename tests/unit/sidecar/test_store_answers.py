"""How the store probe reads answers real stores rarely give: a wrong-region 400 that names the
region only in its body, a 200 that is not a listing (a proxy's or captive portal's page), and the
error codes that decide between waiting and failing. Rule 2: nothing but a real, empty listing is
"no repository". The S3 stores this machine runs are tested in tests/integration/sidecar.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidecar.edges.store import StoreProbe, StoreState
from sidecar.repository import Repository

_EMPTY_LISTING = (
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>backups</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"
)
Answer = Callable[[str], tuple[int, str]]  # the signed region -> (status, body)


def _error(code: str, extra: str = "") -> str:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>no</Message>{extra}</Error>"


@pytest.fixture
def store() -> Iterator[Callable[[Answer], tuple[StoreProbe, Repository, list[str]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> tuple[StoreProbe, Repository, list[str]]:
        signed: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                scope = re.search(r"/\d{8}/([^/]+)/s3/", self.headers.get("Authorization", ""))
                signed.append(scope.group(1) if scope else "")
                status, body = answer(signed[-1])
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        repository = Repository(endpoint=endpoint, bucket="backups", key_prefix="lifeboat/apps/data")
        return StoreProbe("access", "secret", timeout=5), repository, signed

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_wrong_region_named_only_in_the_error_body_is_followed(
    store: Callable[[Answer], tuple[StoreProbe, Repository, list[str]]],
) -> None:
    def answer(region: str) -> tuple[int, str]:
        if region == "ap-south-1":
            return 200, _EMPTY_LISTING
        return 400, _error("AuthorizationHeaderMalformed", "<Region>ap-south-1</Region>")

    probe, repository, signed = store(answer)
    state, text = probe.probe(repository)
    assert state is StoreState.NO_REPOSITORY, text
    assert signed[:2] == ["us-east-1", "ap-south-1"]


def test_a_page_that_is_not_a_listing_is_unreachable_never_no_repository(
    store: Callable[[Answer], tuple[StoreProbe, Repository, list[str]]],
) -> None:
    probe, repository, _ = store(lambda region: (200, "<html><body>Sign in to the Wi-Fi</body></html>"))
    state, text = probe.probe(repository)
    assert state is StoreState.UNREACHABLE
    assert "not a listing" in text


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "NoSuchBucket", StoreState.BUCKET_MISSING),
        (403, "AccessDenied", StoreState.DENIED),
        (403, "SignatureDoesNotMatch", StoreState.DENIED),
        (400, "InvalidAccessKeyId", StoreState.DENIED),
        (500, "InternalError", StoreState.UNREACHABLE),
        (503, "SlowDown", StoreState.UNREACHABLE),
        (301, "PermanentRedirect", StoreState.UNREACHABLE),  # no region named: not followed, waited on
    ],
)
def test_error_answers_map_to_waiting_or_failing_never_to_fresh(
    store: Callable[[Answer], tuple[StoreProbe, Repository, list[str]]],
    status: int,
    code: str,
    expected: StoreState,
) -> None:
    probe, repository, _ = store(lambda region: (status, _error(code)))
    state, text = probe.probe(repository)
    assert state is expected
    assert code in text and "secret" not in text


def test_an_endpoint_that_refuses_connections_is_unreachable() -> None:
    probe = StoreProbe("access", "secret", timeout=2)
    repository = Repository(endpoint="http://127.0.0.1:9", bucket="backups", key_prefix="p")
    state, text = probe.probe(repository)
    assert state is StoreState.UNREACHABLE
    assert "Connection" in text or "refused" in text.lower()

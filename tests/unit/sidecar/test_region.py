"""The bucket's region: never forced on restic, discovered by the probe (issue 9, item 12)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidecar.edges.store import StoreProbe, StoreState
from sidecar.repository import Repository
from sidecar.settings import load_settings, load_sidecar_settings
from tests.unit.sidecar.test_settings import BASE

_EMPTY_LISTING = (
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>backups</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>10</MaxKeys>"
    "<IsTruncated>false</IsTruncated></ListBucketResult>"
)
_REDIRECT = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code>'
    "<Message>The bucket you are attempting to access must be addressed using the specified endpoint."
    "</Message></Error>"
)


def test_restic_gets_no_aws_default_region_unless_one_is_set() -> None:
    assert "AWS_DEFAULT_REGION" not in load_settings(BASE).restic_env()
    assert "AWS_DEFAULT_REGION" not in load_settings({**BASE, "LIFEBOAT_S3_REGION": ""}).restic_env()
    assert "AWS_DEFAULT_REGION" not in load_sidecar_settings(BASE).restic_env()


def test_restic_gets_the_region_that_is_set() -> None:
    env = load_settings({**BASE, "LIFEBOAT_S3_REGION": "eu-west-1"}).restic_env()
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


class _RegionalBucket(BaseHTTPRequestHandler):
    """A bucket in eu-west-1, answering like AWS: a request signed for another region gets a 301."""

    signed: list[str]  # the regions requests were signed for, in order

    def do_GET(self) -> None:
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/s3/", self.headers.get("Authorization", ""))
        region = scope.group(1) if scope else ""
        self.signed.append(region)
        body = (_EMPTY_LISTING if region == "eu-west-1" else _REDIRECT).encode()
        self.send_response(200 if region == "eu-west-1" else 301)
        self.send_header("x-amz-bucket-region", "eu-west-1")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def regional_bucket() -> Iterator[tuple[str, list[str]]]:
    signed: list[str] = []
    handler = type("Handler", (_RegionalBucket,), {"signed": signed})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", signed
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_without_a_region_signs_us_east_1_then_follows_the_region_the_bucket_names(
    regional_bucket: tuple[str, list[str]],
) -> None:
    endpoint, signed = regional_bucket
    probe = StoreProbe("access", "secret", timeout=5)
    repository = Repository(endpoint=endpoint, bucket="backups", key_prefix="lifeboat/apps/data")
    state, text = probe.probe(repository)
    assert state is StoreState.NO_REPOSITORY, text
    assert signed[:2] == ["us-east-1", "eu-west-1"], "one redirect, then the bucket's region"
    assert set(signed[2:]) <= {"eu-west-1"}
    signed.clear()
    assert probe.probe(repository)[0] is StoreState.NO_REPOSITORY
    assert set(signed) == {"eu-west-1"}, "the discovered region is kept for the bucket"


def test_the_probe_signs_for_a_configured_region_first(regional_bucket: tuple[str, list[str]]) -> None:
    endpoint, signed = regional_bucket
    probe = StoreProbe("access", "secret", region="eu-west-1", timeout=5)
    repository = Repository(endpoint=endpoint, bucket="backups", key_prefix="lifeboat/apps/data")
    assert probe.probe(repository)[0] is StoreState.NO_REPOSITORY
    assert set(signed) == {"eu-west-1"}

"""Fixtures the sidecar's store-fault tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools import devstore, toxiproxy


@pytest.fixture(scope="module")
def proxy(
    seaweed_server: devstore.S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[toxiproxy.Toxiproxy]:
    """The session's SeaweedFS behind a toxiproxy of the requesting module's own."""
    with toxiproxy.running(tmp_path_factory.mktemp("store-proxy"), seaweed_server.endpoint) as running:
        yield running

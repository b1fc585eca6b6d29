"""Shared fixtures: real S3 servers (SeaweedFS, rclone) on free loopback ports, real restic.

One server of each kind per test session; each test gets a fresh bucket (or a fresh prefix) so
tests never see each other's repositories. `s3` is parametrised over both implementations for the
tests that must hold on any S3; `seaweed` alone is the default store elsewhere.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import devstore

# the injector tests' fixtures (settings, pods, AdmissionReviews, certificates)
pytest_plugins = ["tests.support.injector_fixtures"]

ACCESS_KEY = "lifeboat-test-access"
SECRET_KEY = "lifeboat-test-secret-value"
PASSWORD = "lifeboat-test-password"
_counter = itertools.count()

VENV_BIN = Path(sys.executable).parent
RESTIC = str(VENV_BIN / "restic") if (VENV_BIN / "restic").exists() else (shutil.which("restic") or "restic")


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstore.S3Server]:
    server = devstore.seaweedfs(tmp_path_factory.mktemp("seaweedfs"), ACCESS_KEY, SECRET_KEY)
    with devstore.running(server):
        yield server


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstore.S3Server]:
    server = devstore.rclone(tmp_path_factory.mktemp("rclone"), ACCESS_KEY, SECRET_KEY)
    with devstore.running(server):
        yield server


@dataclass
class Store:
    """One test's slice of a real S3 server: a bucket of its own and the env that points at it."""

    server: devstore.S3Server
    bucket: str

    @property
    def kind(self) -> str:
        return self.server.kind

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "LIFEBOAT_S3_ENDPOINT": self.server.endpoint,
            "LIFEBOAT_S3_BUCKET": self.bucket,
            "LIFEBOAT_S3_PREFIX": "lifeboat",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "RESTIC_PASSWORD": PASSWORD,
            "LIFEBOAT_NAMESPACE": "apps",
            "LIFEBOAT_RESTIC_BINARY": RESTIC,
            "LIFEBOAT_RETRY_INITIAL": "0.2",
            "LIFEBOAT_RETRY_MAX": "1",
            "LIFEBOAT_PROBE_TIMEOUT": "3",
        }
        env.update(extra)
        return env

    def repository(self, pvc: str, namespace: str = "apps") -> str:
        return f"s3:{self.server.endpoint}/{self.bucket}/lifeboat/{namespace}/{pvc}"

    def restic_env(self, repository: str) -> dict[str, str]:
        """Environment for running restic by hand against this store (test set-up only)."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/root"),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": repository,
        }

    def keys(self, prefix: str = "") -> list[str]:
        client = self.server.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _new_store(server: devstore.S3Server) -> Store:
    bucket = f"t{os.getpid()}-{next(_counter)}"
    server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return Store(server=server, bucket=bucket)


@pytest.fixture
def seaweed(seaweed_server: devstore.S3Server) -> Store:
    """A fresh bucket on the session's SeaweedFS."""
    return _new_store(seaweed_server)


@pytest.fixture(params=["seaweedfs", "rclone"])
def s3(request: pytest.FixtureRequest) -> Store:
    """A fresh bucket on each S3 implementation in turn."""
    server = request.getfixturevalue("seaweed_server" if request.param == "seaweedfs" else "rclone_server")
    return _new_store(server)

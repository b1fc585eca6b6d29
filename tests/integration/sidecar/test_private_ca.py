"""A store behind TLS from a private CA (docs/stores.md, issue 14 item 12): what the derived image
of docs/stores.md does (the CA in the bundle restic reads, AWS_CA_BUNDLE for the probe) makes the
real `lifeboat restore` and `lifeboat backup` work; without the CA the store is unreachable and
the restore waits (never fresh). `rclone serve s3` with a certificate from a throwaway CA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import devstore
from devtools.devtree import describe, make_volume
from injector.tls import generate_ca, issue
from tests.conftest import ACCESS_KEY, SECRET_KEY, Store
from tests.support.lifeboat_cli import lifeboat

pytestmark = pytest.mark.s3


@pytest.fixture
def tls_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Path]]:
    now = dt.datetime.now(dt.UTC)
    ca_cert, ca_key = generate_ca(now)
    cert, key = issue(ca_cert, ca_key, ["localhost"], now, 2)
    ca = tmp_path / "private-ca.crt"
    ca.write_bytes(ca_cert)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    plain = devstore.rclone(tmp_path / "rclone", ACCESS_KEY, SECRET_KEY)
    port = plain.endpoint.rsplit(":", 1)[1]
    server = dataclasses.replace(
        plain,
        endpoint=f"https://localhost:{port}",
        argv=[
            *plain.argv[:-1],
            "--cert",
            str(tmp_path / "tls.crt"),
            "--key",
            str(tmp_path / "tls.key"),
            plain.argv[-1],
        ],
    )
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))  # this test process's own boto3 (readiness, bucket)
    with devstore.running(server):
        server.client().create_bucket(Bucket="private")  # type: ignore[attr-defined]
        yield Store(server=server, bucket="private"), ca


def test_a_store_with_a_private_ca_works_once_the_ca_is_trusted(
    tls_store: tuple[Store, Path], tmp_path: Path
) -> None:
    store, ca = tls_store
    trusted = {"AWS_CA_BUNDLE": str(ca), "SSL_CERT_FILE": str(ca)}  # the probe's and restic's bundles
    volume = tmp_path / "vol"
    volume.mkdir()
    fresh = lifeboat("restore", store, {"data": volume}, tmp_path / "fresh", env=trusted)
    assert fresh.code == 0 and fresh.outcome("data")["outcome"] == "fresh", fresh.stderr
    make_volume(volume, seed=5)
    backup = lifeboat("backup", store, {"data": volume}, tmp_path / "backup", env=trusted)
    assert backup.code == 0, backup.stderr
    lost = tmp_path / "lost"
    lost.mkdir()
    restored = lifeboat("restore", store, {"data": lost}, tmp_path / "restore", env=trusted)
    assert restored.outcome("data")["outcome"] == "restored", restored.stderr
    assert describe(lost) == describe(volume)


def test_without_the_ca_the_restore_waits_and_never_starts_fresh(
    tls_store: tuple[Store, Path], tmp_path: Path
) -> None:
    store, _ = tls_store
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", store, {"data": volume}, tmp_path, env={"LIFEBOAT_RESTORE_DEADLINE": "3"})
    assert run.code == 75, run.stderr
    assert "certificate" in run.events("restore.retry")[0]["reason"].lower()
    assert list(volume.iterdir()) == []

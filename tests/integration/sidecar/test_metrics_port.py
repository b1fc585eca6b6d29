"""A metrics port someone else holds never stops backups (issue 9 item 11)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from devtools import devstore
from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import fill, handover, settings, snapshots

pytestmark = pytest.mark.s3


def test_backups_go_on_when_the_metrics_port_is_taken_and_the_log_says_why(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = devstore.free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        conf = settings(
            seaweed, tmp_path, LIFEBOAT_METRICS_PORT=str(port), LIFEBOAT_METRICS_ADDRESS="127.0.0.1"
        )
        handover(conf.state_dir, data="fresh")
        volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
        sidecar = Sidecar.from_settings([volume], conf)
        with caplog.at_level(logging.INFO):
            sidecar.start()
        try:
            assert sidecar.server is None
            assert sidecar.workers[0].backup().succeeded
        finally:
            sidecar.request_stop()
            sidecar.shutdown()
    finally:
        squatter.close()
    assert len(snapshots(seaweed, "data")) >= 1
    (unavailable,) = [r for r in caplog.records if getattr(r, "event", "") == "metrics.unavailable"]
    assert unavailable.fields["port"] == port  # type: ignore[attr-defined]

"""SIGTERM: the final backup of a quiesced volume, within LIFEBOAT_FINAL_BACKUP_TIMEOUT, exit 0.

Kubernetes stops a native sidecar after the app, so what the final backup sees is the app's last
word. When the budget runs out restic is interrupted with SIGINT: no partial snapshot, no lock.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from devtools import devstore
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import (
    check_clean,
    events,
    fill,
    handover,
    locks,
    restic,
    scrape,
    sidecar_process,
    snapshots,
)

pytestmark = pytest.mark.s3


def wait_ready(port: int, proc: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if scrape(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("sidecar never became ready")


def test_sigterm_takes_a_final_backup_and_exits_0(seaweed: Store, tmp_path: Path) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1")
    (tmp_path / "state").mkdir()
    handover(tmp_path / "state", data="skipped")
    port = str(devstore.free_port())
    proc = sidecar_process(
        seaweed, tmp_path, [volume], LIFEBOAT_METRICS_PORT=port, LIFEBOAT_FINAL_BACKUP_TIMEOUT="60"
    )
    wait_ready(int(port), proc)
    argv = " ".join(psutil.Process(proc.pid).cmdline())
    assert "--runtime-fd" in argv  # re-executed into the slim process, same PID
    assert "lifeboat-test-secret-value" not in argv and "lifeboat-test-password" not in argv
    (volume.path / "last-words.txt").write_text("written by the app just before it stopped")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr
    (snap,) = snapshots(seaweed, "data")
    assert "pvc-uid=uid-1" in snap["tags"]  # type: ignore[operator]
    finals = [e for e in events(stderr) if e.get("event") == "backup.final"]
    assert [f["result"] for f in finals] == ["success"]
    assert "lifeboat-test-secret-value" not in stderr and "lifeboat-test-password" not in stderr
    assert locks(seaweed, "data") == []


def test_final_backup_out_of_time_is_cancelled_cleanly_and_still_exits_0(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = VolumeSpec("data", fill(tmp_path / "vol", files=4), pvc_uid="uid-1")
    (tmp_path / "state").mkdir()
    handover(tmp_path / "state", data="skipped")
    # The repository exists already: on a loaded machine the 3 s budget could otherwise run out
    # before `restic init`, and this test is about cancelling the backup itself.
    restic(seaweed, "data", "init")
    port = str(devstore.free_port())
    proc = sidecar_process(
        seaweed, tmp_path, [volume], LIFEBOAT_METRICS_PORT=port, LIFEBOAT_FINAL_BACKUP_TIMEOUT="3"
    )
    wait_ready(int(port), proc)
    fill(volume.path / "big", files=40, size=8 * 1024 * 1024)  # 320 MiB of fresh random data
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, stderr
    finals = [e for e in events(stderr) if e.get("event") == "backup.final"]
    assert [f["result"] for f in finals] == ["cancelled"]
    assert elapsed < 3 + 10 + 15  # budget + restic's clean stop grace + start-up slack
    assert snapshots(seaweed, "data") == []  # no partial snapshot
    assert locks(seaweed, "data") == []  # restic removed its lock on SIGINT
    check_clean(seaweed, "data")

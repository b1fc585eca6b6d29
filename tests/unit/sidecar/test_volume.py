"""The volume's lease: an atomic mkdir that excludes restorers sharing no kernel lock table (NFS
clients on different nodes), with a heartbeat, and broken when its holder stopped beating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.edges import volume as vol

_HOLD = """
import sys, time
from pathlib import Path
from sidecar.edges import volume as vol
root, holder, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with vol.lease(root, holder, poll=0.02, stale_after=60):
    for step in ("enter", "exit"):
        with open(log, "a") as handle:
            handle.write(f"{step} {holder}\\n")
        time.sleep(0.3)
"""


def test_two_processes_without_a_shared_flock_never_hold_the_lease_together(tmp_path: Path) -> None:
    log = tmp_path / "log"
    root = tmp_path / "vol"
    root.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", _HOLD, str(root), f"node-{i}", str(log)]) for i in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = log.read_text().split()
    steps = list(zip(lines[0::2], lines[1::2], strict=True))
    assert len(steps) == 8
    for enter, leave in zip(steps[0::2], steps[1::2], strict=True):
        assert enter[0] == "enter" and leave == ("exit", enter[1]), steps
    assert os.listdir(root) == [], "the lease and the work directory are gone when released"


def _forge(root: Path, holder: str, age: float) -> None:
    lease = root / vol.WORK_DIR / "lease"
    lease.mkdir(parents=True)
    (lease / "holder.json").write_text(json.dumps({"holder": holder, "token": "forged", "pid": 1}))
    then = time.time() - age
    os.utime(lease, (then, then))


def test_a_lease_whose_holder_stopped_beating_is_broken_by_the_next_restorer(tmp_path: Path) -> None:
    _forge(tmp_path, "node-that-died", age=3600)
    with vol.lease(tmp_path, "node-b", stale_after=60, poll=0.01):
        holder = json.loads((tmp_path / vol.WORK_DIR / "lease" / "holder.json").read_text())
        assert holder["holder"] == "node-b"
    assert os.listdir(tmp_path) == []


def test_a_live_lease_of_another_node_is_waited_for_not_broken(tmp_path: Path) -> None:
    _forge(tmp_path, "node-a", age=5)
    assert not vol._try_take_lease(tmp_path, "node-b", "token-b")
    assert not vol._break_if_stale(tmp_path, "node-b", 60, time.time())
    assert json.loads((tmp_path / vol.WORK_DIR / "lease" / "holder.json").read_text())["holder"] == "node-a"


def test_a_lease_left_by_an_earlier_run_of_the_same_pod_is_taken_over_at_once(tmp_path: Path) -> None:
    _forge(tmp_path, "pod-0", age=1)
    started = time.monotonic()
    with vol.lease(tmp_path, "pod-0", stale_after=600, poll=5):
        pass
    assert time.monotonic() - started < 5, "no wait for the stale period"
    assert os.listdir(tmp_path) == []


def test_the_holder_refreshes_the_lease_while_it_restores(tmp_path: Path) -> None:
    with vol.lease(tmp_path, "node-a", stale_after=0.4):
        lease = tmp_path / vol.WORK_DIR / "lease"
        os.utime(lease, (0, 0))
        deadline = time.monotonic() + 30
        while os.stat(lease).st_mtime == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.stat(lease).st_mtime > 0


def test_a_download_to_resume_survives_the_release_of_the_lease(tmp_path: Path) -> None:
    with vol.lease(tmp_path, "node-a"):
        (vol.prepare(tmp_path) / "partial").write_text("x")
    assert (vol.tree_dir(tmp_path) / "partial").exists()
    vol.discard(tmp_path)
    assert os.listdir(tmp_path) == []

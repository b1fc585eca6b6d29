"""An out-of-memory kill during a restore: the app sees the whole tree or nothing, never a part.

The restore runs as in the init container: `lifeboat restore` and its restic child inside a memory
cgroup of their own (the container's), here a fresh cgroup-v1 memory cgroup whose limit is below
what the restore needs. The kernel's OOM killer then kills a process of the cgroup: restic, or the
`lifeboat` process itself (its Python is the largest process until restic grows; after a killed
restic it retries, and the next kill takes it). A container whose main process is killed is torn
down whole, so every task left in the cgroup gets SIGKILL, as the runtime would send. The volume
must then hold nothing the app would see. The rerun is the pod after the user raised
`lifeboat.dev/memory-limit`: a new pod (fresh state and cache directories) on the same volume, in a
cgroup with room enough, and it must restore the tree byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.devtree import describe, make_volume, top_level
from sidecar.edges import volume as vol
from sidecar.restore.decision import VolumeState
from tests.conftest import Store
from tests.support.lifeboat_cli import LIFEBOAT, lifeboat

pytestmark = [pytest.mark.s3, pytest.mark.slow]

MEMORY = Path("/sys/fs/cgroup/memory")  # cgroup v1's memory controller (the machine's kubelet uses it)
MiB = 1024 * 1024
# `lifeboat restore` for the tree below peaks at about 80 MiB for the whole cgroup (restic ~40 MiB
# anonymous memory, the Python process ~48 MiB); 40 MiB is enough to start both and too little to
# finish, so the kill lands mid-download whichever process the kernel picks.
STARVED = 40 * MiB
ENOUGH = 1024 * MiB


def memory_cgroups_writable() -> str | None:
    """None when this process may create memory cgroups; else why not (the skip reason)."""
    if not (MEMORY / "memory.limit_in_bytes").exists():
        return f"no cgroup-v1 memory controller at {MEMORY} (cgroup v2 only, or not mounted)"
    probe = MEMORY / f"lifeboat-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot create a memory cgroup under {MEMORY}: {exc.strerror} (needs root, writable cgroupfs)"
    return None


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path

    def counter(self, name: str) -> int:
        return int((self.path / name).read_text())

    @property
    def oom_kills(self) -> int:
        """Processes of this cgroup the kernel's OOM killer killed (`oom_kill` in memory.oom_control)."""
        fields = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
        return int(fields["oom_kill"])

    def tasks(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]

    def tear_down(self) -> None:
        """SIGKILL to every task left, as the container runtime sends when a container dies."""
        deadline = time.monotonic() + 30
        while pids := self.tasks():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            assert time.monotonic() < deadline, f"tasks {pids} outlived SIGKILL in {self.path}"
            time.sleep(0.05)


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[MemoryCgroup]:
    """A fresh memory cgroup with `limit` bytes and no swap, removed again afterwards."""
    cgroup = MemoryCgroup(MEMORY / f"lifeboat-oom-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    cgroup.path.mkdir()
    try:
        (cgroup.path / "memory.swappiness").write_text("0")
        (cgroup.path / "memory.limit_in_bytes").write_text(str(limit))
        yield cgroup
    finally:
        cgroup.tear_down()
        for _ in range(100):  # the last task's exit can lag its removal from cgroup.procs
            try:
                cgroup.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        assert not cgroup.path.exists(), f"could not remove {cgroup.path}"


def restore_in(
    cgroup: MemoryCgroup, store: Store, volume: Path, tmp: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`lifeboat restore` started inside `cgroup` (it joins before exec, so restic is born there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    full = store.env(
        LIFEBOAT_STATE_DIR=str(tmp / "state"),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(tmp / "termination-log"),
        RESTIC_CACHE_DIR=str(tmp / "cache"),
        **env,
    )
    join = f'echo $$ > {cgroup.path / "cgroup.procs"} && exec "$0" "$@"'
    return subprocess.run(
        ["sh", "-c", join, LIFEBOAT, "restore", "--volume", f"data={volume}"],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )


def test_an_oom_killed_restore_leaves_the_volume_empty_and_a_rerun_with_room_restores_it_whole(
    seaweed: Store, tmp_path: Path
) -> None:
    if (reason := memory_cgroups_writable()) is not None:
        pytest.skip(reason)
    source = tmp_path / "source"
    make_volume(source, files=3000, size=2048)
    assert lifeboat("backup", seaweed, {"data": source}, tmp_path / "backup").code == 0
    expected = describe(source)
    volume = tmp_path / "volume"
    volume.mkdir()

    with memory_cgroup(STARVED) as starved:
        # bounded retries: a killed restic is retried in the same process, which the next kill takes
        killed = restore_in(starved, seaweed, volume, tmp_path / "pod-1", LIFEBOAT_RESTORE_DEADLINE="60")
        starved.tear_down()  # the container is gone: nothing of it may still write to the volume
        assert starved.oom_kills >= 1, "the kernel's OOM killer should have killed a process"
        assert starved.counter("memory.failcnt") > 0  # charges hit the limit
    assert killed.returncode in (-signal.SIGKILL, 75), killed.stderr[-2000:]  # OOM-killed, or gave up
    if "restore.retry" in killed.stderr:  # only restic was killed: the retry names the fix, not the store
        assert "lifeboat.dev/memory-limit" in killed.stderr
    assert vol.inspect(volume) is VolumeState.EMPTY, "the app would see part of the tree"
    # the kernel kills the largest process at that instant: restic mid-download leaves Lifeboat's
    # work directory with the part it had; `lifeboat restore` itself, killed before it prepared the
    # work directory, leaves nothing. Never anything of the snapshot outside the work directory.
    assert top_level(volume) in ([], [vol.WORK_DIR])

    with memory_cgroup(ENOUGH) as roomy:  # a new pod after `lifeboat.dev/memory-limit` was raised
        rerun = restore_in(roomy, seaweed, volume, tmp_path / "pod-2")
        assert roomy.oom_kills == 0
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert '"outcome": "restored"' in rerun.stderr
    assert describe(volume) == expected
    assert vol.WORK_DIR not in top_level(volume)

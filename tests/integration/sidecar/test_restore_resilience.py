"""Restore under stress: kill -9 at any instant, racing restores, an outage mid-retry, and
repositories written by VolSync. Real restic, real SeaweedFS, real processes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devtools import devstore
from devtools.devtree import describe, make_volume, top_level
from sidecar.edges import capture
from sidecar.edges import volume as vol
from sidecar.restore.decision import VolumeState
from tests.conftest import ACCESS_KEY, SECRET_KEY, Store, _new_store
from tests.support.lifeboat_cli import LIFEBOAT, lifeboat, restic, snapshots

pytestmark = pytest.mark.s3


def _big_source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    make_volume(source, files=300, size=16 * 1024)
    with open(source / "large.bin", "wb") as handle:
        for i in range(24):
            handle.write(os.urandom(1024 * 1024) if i % 2 else bytes([i]) * (1024 * 1024))
    return source


def _start_restore(store: Store, volume: Path, tmp: Path, **env: str) -> subprocess.Popen[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    full = store.env(
        LIFEBOAT_STATE_DIR=str(tmp / "state"),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(tmp / "term"),
        RESTIC_CACHE_DIR=str(tmp / "cache"),
    )
    full.update(env)
    return subprocess.Popen(
        [LIFEBOAT, "restore", "--volume", f"data={volume}"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # like a container: killing it kills restic too
    )


@pytest.mark.slow
def test_kill_9_at_any_instant_never_shows_a_partial_volume_and_a_rerun_completes(
    seaweed: Store, tmp_path: Path
) -> None:
    source = _big_source(tmp_path)
    assert lifeboat("backup", seaweed, {"data": source}, tmp_path / "b").code == 0
    expected = describe(source)

    timing = tmp_path / "timing"
    timing.mkdir()
    started = time.monotonic()
    assert lifeboat("restore", seaweed, {"data": timing}, tmp_path / "t").code == 0
    full = time.monotonic() - started

    kill_points = 10
    states: list[str] = []
    for k in range(kill_points):
        volume = tmp_path / f"vol-{k}"
        volume.mkdir()
        proc = _start_restore(seaweed, volume, tmp_path / f"run-{k}")
        time.sleep(full * (k + 0.5) / kill_points)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        state = vol.inspect(volume)
        states.append(state.value)
        if state is VolumeState.HAS_DATA:
            assert describe(volume) == expected, f"kill point {k}: the app would see a partial volume"
        rerun = lifeboat("restore", seaweed, {"data": volume}, tmp_path / f"rerun-{k}")
        assert rerun.code == 0, rerun.stderr
        assert describe(volume) == expected, f"kill point {k}"
        assert ".lifeboat-restore" not in top_level(volume)
    print(f"kill -9 sweep over {full:.2f}s restore: states at kill {states}")
    assert "empty" in states, "the sweep should have hit the download phase at least once"


def test_a_crash_between_the_renames_is_completed_by_the_rerun(seaweed: Store, tmp_path: Path) -> None:
    source = tmp_path / "source"
    make_volume(source)
    assert lifeboat("backup", seaweed, {"data": source}, tmp_path / "b").code == 0
    (snap,) = snapshots(seaweed, seaweed.repository("data"))
    volume = tmp_path / "vol"
    volume.mkdir()
    tree = vol.prepare(volume)
    restic(seaweed, seaweed.repository("data"), "restore", snap["id"], "--target", str(tree))
    capture.place(tree)  # as lifeboat restore does: SQLite captures back to their paths
    vol.commit(volume, {"snapshot": snap["id"], "files": 1, "bytes": 1})
    moved = sorted(os.listdir(tree))[:3]
    for name in moved:  # the crash came after three of the renames
        os.rename(tree / name, volume / name)
    assert vol.inspect(volume) is VolumeState.PENDING

    run = lifeboat(
        "restore", seaweed, {"data": volume}, tmp_path, env={"LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:9"}
    )
    assert run.code == 0, run.stderr  # finishing needs no store
    assert run.outcome("data")["outcome"] == "restored"
    assert run.outcome("data")["snapshot"] == snap["id"]
    assert describe(volume) == describe(source)
    assert ".lifeboat-restore" not in top_level(volume)


def test_two_racing_restores_on_one_volume_restore_once(seaweed: Store, tmp_path: Path) -> None:
    source = _big_source(tmp_path)
    assert lifeboat("backup", seaweed, {"data": source}, tmp_path / "b").code == 0
    volume = tmp_path / "shared-rwx"
    volume.mkdir()
    procs = [_start_restore(seaweed, volume, tmp_path / f"pod-{i}") for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    terms = sorted((tmp_path / f"pod-{i}" / "term").read_text() for i in range(2))
    assert terms[0].startswith("data: restored"), terms
    assert terms[1].startswith("data: skipped"), terms
    assert describe(volume) == describe(source)


@pytest.fixture
def own_seaweed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A SeaweedFS of this test's own, which the test may stop and start again."""
    server = devstore.seaweedfs(tmp_path_factory.mktemp("own-seaweed"), ACCESS_KEY, SECRET_KEY)
    server.start()
    yield server
    server.stop()


def test_store_down_during_the_retry_loop_then_back_restores(
    own_seaweed: devstore.S3Server, tmp_path: Path
) -> None:
    store = _new_store(own_seaweed)
    source = tmp_path / "source"
    make_volume(source)
    assert lifeboat("backup", store, {"data": source}, tmp_path / "b").code == 0
    own_seaweed.stop()

    volume = tmp_path / "vol"
    volume.mkdir()
    proc = _start_restore(store, volume, tmp_path / "run", LIFEBOAT_RESTORE_DEADLINE="0")
    time.sleep(3)
    assert proc.poll() is None, "with the store down the restore must wait, not finish"
    assert top_level(volume) == []
    own_seaweed.start()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert '"event": "restore.retry"' in stderr
    assert describe(volume) == describe(source)


def test_a_volsync_repository_restores_through_the_override(seaweed: Store, tmp_path: Path) -> None:
    # VolSync's restic mover runs `cd /data; restic backup --host volsync .` into its own repository
    data = tmp_path / "data"
    make_volume(data, seed=7)
    repository = f"s3:{seaweed.server.endpoint}/{seaweed.bucket}/volsync/myapp"
    restic(seaweed, repository, "init")
    restic(seaweed, repository, "backup", "--host", "volsync", ".", cwd=data)
    (snap,) = snapshots(seaweed, repository)
    assert snap["hostname"] == "volsync"

    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, "--repository", f"data={repository}")
    assert run.code == 0, run.stderr
    assert run.outcome("data")["snapshot"] == snap["id"]
    assert describe(volume) == describe(data)
    assert seaweed.keys("lifeboat/") == [], "the override must not touch Lifeboat's own prefix"

"""Locks on real restic + SeaweedFS: stale ones removed by restic's rules, live ones waited for.

"Another host" is a restic process in its own UTS namespace (`unshare --uts`, root) with its own
hostname, so restic on this host cannot see whether it still runs and must treat it as live.
"Another pod with our hostname" is a forged lock (tests/support/lockforge.py) with this hostname and
a PID that no process has here: restic's own rule would call it stale, Lifeboat must not.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sidecar.daemon.main import Sidecar, VolumeWorker
from sidecar.settings import VolumeSpec
from tests.conftest import RESTIC, Store
from tests.support.lockforge import forge_lock, pid_not_running_here
from tests.support.sidecar import fill, handover, locks, settings, snapshots

pytestmark = [
    pytest.mark.s3,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare"),
]


def worker(store: Store, tmp_path: Path, **extra: str) -> VolumeWorker:
    conf = settings(store, tmp_path, **extra)
    handover(conf.state_dir, data="skipped")
    volume = VolumeSpec(
        "data", fill(tmp_path / "vol") if not (tmp_path / "vol").exists() else tmp_path / "vol"
    )
    return Sidecar.from_settings([volume], conf).workers[0]


def elsewhere(store: Store, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """restic on "another host": its own UTS namespace, hostname `elsewhere`."""
    script = 'hostname elsewhere && exec "$@"'
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", script, "sh", RESTIC, *args],
        env=store.restic_env(store.repository("data")),
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def hold_exclusive_lock_then_die(store: Store, *, other_host: bool) -> None:
    """Starts `restic check` (exclusive lock), kills it with SIGKILL once it holds the lock."""
    if other_host:
        proc = elsewhere(store, "check")
    else:
        proc = subprocess.Popen(
            [RESTIC, "check"],
            env=store.restic_env(store.repository("data")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "load indexes" in line:  # printed after the lock was created
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(locks(store, "data")) == 1


def test_lock_of_a_killed_process_on_this_host_is_kept_until_30_minutes_old(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # restic's own rule (same hostname, PID not running) would remove it at once; Lifeboat cannot
    # tell a dead process of ours from a live one of another pod with the same hostname
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="3")
    assert w.backup().succeeded
    hold_exclusive_lock_then_die(seaweed, other_host=False)
    with caplog.at_level(logging.INFO):
        result = w.backup()
    assert result.result == "locked", result.message
    assert result.stale_locks_removed == 0
    assert len(locks(seaweed, "data")) == 1
    held = [r for r in caplog.records if getattr(r, "event", "") == "lock.held"]
    assert held and held[0].fields["lock_host"] == socket.gethostname()  # type: ignore[attr-defined]
    assert held[0].fields["stale_in_seconds"] > 25 * 60  # type: ignore[attr-defined]


def test_fresh_lock_with_our_hostname_and_a_pid_not_running_here_is_not_removed_and_the_backup_waits(
    seaweed: Store, tmp_path: Path
) -> None:
    # e.g. another hostNetwork pod on this node: same hostname, its own PID namespace, alive
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="3")
    assert w.backup().succeeded
    lock_id = forge_lock(seaweed, "data", hostname=socket.gethostname(), pid=pid_not_running_here())
    result = w.backup()
    assert result.result == "locked", result.message
    assert result.lock_wait >= 3
    assert locks(seaweed, "data") == [lock_id]
    assert len(snapshots(seaweed, "data")) == 1


def test_lock_with_our_hostname_over_30_minutes_old_is_removed_and_the_backup_succeeds(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="3")
    assert w.backup().succeeded
    forge_lock(
        seaweed,
        "data",
        hostname=socket.gethostname(),
        pid=pid_not_running_here(),
        age=dt.timedelta(minutes=31),
    )
    with caplog.at_level(logging.INFO):
        result = w.backup()
    assert result.result == "success", result.message
    assert result.stale_locks_removed == 1
    assert locks(seaweed, "data") == []
    assert any(getattr(r, "event", "") == "lock.stale_removed" for r in caplog.records)
    assert (
        'lifeboat_stale_locks_removed_total{namespace="apps",persistentvolumeclaim="data"} 1.0'
        in w.metrics.render().decode()
    )


def test_lock_of_another_host_is_respected_and_the_wait_is_measured(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="3")
    assert w.backup().succeeded
    hold_exclusive_lock_then_die(seaweed, other_host=True)
    with caplog.at_level(logging.INFO):
        result = w.backup()
    assert result.result == "locked"
    assert result.lock_wait >= 3
    assert len(locks(seaweed, "data")) == 1  # not ours to remove: restic cannot call it stale yet
    held = [r for r in caplog.records if getattr(r, "event", "") == "lock.held"]
    assert held and held[0].fields["lock_host"] == "elsewhere"  # type: ignore[attr-defined]
    text = w.metrics.render().decode()
    assert 'lifeboat_backups_total{namespace="apps",persistentvolumeclaim="data",result="locked"} 1.0' in text
    wait = w.metrics.lock_wait.labels("apps", "data", "backup")._value.get()
    assert wait >= 3


def test_lock_another_host_left_over_30_minutes_ago_is_stale_and_removed(
    seaweed: Store, tmp_path: Path
) -> None:
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="3")
    assert w.backup().succeeded
    lock_id = forge_lock(seaweed, "data", hostname="elsewhere", pid=4242, age=dt.timedelta(minutes=31))
    assert locks(seaweed, "data") == [lock_id]
    result = w.backup()
    assert result.result == "success", result.message
    assert result.stale_locks_removed == 1
    assert locks(seaweed, "data") == []


def test_exclusive_work_waits_for_a_running_backup_of_another_host(seaweed: Store, tmp_path: Path) -> None:
    # keep one: the second backup's forget has a snapshot to drop, so it runs (a forget that can
    # drop nothing is skipped without restic, sidecar.daemon.retention.removes_anything)
    w = worker(seaweed, tmp_path, LIFEBOAT_LOCK_RETRY="60", LIFEBOAT_RETENTION="last=1")
    assert w.backup().succeeded
    read_end, write_end = os.pipe()
    other = elsewhere(seaweed, "backup", "--stdin", "--stdin-filename", "dump.sql", stdin=read_end)
    os.close(read_end)
    os.write(write_end, b"-- a database dump that takes a while\n")
    while len(locks(seaweed, "data")) == 0:
        time.sleep(0.2)
    done: list[float] = []
    thread = threading.Thread(target=lambda: done.append(w.backup().lock_wait))
    thread.start()
    time.sleep(4)
    os.close(write_end)  # the other host's backup completes and releases its lock
    other.wait(timeout=60)
    thread.join(timeout=120)
    assert done == [0.0]  # a backup shares the repository with another backup
    forget_wait = w.metrics.lock_wait.labels("apps", "data", "forget")._value.get()
    assert forget_wait > 1  # forget (exclusive) waited for the other host's backup
    assert w.metrics.maintenance.labels("apps", "data", "forget", "skipped")._value.get() == 1  # 1 kept
    assert w.metrics.maintenance.labels("apps", "data", "forget", "success")._value.get() == 1
    assert locks(seaweed, "data") == []
    assert len(snapshots(seaweed, "data")) == 2  # last=1 per host: ours and the other host's

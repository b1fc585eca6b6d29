"""Which locks Lifeboat may remove: restic's age rule always, its host rule only on this pod's own
hostname (issue 9 item 13). Pure: locks are plain data, PIDs are looked up in this process's view."""

from __future__ import annotations

import datetime as dt
import os
import socket

from sidecar.edges.restic import Lock
from sidecar.locking import is_stale, own_lock_host

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process here


def lock(host: str, pid: int, minutes_old: float) -> Lock:
    return Lock(
        id="a" * 64,
        time=NOW - dt.timedelta(minutes=minutes_old),
        exclusive=True,
        hostname=host,
        pid=pid,
    )


def test_a_lock_older_than_30_minutes_is_stale_whatever_its_host() -> None:
    assert is_stale(lock("another-pod", os.getpid(), 31), NOW)


def test_a_fresh_lock_of_a_shared_hostname_is_never_stale_even_with_a_dead_pid() -> None:
    assert not is_stale(lock("node-1", DEAD_PID, 1), NOW, own_host=None)


def test_a_fresh_lock_of_this_pods_own_hostname_and_a_dead_pid_is_stale() -> None:
    assert is_stale(lock("web-0", DEAD_PID, 1), NOW, own_host="web-0")


def test_a_fresh_lock_of_this_pods_own_hostname_and_a_live_pid_is_not_stale() -> None:
    assert not is_stale(lock("web-0", os.getpid(), 1), NOW, own_host="web-0")


def test_the_hostname_is_the_pods_own_only_when_it_equals_the_pod_name() -> None:
    assert own_lock_host(socket.gethostname()) == socket.gethostname()
    assert own_lock_host("some-other-pod") is None  # hostNetwork or a fixed spec.hostname
    assert own_lock_host(None) is None


def test_a_zombie_restic_of_this_pod_holds_no_lock() -> None:
    import subprocess
    import time

    child = subprocess.Popen(["true"])  # exits at once and stays a zombie until it is reaped
    time.sleep(0.5)
    try:
        assert is_stale(lock("web-0", child.pid, 1), NOW, own_host="web-0")
    finally:
        child.wait()

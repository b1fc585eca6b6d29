"""Repository locks: remove only what is provably dead, wait (measured) for everything else.

Stale locks silently stopping backups for weeks is the anchors' most reported failure
(volsync#1042, k8up#456), and a live lock removed by mistake is worse: a prune then runs beside a
backup and deletes data the new snapshot needs. restic (0.19, `internal/restic/lock.go`) calls a
lock stale when it is older than 30 minutes (`StaleLockTimeout`), or when it carries this
machine's hostname and its PID cannot be signalled. The second rule is wrong in Kubernetes:
hostnames collide across PID namespaces (hostNetwork pods share the node's name, a fixed
`spec.hostname`, a StatefulSet pod of the same name in another cluster writing to the same
repository), and a lock carries only time, exclusive, hostname, username, PID, UID and GID, so
nothing tells a dead process of ours from a live one in another pod. restic offers no way to set
the lock hostname (`os.Hostname()`; `--host` names snapshots only), and `restic unlock` removes
every lock its rules call stale in one pass, including one created a moment after we looked.

So Lifeboat never runs `restic unlock`. When restic answers "locked" (exit 11) it lists the locks
(cheap, no lock taken) and deletes, one by one by id (`Restic.remove_lock`), those older than
the 30 minutes, and those restic's host rule may fairly judge: a lock carrying this pod's own
hostname, proven unique because it equals the pod's name (`LIFEBOAT_POD_NAME`: no hostNetwork, no
fixed `spec.hostname`; pod names are unique in a namespace, and only a namespace's pods share its
repositories), whose PID no process of ours has — a restic of an earlier run of this container,
killed with -9 or OOM, so a killed prune does not hold backups up for half an hour. The restore
container and the sidecar never run restic at the same time (the sidecar starts after the restore).
The age rule is safe whatever the host: a live restic refreshes its lock every 5 minutes and aborts
its own operation when it could not refresh for 22.5 minutes (`refreshabilityTimeout`,
`internal/repository/lock.go`), so no running process holds a lock older than 30 minutes. Lock
files are content-addressed and never rewritten (a refresh writes a new file), so the id names
exactly the lock that was judged. Every other lock, including one with our hostname when that
hostname is not provably ours (hostNetwork, a fixed `spec.hostname`), is waited for, retrying, and
the seconds spent are reported (`lifeboat_lock_wait_seconds_total`), so slow contention is seen
long before it becomes a missed backup. `--remove-all` is never used.
The common, unlocked case costs nothing: locks are only looked at after exit 11.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lifeboat.logs import event
from sidecar.edges.restic import Failure, Lock, Restic, ResticError

log = logging.getLogger(__name__)

T = TypeVar("T")

# restic's StaleLockTimeout (internal/restic/lock.go, restic 0.19)
STALE_AFTER = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class LockWait:
    """How long an operation waited for other processes' locks, and what still blocks it."""

    waited: float
    removed: tuple[Lock, ...] = ()


class LockedOut(ResticError):
    """Live locks kept the operation out for longer than its patience; `waited` says how long."""

    def __init__(self, operation: str, message: str, waited: float) -> None:
        super().__init__(operation, Failure.LOCKED, 11, message)
        self.waited = waited


def _describe(lock: Lock, now: dt.datetime) -> dict[str, Any]:
    return {
        "lock": lock.id[:8],
        "lock_host": lock.hostname,
        "lock_pid": lock.pid,
        "exclusive": lock.exclusive,
        "age_seconds": round((now - lock.time).total_seconds(), 1),
        # when Lifeboat will call it stale, unless its holder refreshes or releases it first
        "stale_in_seconds": round(max(0.0, (lock.time + STALE_AFTER - now).total_seconds()), 1),
    }


def own_lock_host(pod_name: str | None) -> str | None:
    """This pod's hostname when it is provably the pod's own: it equals the pod's name (no hostNetwork,
    no fixed spec.hostname). restic writes the hostname into its locks."""
    hostname = socket.gethostname()
    return hostname if pod_name and hostname == pod_name else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: a process we may not signal is still a process
        return True
    try:  # a killed restic whose parent died too may linger as a zombie: it holds nothing
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def is_stale(lock: Lock, now: dt.datetime, own_host: str | None = None) -> bool:
    """Not refreshed for over 30 minutes (restic's age rule); or this pod's own lock (its hostname
    is `own_host`, proven unique to the pod) whose process is gone."""
    if now - lock.time > STALE_AFTER:
        return True
    return own_host is not None and lock.hostname == own_host and lock.pid > 0 and not _pid_alive(lock.pid)


def remove_stale(restic: Restic, pvc: str) -> tuple[list[Lock], list[Lock]]:
    """Deletes the locks older than restic's stale threshold; returns (removed, remaining).

    Never runs `restic unlock`: its same-hostname rule would also remove a live lock of another pod
    whose hostname equals ours; the host rule applies only to `restic.own_host` (module docstring)."""
    before = restic.locks()
    now = dt.datetime.now(dt.UTC)
    removed: list[Lock] = []
    remaining: list[Lock] = []
    for lock in before:
        if not is_stale(lock, now, restic.own_host):
            remaining.append(lock)
            continue
        restic.remove_lock(lock.id)
        removed.append(lock)
        event(log, "lock.stale_removed", logging.WARNING, pvc=pvc, **_describe(lock, now))
    return removed, remaining


def run_locked(
    restic: Restic,
    pvc: str,
    operation: str,
    action: Callable[[], T],
    *,
    patience: float,
    poll: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[T, LockWait]:
    """Runs `action` (one restic call); while restic answers "locked" (exit 11), removes locks older
    than restic's stale threshold and retries, waiting up to `patience` seconds for the others.
    Returns the action's result and the wait. Raises the last ResticError(LOCKED) when patience runs out, and
    ResticError(INTERRUPTED) when the handle's cancel token is set while waiting.

    Optimistic on purpose: every restic start costs a key derivation (~0.5 s of CPU), so the common
    unlocked case pays nothing extra; the handle must not use restic's own `--retry-lock`
    (`lock_retry=0`), or the wait would be hidden inside restic and not measured.
    """
    started: float | None = None
    removed: list[Lock] = []
    while True:
        try:
            value = action()
        except ResticError as exc:
            if exc.failure is not Failure.LOCKED:
                raise
            now = clock()
            if started is None:
                started = now
            gone, remaining = remove_stale(restic, pvc)
            removed += gone
            if gone:
                continue  # a stale lock was in the way: try again at once
            waited = now - started
            if waited >= patience:
                stamp = dt.datetime.now(dt.UTC)
                for lock in remaining:
                    fields = _describe(lock, stamp)
                    event(log, "lock.held", logging.WARNING, pvc=pvc, operation=operation, **fields)
                raise LockedOut(operation, exc.message, waited) from None
            if waited == 0 and remaining:
                fields = _describe(remaining[0], dt.datetime.now(dt.UTC))
                event(log, "lock.waiting", pvc=pvc, operation=operation, **fields)
            if restic.cancel.wait(min(poll, max(0.05, patience - waited))):
                raise ResticError(
                    operation, Failure.INTERRUPTED, None, "cancelled while waiting for a lock"
                ) from None
            continue
        waited = 0.0 if started is None else clock() - started
        if started is not None:
            event(log, "lock.acquired", pvc=pvc, operation=operation, waited_seconds=round(waited, 3))
        return value, LockWait(waited=waited, removed=tuple(removed))

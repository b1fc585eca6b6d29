"""Repository locks: remove what restic itself calls stale, wait (measured) for what is live.

Stale locks silently stopping backups for weeks is the anchors' most reported failure
(volsync#1042, k8up#456). restic never skips a stale lock when it locks, but `restic unlock`
(without `--remove-all`) removes exactly the stale ones by restic's own rules: older than 30 minutes
without a refresh, or created on this hostname by a process that no longer exists. So before every
operation Lifeboat lists the locks (cheap, no lock taken) and, only if some exist, runs `restic
unlock` and reports what disappeared (`lock.stale_removed`). A live lock, e.g. another pod's backup
or prune, is never removed: the operation waits for it, retrying, and the seconds spent waiting are
reported (`lifeboat_lock_wait_seconds_total`), so slow contention is seen
long before it becomes a missed backup. `--remove-all` is never used on Lifeboat's own initiative.
Locks are only looked at when restic says "locked" (exit 11): the common case costs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lifeboat.logs import event
from sidecar.edges.restic import Failure, Lock, Restic, ResticError

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    }


def remove_stale(restic: Restic, pvc: str) -> tuple[list[Lock], list[Lock]]:
    """Runs `restic unlock` (stale locks only) when any lock exists; returns (removed, remaining)."""
    before = restic.locks()
    if not before:
        return [], []
    restic.unlock()
    after = restic.locks()
    left = {lock.id for lock in after}
    removed = [lock for lock in before if lock.id not in left]
    now = dt.datetime.now(dt.UTC)
    for lock in removed:
        event(log, "lock.stale_removed", logging.WARNING, pvc=pvc, **_describe(lock, now))
    return removed, after


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
    """Runs `action` (one restic call); while restic answers "locked" (exit 11), removes stale
    locks and retries, waiting up to `patience` seconds for live ones. Returns the action's result
    and the wait. Raises the last ResticError(LOCKED) when patience runs out, and
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

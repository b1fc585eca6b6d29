"""Repository locks: remove what restic itself calls stale, wait (measured) for what is live.

Stale locks silently stopping backups for weeks is the anchors' most reported failure
(volsync#1042, k8up#456). restic never skips a stale lock when it locks, but `restic unlock`
(without `--remove-all`) removes exactly the stale ones by restic's own rules: older than 30 minutes
without a refresh, or created on this hostname by a process that no longer exists. So before every
operation Lifeboat lists the locks (cheap, no lock taken) and, only if some exist, runs `restic
unlock` and reports what disappeared (`lock.stale_removed`). A live lock, e.g. another pod's backup
or prune, is never removed: exclusive work (forget, prune, check) waits for it, polling, and the
seconds spent waiting are reported (`lifeboat_lock_wait_seconds_total`), so slow contention is seen
long before it becomes a missed backup. `--remove-all` is never used on Lifeboat's own initiative.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.logs import event
from sidecar.restic import Failure, Lock, Restic, ResticError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockWait:
    """How long an operation waited for other processes' locks, and what still blocks it."""

    waited: float
    removed: tuple[Lock, ...] = ()
    blocking: tuple[Lock, ...] = ()

    @property
    def clear(self) -> bool:
        return not self.blocking


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


def conflicting(locks: list[Lock], *, exclusive: bool) -> list[Lock]:
    """The locks that keep an operation out: any lock for exclusive work, exclusive ones otherwise."""
    return [lock for lock in locks if exclusive or lock.exclusive]


def await_locks(
    restic: Restic,
    pvc: str,
    operation: str,
    *,
    exclusive: bool,
    patience: float,
    poll: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> LockWait:
    """Clears stale locks, then waits up to `patience` seconds for live conflicting ones to go.

    Raises ResticError(INTERRUPTED) when the handle's cancel token is set while waiting.
    """
    started = clock()
    removed: list[Lock] = []
    announced = False
    while True:
        gone, remaining = remove_stale(restic, pvc)
        removed += gone
        blocking = conflicting(remaining, exclusive=exclusive)
        waited = clock() - started
        if not blocking or waited >= patience:
            if blocking:
                now = dt.datetime.now(dt.UTC)
                for lock in blocking:
                    event(
                        log,
                        "lock.held",
                        logging.WARNING,
                        pvc=pvc,
                        operation=operation,
                        **_describe(lock, now),
                    )
            elif announced:
                event(log, "lock.acquired", pvc=pvc, operation=operation, waited_seconds=round(waited, 3))
            return LockWait(waited=waited, removed=tuple(removed), blocking=tuple(blocking))
        if not announced:
            now = dt.datetime.now(dt.UTC)
            event(log, "lock.waiting", pvc=pvc, operation=operation, **_describe(blocking[0], now))
            announced = True
        if restic.cancel.wait(min(poll, max(0.0, patience - waited))):
            raise ResticError(operation, Failure.INTERRUPTED, None, "cancelled while waiting for a lock")

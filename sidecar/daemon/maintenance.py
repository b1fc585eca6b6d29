"""Repository upkeep after backups: forget by the retention policy, prune, and check.

All three need restic's exclusive lock, so each first clears stale locks and waits (measured) for
live ones (sidecar.locking), and each stops cleanly when cancelled (SIGTERM: restic gets SIGINT,
removes its lock, and a prune interrupted between its steps leaves a repository the next prune
finishes; kill -9 is covered by the tests' sweeps).

Two sidecars can share one repository (an RWX volume mounted by several pods). `forget` is
idempotent, so both may run it. Prune and check are not worth doing twice, so only the *leader*
does them: the sidecar that wrote the newest snapshot. Every sidecar can tell from the snapshot list
alone, without talking to the others, and exactly one of them holds the newest snapshot; a sidecar
that has not written any snapshot (e.g. blocked by the guard) never prunes a history it does not own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from lifeboat.logs import event
from sidecar.edges.restic import CheckResult, Failure, ForgetResult, Restic, ResticError, Snapshot
from sidecar.locking import LockedOut, run_locked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintenance:
    """The outcome of one forget, prune or check. `result` is the metric label."""

    operation: str
    result: str  # success | failed | skipped | locked | cancelled
    lock_wait: float = 0.0
    stale_locks_removed: int = 0
    seconds: float = 0.0
    forget: ForgetResult | None = None
    check: CheckResult | None = None
    snapshots: int | None = None
    message: str = ""


def is_leader(snapshots: list[Snapshot], own: Collection[str]) -> bool:
    """True when the newest snapshot in the repository is one this sidecar wrote."""
    if not snapshots or not own:
        return False
    newest = max(snapshots, key=lambda s: s.time)
    return newest.id in own


def _failed(operation: str, pvc: str, exc: ResticError, started: float) -> Maintenance:
    result = "cancelled" if exc.failure in (Failure.INTERRUPTED, Failure.TIMEOUT) else "failed"
    if exc.failure is Failure.LOCKED:
        result = "locked"
    event(log, f"{operation}.{result}", logging.WARNING, pvc=pvc, failure=exc.failure.value, error=str(exc))
    waited = exc.waited if isinstance(exc, LockedOut) else 0.0
    return Maintenance(
        operation, result, lock_wait=waited, seconds=time.monotonic() - started, message=str(exc)
    )


def forget(restic: Restic, pvc: str, policy: Mapping[str, int], *, patience: float) -> Maintenance:
    """`restic forget` of Lifeboat's snapshots by `policy`; data is freed later by prune."""
    started = time.monotonic()
    try:
        outcome, wait = run_locked(
            restic, pvc, "forget", lambda: restic.forget(policy, tags=["lifeboat"]), patience=patience
        )
    except ResticError as exc:
        return _failed("forget", pvc, exc, started)
    seconds = time.monotonic() - started
    event(
        log,
        "forget.finished",
        pvc=pvc,
        kept=outcome.kept,
        removed=outcome.removed,
        lock_wait_seconds=round(wait.waited, 3),
    )
    return Maintenance(
        "forget",
        "success",
        lock_wait=wait.waited,
        stale_locks_removed=len(wait.removed),
        seconds=seconds,
        forget=outcome,
        snapshots=outcome.kept,
    )


def prune(restic: Restic, pvc: str, own: Collection[str], *, patience: float) -> Maintenance:
    """`restic prune`, by the leader only (see the module docstring)."""
    started = time.monotonic()
    try:
        if not own or not is_leader(restic.snapshots(), own):
            event(log, "prune.skipped", pvc=pvc, reason="another sidecar wrote the newest snapshot")
            return Maintenance("prune", "skipped", message="not the leader")
        _, wait = run_locked(restic, pvc, "prune", restic.prune, patience=patience)
    except ResticError as exc:
        return _failed("prune", pvc, exc, started)
    seconds = time.monotonic() - started
    event(log, "prune.finished", pvc=pvc, seconds=round(seconds, 3), lock_wait_seconds=round(wait.waited, 3))
    return Maintenance(
        "prune", "success", lock_wait=wait.waited, stale_locks_removed=len(wait.removed), seconds=seconds
    )


def check(
    restic: Restic, pvc: str, own: Collection[str], *, read_data_subset: str | None, patience: float
) -> Maintenance:
    """`restic check --read-data-subset`, by the leader only; a failed check is a `failed` result."""
    started = time.monotonic()
    try:
        if not own or not is_leader(restic.snapshots(), own):
            event(log, "check.skipped", pvc=pvc, reason="another sidecar wrote the newest snapshot")
            return Maintenance("check", "skipped", message="not the leader")
        outcome, wait = run_locked(
            restic, pvc, "check", lambda: restic.check(read_data_subset=read_data_subset), patience=patience
        )
    except ResticError as exc:
        return _failed("check", pvc, exc, started)
    seconds = time.monotonic() - started
    result = "success" if outcome.ok else "failed"
    level = logging.INFO if outcome.ok else logging.ERROR
    name = "check.finished" if outcome.ok else "check.failed"
    event(
        log, name, level, pvc=pvc, message=outcome.message, seconds=round(seconds, 3), subset=read_data_subset
    )
    return Maintenance(
        "check",
        result,
        lock_wait=wait.waited,
        stale_locks_removed=len(wait.removed),
        seconds=seconds,
        check=outcome,
        message=outcome.message,
    )

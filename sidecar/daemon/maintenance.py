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

A forget that would remove nothing is not run at all (result `skipped`, log `forget.skipped`):
the caller passes the repository's snapshot list when it knows it exactly (sidecar.backup.guarded:
the store's listing of snapshot ids matches it) and restic's own policy, applied to that list
(sidecar.daemon.retention.plan), keeps every snapshot. That is most forgets (a young history, a
daily schedule between two days) and saves two restic starts each. It asks neither the breaker
nor the store's clock: restic's keep rules do not depend on `now`, only on the snapshots' own
times. Whenever something could go, restic decides what, behind the breaker, as before.

Forget and prune go through the retention breaker first (sidecar.daemon.breaker): the store's clock
is compared with ours, `restic forget --dry-run` says what would go, and a refusal (result
`refused`, log `retention.refused`) holds both until a later dry-run passes. Backups never wait
for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from lifeboat.contract import render_retention
from lifeboat.logs import event
from sidecar.daemon.breaker import DEFAULT_BOUNDS, Bounds, Reason, Verdict, judge_clock, judge_forget
from sidecar.daemon.retention import removes_anything
from sidecar.edges.clock import StoreTimeUnavailable
from sidecar.edges.restic import CheckResult, Failure, ForgetResult, Restic, ResticError, Snapshot
from sidecar.locking import LockedOut, run_locked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintenance:
    """The outcome of one forget, prune or check. `result` is the metric label."""

    operation: str
    result: str  # success | failed | skipped | locked | cancelled | refused (by the breaker)
    lock_wait: float = 0.0
    stale_locks_removed: int = 0
    seconds: float = 0.0
    forget: ForgetResult | None = None
    check: CheckResult | None = None
    snapshots: int | None = None
    message: str = ""
    breaker: Verdict | None = None  # the retention breaker's verdict, when it was asked
    dry_run_seconds: float = 0.0  # what the breaker's clock check and dry-run cost


@dataclass(frozen=True)
class Breaker:
    """What the retention breaker needs for one forget or prune (see sidecar.daemon.breaker)."""

    clock: Callable[[], float]  # this sidecar's clock, Unix seconds
    store_time: Callable[[], dt.datetime]  # the store's clock; raises StoreTimeUnavailable
    ack: dt.datetime | None = None  # lifeboat.dev/retention-ack, when given
    bounds: Bounds = DEFAULT_BOUNDS


def ask_breaker(restic: Restic, policy: Mapping[str, int], breaker: Breaker) -> Verdict:
    """The clock check, then `forget --dry-run` judged by the breaker; ResticError propagates."""
    try:
        store: dt.datetime | None = breaker.store_time()
        error = ""
    except StoreTimeUnavailable as exc:
        store, error = None, str(exc)
    local = dt.datetime.fromtimestamp(breaker.clock(), dt.UTC)
    clock = judge_clock(local, store, breaker.bounds, error=error)
    if not clock.allowed:
        return clock
    plan = restic.forget_plan(policy, tags=["lifeboat"])
    verdict = judge_forget(
        plan.keep, plan.remove, policy=policy, now=local, ack=breaker.ack, bounds=breaker.bounds
    )
    return replace(verdict, skew_seconds=clock.skew_seconds)


def _judged(
    operation: str, pvc: str, restic: Restic, policy: Mapping[str, int], breaker: Breaker
) -> tuple[Verdict, float]:
    started = time.monotonic()
    verdict = ask_breaker(restic, policy, breaker)
    seconds = time.monotonic() - started
    fields = {
        "pvc": pvc,
        "operation": operation,
        "reasons": [r.value for r in verdict.reasons],
        "message": verdict.message,
        "retention": render_retention(policy),
        "skew_seconds": None if verdict.skew_seconds is None else round(verdict.skew_seconds, 1),
        **({} if verdict.reason in _CLOCK_ONLY else verdict.figures()),
    }
    if not verdict.allowed:
        event(log, "retention.refused", logging.ERROR, **fields)
    elif verdict.acknowledged:
        event(log, "retention.acknowledged", logging.WARNING, **fields)
    return verdict, seconds


def _refused(operation: str, verdict: Verdict, seconds: float) -> Maintenance:
    return Maintenance(
        operation,
        "refused",
        breaker=verdict,
        message=verdict.message,
        dry_run_seconds=seconds,
        seconds=seconds,
    )


_CLOCK_ONLY = (Reason.CLOCK_SKEW, Reason.CLOCK_UNKNOWN)


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


def forget(
    restic: Restic,
    pvc: str,
    policy: Mapping[str, int],
    *,
    patience: float,
    breaker: Breaker | None = None,
    known: Sequence[Snapshot] | None = None,
) -> Maintenance:
    """`restic forget` of Lifeboat's snapshots by `policy`, once the breaker lets it through (when
    given one); data is freed later by prune. `known`: the repository's exact snapshot list, when
    the caller has it; a forget that would remove nothing from it is skipped."""
    started = time.monotonic()
    if known is not None and not removes_anything(known, policy):
        ours = sum(1 for s in known if "lifeboat" in s.tags)
        event(
            log, "forget.skipped", pvc=pvc, snapshots=ours, reason="the retention policy keeps every snapshot"
        )
        return Maintenance("forget", "skipped", snapshots=ours, message="nothing to remove")
    verdict: Verdict | None = None
    judged = 0.0
    try:
        if breaker is not None:
            verdict, judged = _judged("forget", pvc, restic, policy, breaker)
            if not verdict.allowed:
                return _refused("forget", verdict, judged)
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
        breaker_seconds=round(judged, 3),
    )
    return Maintenance(
        "forget",
        "success",
        lock_wait=wait.waited,
        stale_locks_removed=len(wait.removed),
        seconds=seconds,
        forget=outcome,
        snapshots=outcome.kept,
        breaker=verdict,
        dry_run_seconds=judged,
    )


def prune(
    restic: Restic,
    pvc: str,
    own: Collection[str],
    *,
    patience: float,
    policy: Mapping[str, int] | None = None,
    breaker: Breaker | None = None,
) -> Maintenance:
    """`restic prune`, by the leader only (see the module docstring), and only while the breaker
    (when given one, with the retention `policy`) would let a forget through: prune is what makes
    a forget final."""
    started = time.monotonic()
    verdict: Verdict | None = None
    try:
        if not own or not is_leader(restic.snapshots(), own):
            event(log, "prune.skipped", pvc=pvc, reason="another sidecar wrote the newest snapshot")
            return Maintenance("prune", "skipped", message="not the leader")
        if breaker is not None and policy:
            verdict, judged = _judged("prune", pvc, restic, policy, breaker)
            if not verdict.allowed:
                return _refused("prune", verdict, judged)
        _, wait = run_locked(restic, pvc, "prune", restic.prune, patience=patience)
    except ResticError as exc:
        return _failed("prune", pvc, exc, started)
    seconds = time.monotonic() - started
    event(log, "prune.finished", pvc=pvc, seconds=round(seconds, 3), lock_wait_seconds=round(wait.waited, 3))
    return Maintenance(
        "prune",
        "success",
        lock_wait=wait.waited,
        stale_locks_removed=len(wait.removed),
        seconds=seconds,
        breaker=verdict,
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

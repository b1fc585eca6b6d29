"""The one backup path, for the sidecar and `lifeboat backup` alike: guard rails, locks, restic.

Every run measures the volume, reads the repository's history (`restic snapshots`), asks the guard
(sidecar.backup.guard: never an empty, shrunken or foreign volume over real history) and only then backs
up, under the lock handling of sidecar.locking (stale locks removed by restic's own rules, live
ones waited for and measured). Snapshots carry a stable identity (sidecar.identity): host
`lifeboat`, tags for namespace, PVC and PVC UID, so restarts continue one history and a rebuilt
cluster finds it by name. It never raises for restic or volume trouble: the result says what happened,
and its `result` field is the metric label.

This module is imported by the idle process, so it stays light: creating a repository (the store
probe, boto3) is a callable the caller passes in and only runs when restic says there is none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from lifeboat.exitcodes import EX_NOPERM, EX_OK, EX_TEMPFAIL
from lifeboat.logs import event
from sidecar.backup.guard import GuardInput, History, Verdict, VolumeFacts, decide
from sidecar.edges.restic import BackupSummary, Failure, Restic, ResticError, Snapshot
from sidecar.edges.store import StoreProbe, StoreState
from sidecar.edges.usage import measure
from sidecar.identity import SNAPSHOT_HOST, tags_for
from sidecar.locking import LockedOut, run_locked
from sidecar.repository import Repository
from sidecar.runtime import VolumeTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardPolicy:
    """The guard rails' knobs: LIFEBOAT_ADOPT and LIFEBOAT_SHRINK_LIMIT."""

    adopt: bool = False
    shrink_limit: float = 0.5


@dataclass(frozen=True)
class GuardedBackup:
    """What one scheduled (or final) backup did. `result` is the metric label."""

    pvc: str
    result: str  # success | incomplete | blocked | locked | failed | cancelled
    summary: BackupSummary | None = None
    verdict: Verdict | None = None
    volume: VolumeFacts | None = None
    snapshots_before: int = 0
    lock_wait: float = 0.0
    stale_locks_removed: int = 0
    initialized: bool = False
    failure: Failure | None = None
    message: str = ""
    store_code: int = 0  # the exit code the store probe gave when the repository could not be made

    @property
    def succeeded(self) -> bool:
        return self.result in ("success", "incomplete")


def ensure_repository(probe: StoreProbe, restic: Restic, repository: Repository) -> tuple[bool, int, str]:
    """Makes sure a repository exists. Returns (initialized now, exit code, explanation).

    The repository is created here and nowhere else, and only when the store probe positively says
    no repository exists at the PVC's prefix (rule 2 applied to writes: a missing bucket or a refused
    credential never leads to a second repository being started beside the real one).
    """
    state, text = probe.probe(repository)
    if state is StoreState.REPOSITORY:
        return False, EX_OK, text
    if state is StoreState.NO_REPOSITORY:
        restic.init()
        return True, EX_OK, f"initialised a new repository at {repository.url}"
    if state is StoreState.DENIED:
        return False, EX_NOPERM, text
    return False, EX_TEMPFAIL, text


def history_of(snapshots: list[Snapshot]) -> History:
    """What the guard needs to know about a repository's snapshots: the newest one's size and UIDs."""
    if not snapshots:
        return History(snapshots=0)
    latest = max(snapshots, key=lambda s: s.time)
    uids = tuple(t.removeprefix("pvc-uid=") for t in latest.tags if t.startswith("pvc-uid="))
    return History(
        snapshots=len(snapshots), latest_files=latest.files, latest_bytes=latest.bytes, latest_uids=uids
    )


def guarded_backup(
    namespace: str,
    volume: VolumeTarget,
    restic: Restic,
    *,
    outcome: str | None,
    policy: GuardPolicy,
    backed_up: bool = False,
    ensure: Callable[[], tuple[bool, int, str]],
    lock_patience: float,
    timeout: float | None = None,
    deadline: Callable[[], float] | None = None,
) -> GuardedBackup:
    """Measure, read the history, ask the guard, wait for locks, back up. Never raises for restic.

    `ensure` creates the repository when restic says there is none; it is the store probe's job to
    say so positively (boto3 is only imported then). `deadline`, when given, returns the seconds
    left for the whole operation (the final backup's budget).
    """
    pvc = volume.pvc
    initialized = False
    try:
        facts = measure(volume.path)
        try:
            snapshots = restic.snapshots()
        except ResticError as exc:
            if exc.failure is not Failure.NO_REPOSITORY:
                raise
            initialized, code, text = ensure()
            if code != 0:
                event(log, "backup.store_unavailable", logging.WARNING, pvc=pvc, reason=text)
                return GuardedBackup(
                    pvc, "failed", volume=facts, message=text, failure=Failure.FATAL, store_code=code
                )
            if initialized:
                event(log, "repository.initialized", pvc=pvc, repository=restic.repository)
            snapshots = []
        history = history_of(snapshots)
        verdict = decide(
            GuardInput(
                outcome=outcome,
                volume=facts,
                history=history,
                pvc_uid=volume.pvc_uid,
                adopt=policy.adopt,
                shrink_limit=policy.shrink_limit,
                backed_up=backed_up,
            )
        )
        if not verdict.allowed:
            assert verdict.reason is not None
            event(
                log,
                "guard.blocked",
                logging.ERROR,
                pvc=pvc,
                reason=verdict.reason.value,
                explanation=verdict.explanation,
                volume_files=facts.files,
                volume_bytes=facts.bytes,
                snapshot_files=history.latest_files,
                snapshot_bytes=history.latest_bytes,
            )
            return GuardedBackup(
                pvc,
                "blocked",
                verdict=verdict,
                volume=facts,
                snapshots_before=history.snapshots,
                message=verdict.explanation,
            )
        if verdict.adopted:
            event(log, "guard.adopted", logging.WARNING, pvc=pvc, explanation=verdict.explanation)
        patience = lock_patience if deadline is None else min(lock_patience, max(0.0, deadline()))
        budget = timeout if deadline is None else max(1.0, deadline())
        summary, wait = run_locked(
            restic,
            pvc,
            "backup",
            lambda: restic.backup(
                volume.path, host=SNAPSHOT_HOST, tags=tags_for(namespace, pvc, volume.pvc_uid), timeout=budget
            ),
            patience=patience,
        )
    except ResticError as exc:
        result = "cancelled" if exc.failure in (Failure.INTERRUPTED, Failure.TIMEOUT) else "failed"
        if exc.failure is Failure.LOCKED:
            result = "locked"
        level = logging.WARNING if result == "cancelled" else logging.ERROR
        event(log, f"backup.{result}", level, pvc=pvc, failure=exc.failure.value, error=str(exc))
        waited = exc.waited if isinstance(exc, LockedOut) else 0.0
        return GuardedBackup(
            pvc, result, initialized=initialized, failure=exc.failure, message=str(exc), lock_wait=waited
        )
    except OSError as exc:
        event(log, "backup.failed", logging.ERROR, pvc=pvc, failure="volume", error=str(exc))
        return GuardedBackup(pvc, "failed", failure=Failure.FATAL, message=str(exc))
    result = "incomplete" if summary.incomplete else "success"
    event(
        log,
        "backup.finished",
        pvc=pvc,
        result=result,
        snapshot=summary.snapshot_id,
        files=summary.total_files,
        bytes=summary.total_bytes,
        added_bytes=summary.data_added,
        seconds=summary.seconds,
        lock_wait_seconds=round(wait.waited, 3),
    )
    return GuardedBackup(
        pvc,
        result,
        summary=summary,
        verdict=verdict,
        volume=facts,
        snapshots_before=history.snapshots,
        lock_wait=wait.waited,
        stale_locks_removed=len(wait.removed),
        initialized=initialized,
        message=f"snapshot {summary.snapshot_id}",
    )


def claim_history(volume: VolumeTarget, restic: Restic, *, patience: float) -> str | None:
    """After a restore into a new volume instance, adds its `pvc-uid=` tag to the newest snapshot.

    The guard reads the UIDs on the newest snapshot to tell "this volume, restarted" from "another
    volume". A restored volume continues the history, but until its first backup finishes (which
    re-reads every restored file: minutes to hours on a large volume) the newest snapshot only names
    the old instance, and a pod restart in that window would look like a conflict. Tagging takes
    seconds (restic rewrites the snapshot's metadata, no data) and closes that window. Returns the
    rewritten snapshot's id, or None when there was nothing to claim. Raises ResticError.
    """
    if not volume.pvc_uid:
        return None
    snapshots = restic.snapshots()
    if not snapshots:
        return None
    newest = max(snapshots, key=lambda s: s.time)
    if f"pvc-uid={volume.pvc_uid}" in newest.tags:
        return None
    tag = f"pvc-uid={volume.pvc_uid}"
    new_id, _ = run_locked(
        restic, volume.pvc, "tag", lambda: restic.tag(newest.id, add=[tag]), patience=patience
    )
    event(log, "history.claimed", pvc=volume.pvc, snapshot=newest.short_id, new_snapshot=new_id, tag=tag)
    return new_id

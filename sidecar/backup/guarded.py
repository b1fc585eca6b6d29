"""The one backup path, for the sidecar and `lifeboat backup` alike: guard rails, locks, restic.

Every run measures the volume, reads the repository's history (`restic snapshots`), asks the guard
(sidecar.backup.guard: never an empty, shrunken or foreign volume over real history) and only then backs
up, under the lock handling of sidecar.locking (stale locks removed by restic's own rules, live
ones waited for and measured). Snapshots carry a stable identity (sidecar.identity): host
`lifeboat`, tags for namespace, PVC and PVC UID, so restarts continue one history and a rebuilt
cluster finds it by name. It never raises for restic or volume trouble: the result says what happened,
and its `result` field is the metric label.

SQLite databases on the volume (found by the same walk that measures it) are captured through
SQLite's own locking just before restic runs and stored in the same snapshot (sidecar.edges.capture);
one that cannot be captured is stored as it is and makes the result `incomplete`, never silently torn.
The data directory of a live database server is reported: a file-level copy of it is not consistent.

This module is imported by the idle process, so it stays light: creating a repository (the store
probe, boto3) is a callable the caller passes in and only runs when restic says there is none.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lifeboat.exitcodes import EX_NOPERM, EX_OK, EX_TEMPFAIL
from lifeboat.logs import event
from sidecar.backup.guard import GuardInput, History, Verdict, VolumeFacts, decide
from sidecar.edges.capture import Capture, capture, clean
from sidecar.edges.restic import BackupSummary, Failure, Restic, ResticError, Snapshot
from sidecar.edges.store import INIT_CLAIM, StoreError, StoreProbe, StoreState
from sidecar.edges.usage import IGNORED_AT_ROOT, survey
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
class CapturePolicy:
    """SQLite captures: how long to wait for a writer's lock, how long all captures may take."""

    busy_seconds: float = 30.0
    timeout: float = 900.0


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
    capture: Capture = field(default_factory=Capture)
    servers: tuple[tuple[str, str], ...] = ()  # (directory, engine) of live server data on the volume
    unreadable: int = 0  # paths restic could not read (`incomplete`); lost+found at the root not counted

    @property
    def succeeded(self) -> bool:
        """A complete snapshot was written. `incomplete` is not a success: a snapshot was written
        but lacks files, so last-success does not advance and retention does not run."""
        return self.result == "success"

    @property
    def wrote_snapshot(self) -> bool:
        """A snapshot was written, complete or not (it is the newest one now)."""
        return self.summary is not None and self.summary.snapshot_id is not None


# Creating a repository (issue 9 item 7). restic 0.19's `init` checks that no config, key or snapshot
# exists, then writes `keys/<id>` and only then `config`: two inits racing on one prefix both pass
# the checks, and whichever config lands last is sealed with one process's master key while the
# other's key (which the shared password opens too) makes restic fail with "config or key ... is
# damaged". So inits are serialised through the store: a claim object with a random token, read
# back after INIT_SETTLE seconds (S3 reads are strongly consistent after writes); only the holder
# of the surviving token runs `init`, after checking again that nothing else appeared meanwhile.
INIT_SETTLE = 2.0
INIT_POLL = 1.0
# how long a process waits for another one's init before it gives up (75) and tries next time
INIT_PATIENCE = 180.0


def ensure_repository(
    probe: StoreProbe,
    restic: Restic,
    repository: Repository,
    *,
    settle: float = INIT_SETTLE,
    poll: float = INIT_POLL,
    patience: float = INIT_PATIENCE,
) -> tuple[bool, int, str]:
    """Makes sure a repository exists. Returns (initialized now, exit code, explanation).

    The repository is created here and nowhere else, and only when the store probe positively says
    no repository exists at the PVC's prefix (rule 2 applied to writes: a missing bucket or a refused
    credential never leads to a second repository being started beside the real one), or that all
    it holds is what an abandoned init left (keys/ and locks/ only, older than the probe's
    `half_init_age`): those are removed first. Concurrent creators are serialised by a claim
    object (see INIT_SETTLE); the others wait up to `patience` seconds for the repository to appear
    (75 after that: the next run tries again; leftovers of a creator that died are cleaned once
    they are older than the bound). A new repository must open (`restic snapshots`) before it counts.
    """
    import secrets
    import time

    token = secrets.token_hex(16)
    claimed = False
    give_up = time.monotonic() + patience
    waited = False
    while True:
        survey = probe.survey(repository, read_claim=True)
        state, text = survey.state, survey.text
        if state is StoreState.REPOSITORY:
            if waited:
                text = f"{text} (created by another process meanwhile)"
            return False, EX_OK, text
        if state is StoreState.DENIED:
            return False, EX_NOPERM, text
        in_progress = state is StoreState.INCONSISTENT and bool(survey.leftovers)
        if state not in (StoreState.NO_REPOSITORY, StoreState.HALF_INITIALISED) and not in_progress:
            return False, EX_TEMPFAIL, text
        ours = claimed and survey.claim == token
        others = [
            item
            for item in survey.leftovers
            if item.age < probe.half_init_age and not (ours and item.name == INIT_CLAIM)
        ]
        if not others:
            try:
                stale = [item.key for item in survey.leftovers if item.name != INIT_CLAIM]
                if stale:
                    probe.remove(repository, stale)
                    event(
                        log,
                        "repository.init_leftovers_removed",
                        logging.WARNING,
                        repository=repository.url,
                        objects=[item.name for item in survey.leftovers if item.name != INIT_CLAIM],
                        explanation=text,
                    )
                if not ours:
                    probe.put_claim(repository, token)
                    claimed = True
                    if restic.cancel.wait(settle):
                        return False, EX_TEMPFAIL, "interrupted while creating the repository"
                    continue
                return _init(probe, restic, repository)
            except StoreError as exc:
                code = EX_NOPERM if exc.state is StoreState.DENIED else EX_TEMPFAIL
                return False, code, f"cannot prepare the repository's creation: {exc.text}"
        # another process is creating the repository (its claim or keys are fresh): wait for it
        if not waited:
            event(log, "repository.init_waiting", repository=repository.url, reason=text)
            waited = True
        if time.monotonic() >= give_up:
            return (
                False,
                EX_TEMPFAIL,
                f"another process has been creating the repository for {patience:.0f}s: {text}",
            )
        if restic.cancel.wait(poll):
            return False, EX_TEMPFAIL, "interrupted while waiting for the repository"


def _init(probe: StoreProbe, restic: Restic, repository: Repository) -> tuple[bool, int, str]:
    """`restic init` by the claim's holder, then proof that the repository opens."""
    try:
        restic.init()
        restic.snapshots()  # opens it: a key, then the config that key's master key sealed
    except ResticError as exc:
        code = EX_NOPERM if exc.failure is Failure.WRONG_PASSWORD else EX_TEMPFAIL
        return False, code, f"creating the repository at {repository.url} failed: {exc}"
    finally:
        try:
            probe.release_claim(repository)
        except StoreError as exc:  # harmless: restic ignores it, and it ages out
            event(
                log, "repository.init_claim_left", logging.WARNING, repository=repository.url, error=exc.text
            )
    return True, EX_OK, f"initialised a new repository at {repository.url}"


def history_of(snapshots: list[Snapshot]) -> History:
    """What the guard needs to know about a repository's snapshots: the newest one's size and UIDs.

    The newest snapshot of the whole repository, whatever its host or tags: one VolSync wrote (host
    `volsync`, no tags) is history too, and marked foreign (not Lifeboat's).
    """
    if not snapshots:
        return History(snapshots=0)
    latest = max(snapshots, key=lambda s: s.time)
    uids = tuple(t.removeprefix("pvc-uid=") for t in latest.tags if t.startswith("pvc-uid="))
    return History(
        snapshots=len(snapshots),
        latest_files=latest.files,
        latest_bytes=latest.bytes,
        latest_uids=uids,
        latest_foreign=latest.hostname != SNAPSHOT_HOST and "lifeboat" not in latest.tags,
        latest_pins=tuple(t for t in latest.tags if t.startswith("pin-applied=")),
    )


def _root_ignored(volume: Path) -> list[Path]:
    """The root's lost+found (fsck's, root-only on ext4), as restic names it (real path)."""
    root = Path(os.path.realpath(volume))
    return [root / name for name in sorted(IGNORED_AT_ROOT)]


def _excludes(volume: Path) -> list[str]:
    """restic `--exclude` patterns for the root's lost+found, when the volume holds anything else.

    Excluded, it can neither be unreadable (the sidecar may not run as root) nor hide a real
    unreadable file behind its exit code 3. A volume holding nothing else keeps it: restic refuses
    to write a snapshot of nothing at all, and its errors are ignored instead (see `_unreadable`).
    """
    try:
        names = set(os.listdir(volume))
    except OSError:
        return []
    if not names - IGNORED_AT_ROOT:
        return []
    # restic matches patterns against absolute paths; glob characters in them are escaped
    return [
        "".join("\\" + c if c in "*?[]\\" else c for c in str(path))
        for path in _root_ignored(volume)
        if path.name in names
    ]


def _unreadable(volume: Path, summary: BackupSummary) -> list[str]:
    """What restic could not read, the root's lost+found (and anything under it) left out."""
    ignored = _root_ignored(volume)
    return [
        item
        for item in summary.unreadable
        if not any(Path(item) == skip or skip in Path(item).parents for skip in ignored)
    ]


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
    capture_policy: CapturePolicy | None = None,
) -> GuardedBackup:
    """Measure, read the history, ask the guard, wait for locks, back up. Never raises for restic.

    `ensure` creates the repository when restic says there is none; it is the store probe's job to
    say so positively (boto3 is only imported then). `deadline`, when given, returns the seconds
    left for the whole operation (the final backup's budget).
    """
    pvc = volume.pvc
    initialized = False
    captured = Capture()
    capture_policy = capture_policy or CapturePolicy()
    try:
        found = survey(volume.path)
        facts = found.facts
        if found.servers and not backed_up:  # once per pod start, until its first backup
            for directory, engine in found.servers:
                event(
                    log,
                    "volume.live_server_database",
                    logging.WARNING,
                    pvc=pvc,
                    path=directory,
                    engine=engine,
                    explanation="file-level copy of a live server database: not consistent",
                    fix="back up the engine's dump to a labelled volume, or stop the app (docs/backup.md)",
                )
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
        captured = _capture(volume, found.databases, capture_policy, deadline)
        try:
            summary, wait = run_locked(
                restic,
                pvc,
                "backup",
                lambda: restic.backup(
                    volume.path,
                    host=SNAPSHOT_HOST,
                    tags=[*tags_for(namespace, pvc, volume.pvc_uid), *history.latest_pins],
                    excludes=[*_excludes(volume.path), *captured.excludes],
                    extra=captured.targets,
                    timeout=budget,
                ),
                patience=patience,
            )
        finally:
            if captured.staging is not None:
                clean(captured.staging)
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
    # exit 3: a snapshot was written without some files. Only an unreadable lost+found at the root
    # (fsck's, root-only) is no loss; restic's exit code without any error line is believed.
    unreadable = _unreadable(volume.path, summary)
    result = "incomplete" if summary.incomplete and (unreadable or not summary.unreadable) else "success"
    if captured.failed:
        result = "incomplete"
        for failure in captured.failed:
            event(
                log,
                "sqlite.capture_failed",
                logging.ERROR,
                pvc=pvc,
                snapshot=summary.snapshot_id,
                path=failure.path,
                reason=failure.reason,
                explanation="stored as it is on the volume: it may not restore consistently",
            )
    if result == "incomplete":
        event(
            log,
            "backup.incomplete",
            logging.ERROR,
            pvc=pvc,
            snapshot=summary.snapshot_id,
            unreadable=len(unreadable),
            paths=unreadable[:10],
            fix="make these files readable by the sidecar (runAsUser, fsGroup) or remove them",
        )
    event(
        log,
        "backup.finished",
        logging.INFO if result == "success" else logging.WARNING,
        pvc=pvc,
        result=result,
        snapshot=summary.snapshot_id,
        files=summary.total_files,
        bytes=summary.total_bytes,
        added_bytes=summary.data_added,
        unreadable=len(unreadable),
        sqlite_captured=len(captured.captured),
        sqlite_failed=len(captured.failed),
        sqlite_longest_hold_seconds=captured.longest_hold,
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
        message=f"snapshot {summary.snapshot_id}"
        + (f", incomplete: {len(unreadable)} unreadable paths" if unreadable else "")
        + (
            f", {len(captured.failed)} SQLite database(s) not captured consistently:"
            f" {', '.join(f.path for f in captured.failed[:5])}"
            if captured.failed
            else ""
        ),
        unreadable=len(unreadable),
        capture=captured,
        servers=found.servers,
    )


def _capture(
    volume: VolumeTarget,
    databases: tuple[str, ...],
    policy: CapturePolicy,
    deadline: Callable[[], float] | None,
) -> Capture:
    """Captures the volume's SQLite databases; the final backup's deadline bounds it too."""
    if not databases:
        return Capture()
    timeout = policy.timeout if deadline is None else max(1.0, min(policy.timeout, deadline() / 2))
    started = time.monotonic()
    result = capture(volume.path, volume.pvc, databases, busy_seconds=policy.busy_seconds, timeout=timeout)
    event(
        log,
        "sqlite.captured",
        pvc=volume.pvc,
        databases=len(result.captured),
        failed=len(result.failed),
        longest_hold_seconds=result.longest_hold,
        seconds=round(time.monotonic() - started, 3),
    )
    return result


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

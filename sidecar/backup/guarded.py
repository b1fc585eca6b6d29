"""The one backup path, for the sidecar and `lifeboat backup` alike: guard rails, locks, restic.

Every run measures the volume, reads the repository's history (`restic snapshots`, or the list the
previous run left when the store proves it current: see `current_snapshots`), asks the guard
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
probe) is a callable the caller passes in and only runs when restic says there is none.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lifeboat.exitcodes import EX_NOPERM, EX_OK, EX_TEMPFAIL
from lifeboat.logs import event
from sidecar.backup.guard import GuardInput, History, Verdict, VolumeFacts, decide
from sidecar.edges.capture import Capture, capture, clean
from sidecar.edges.listing import ListingUnavailable
from sidecar.edges.restic import BackupSummary, Failure, Restic, ResticError, Snapshot
from sidecar.edges.store import INIT_CLAIM, StoreError, StoreProbe, StoreState
from sidecar.edges.usage import IGNORED_AT_ROOT, HeaderCache, survey
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
    # the repository's snapshots after this run, the new one included (see `current_snapshots`);
    # None: not known (a failure, or a restic without `backup_start`)
    history: tuple[Snapshot, ...] | None = None
    listed: bool = False  # the history was read with `restic snapshots` (not the store's listing)

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
    token: str | None = None,
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

    `token` is the caller's claim token: a caller that retries (the sidecar's VolumeWorker keeps one
    for its lifetime) passes the same one every time, so a claim its own earlier attempt left (the
    store went away before the claim could be released) is recognised as its own and the retry goes
    on at once instead of waiting `half_init_age` for it. Only the claim counts as ours: keys an
    earlier `init` wrote are indistinguishable from another process's and still wait for the bound.
    None: a new random token for this call.
    """
    import secrets
    import time

    token = token or secrets.token_hex(16)
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
        ours = survey.claim == token  # read back after it settled: ours, from this call or an earlier one
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


# Reading the history without `restic snapshots` (issue 13 item 2). Every restic start costs a key
# derivation and a repository open (~0.5-1 s); a scheduled run used to start restic four times.
Listing = Callable[[], frozenset[str]]  # the snapshot ids the store holds; raises ListingUnavailable
Configured = Callable[[], bool]  # whether the repository's `config` exists; raises ListingUnavailable


def current_snapshots(
    restic: Restic,
    known: Sequence[Snapshot] | None,
    listing: Listing | None,
    configured: Configured | None = None,
) -> tuple[list[Snapshot], bool]:
    """The repository's snapshots, oldest first, and whether restic listed them.

    `known` (what this sidecar saw last: its previous listing, plus the snapshots it wrote since,
    minus those it forgot) is used only when the store lists exactly its ids (`listing`, one S3
    request, sidecar.edges.listing). Snapshot files are named by the SHA-256 of their content and
    never rewritten, so equal ids mean an equal history, whoever wrote to the repository meanwhile
    (another pod on an RWX volume, a restore and claim elsewhere, a forget, VolSync): any change
    shows as an id added or gone, and then restic lists. Without `known` (the first run after
    start) a store that holds the repository's `config` and no snapshot file at all is an empty
    history just as `restic snapshots` would report; anything else, restic lists. Any listing
    failure: restic lists. Raises ResticError as `restic snapshots` does.
    """
    if listing is not None:
        try:
            ids = listing()
            if known is not None and ids == {s.id for s in known}:
                return sorted(known, key=lambda s: s.time), False
            if known is None and not ids and configured is not None and configured():
                return [], False
        except ListingUnavailable:
            pass
    return restic.snapshots(), True


def with_new_snapshot(
    snapshots: Sequence[Snapshot], summary: BackupSummary, hostname: str, tags: Sequence[str]
) -> tuple[Snapshot, ...] | None:
    """The history after a backup wrote `summary`'s snapshot, as `restic snapshots` would show it
    (host, tags, time and size as restic stores them), or None when restic did not say its time."""
    if summary.snapshot_id is None or summary.started is None:
        return None
    new = Snapshot(
        id=summary.snapshot_id,
        short_id=summary.snapshot_id[:8],
        time=summary.started,
        hostname=hostname,
        paths=(),
        tags=tuple(dict.fromkeys(tags)),
        tree="",
        files=summary.total_files,
        bytes=summary.total_bytes,
    )
    return (*snapshots, new)


def _decide(
    facts: VolumeFacts,
    snapshots: list[Snapshot],
    outcome: str | None,
    policy: GuardPolicy,
    uid: str | None,
    backed_up: bool,
) -> tuple[History, Verdict]:
    history = history_of(snapshots)
    verdict = decide(
        GuardInput(
            outcome=outcome,
            volume=facts,
            history=history,
            pvc_uid=uid,
            adopt=policy.adopt,
            shrink_limit=policy.shrink_limit,
            backed_up=backed_up,
        )
    )
    return history, verdict


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
    known: Sequence[Snapshot] | None = None,
    listing: Listing | None = None,
    configured: Configured | None = None,
    headers: HeaderCache | None = None,
) -> GuardedBackup:
    """Measure, read the history, ask the guard, wait for locks, back up. Never raises for restic.

    `ensure` creates the repository when restic says there is none; it is the store probe's job to
    say so positively (the probe is only imported then). `deadline`, when given, returns the seconds
    left for the whole operation (the final backup's budget). `known`, `listing` and `configured`
    let the history be read without restic (`current_snapshots`); whenever the guard would refuse
    or adopt, or the volume is empty, the history is read by restic again and the guard asked again,
    so no cached list ever lets a backup through that `restic snapshots` would have stopped.
    """
    pvc = volume.pvc
    initialized = False
    captured = Capture()
    capture_policy = capture_policy or CapturePolicy()
    try:
        found = survey(volume.path, headers=headers)
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
            snapshots, listed = current_snapshots(restic, known, listing, configured)
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
            snapshots, listed = [], True
        history, verdict = _decide(facts, snapshots, outcome, policy, volume.pvc_uid, backed_up)
        if not listed and (facts.empty or not verdict.allowed or verdict.reason is not None):
            # belt and braces: a refusal, an adoption or an empty volume is judged on restic's own
            # listing, never on what the store's file names implied
            snapshots, listed = restic.snapshots(), True
            history, verdict = _decide(facts, snapshots, outcome, policy, volume.pvc_uid, backed_up)
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
                history=tuple(snapshots),
                listed=listed,
            )
        if verdict.adopted:
            event(log, "guard.adopted", logging.WARNING, pvc=pvc, explanation=verdict.explanation)
        patience = lock_patience if deadline is None else min(lock_patience, max(0.0, deadline()))
        budget = timeout if deadline is None else max(1.0, deadline())
        captured = _capture(volume, found.databases, capture_policy, deadline)
        tags = [*tags_for(namespace, pvc, volume.pvc_uid), *history.latest_pins]
        try:
            summary, wait = run_locked(
                restic,
                pvc,
                "backup",
                lambda: restic.backup(
                    volume.path,
                    host=SNAPSHOT_HOST,
                    tags=tags,
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
        history=with_new_snapshot(snapshots, summary, SNAPSHOT_HOST, tags),
        listed=listed,
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

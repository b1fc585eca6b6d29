"""`lifeboat restore`: the init container that fills empty volumes before the app starts.

For each volume: take the volume's flock and lease, look at it, ask the store only if it is empty, decide
(`sidecar.restore.decision`), act. Volumes whose store did not answer positively are retried with capped
exponential backoff until `LIFEBOAT_RESTORE_DEADLINE` (0 = forever); the app never starts on an
empty volume while its backup might exist. The outcome of every volume is handed to the backup
sidecar through `<LIFEBOAT_STATE_DIR>/restore.json`, logged as one JSON line, and summarised in
the termination-message file that `kubectl describe pod` shows. This path never runs
`restic init` and writes nothing to the store but restic's own shared lock while `restic restore`
runs, and the deletion of locks restic calls stale by age (sidecar.locking): a dead cluster's
exclusive lock must not keep the rebuilt one's app in `Init` forever.

A volume's first attempt may start `restic restore latest` into the work directory while the
store is still being asked (`speculate`), and keeps it only when it is provably the snapshot the
decision chose (`settle`): the second restic process's key derivation then overlaps the first's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lifeboat.contract import ENV_LEGACY_PASSWORDS, parse_pin
from lifeboat.logs import event
from sidecar.edges import capture
from sidecar.edges import volume as vol
from sidecar.edges.restic import Failure, Restic, ResticError, RestoreSummary, Snapshot
from sidecar.edges.store import StoreProbe, StoreState
from sidecar.handover import Handover, record_outcomes
from sidecar.locking import LockedOut, run_locked
from sidecar.repository import Repository, for_volume
from sidecar.restore.decision import (
    Action,
    Decision,
    Pin,
    SnapshotRef,
    StoreAnswer,
    VolumeState,
    backoff,
    decide,
)
from sidecar.settings import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, Settings, VolumeSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
# how long the speculative restore's S3 listings of snapshots/ may take (each is one request)
SPECULATION_LIST_TIMEOUT = 5.0

_PROBE_ANSWERS = {
    StoreState.NO_REPOSITORY: StoreAnswer.NO_REPOSITORY,
    # keys/ without a config, abandoned: restic too says "no repository" (no snapshot, no data)
    StoreState.HALF_INITIALISED: StoreAnswer.NO_REPOSITORY,
    StoreState.INCONSISTENT: StoreAnswer.INCONSISTENT,
    StoreState.BUCKET_MISSING: StoreAnswer.BUCKET_MISSING,
    StoreState.DENIED: StoreAnswer.DENIED,
    StoreState.UNREACHABLE: StoreAnswer.UNREACHABLE,
}


@dataclass
class Outcome:
    """What happened to one volume; `outcome` is skipped | fresh | restored | waiting | failed."""

    pvc: str
    outcome: str
    reason: str
    exit_code: int = EX_OK
    snapshot: str | None = None
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 0
    # what restic could not apply and Lifeboat let pass (extended attributes the target refused)
    warnings: list[str] = field(default_factory=list)


# outcomes handed to the sidecar; `waiting` and `failed` are not decisions
DECIDED = ("restored", "fresh", "skipped")
# A missing bucket is a setup mistake: after this many attempts in a row the restore exits 75 with
# "bucket X does not exist: create it" as its termination message, so `kubectl describe pod` shows
# it; the kubelet starts the init container again (with its back-off), so it still only waits.
BUCKET_MISSING_ATTEMPTS = 3


@dataclass
class Clock:
    """Time as the restore loop sees it; tests pass their own."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random


def _in_background(
    restic: Restic, stop: threading.Event, call: Callable[[Restic], T], name: str
) -> Callable[[], T]:
    """Runs `call` with a copy of `restic` that `stop` stops, in a thread; returns how to wait
    for its answer (re-raising its ResticError). The process's own cancel stops it too."""
    runner = dataclasses.replace(restic, cancel=stop)
    answer: list[T | ResticError] = []

    def run() -> None:
        try:
            answer.append(call(runner))
        except ResticError as exc:
            answer.append(exc)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()

    def result() -> T:
        while worker.is_alive():
            if restic.cancel.is_set():  # the process is asked to stop: so is this restic
                stop.set()
            worker.join(timeout=0.05)
        value = answer[0] if answer else ResticError(name, Failure.FATAL, None, "no answer")
        if isinstance(value, ResticError):
            raise value
        return value

    return result


def _list_snapshots(restic: Restic, stop: threading.Event) -> Callable[[], list[Snapshot]]:
    """Starts `restic snapshots` in a thread, stopped by `stop`; returns how to wait for it."""
    return _in_background(restic, stop, lambda r: r.snapshots(), "lifeboat-snapshots")


@dataclass
class Speculation:
    """`restic restore latest` into the work directory, started before the store has answered.

    Started on a volume's first attempt, when the volume is empty and no pin applies: the restore's
    key derivation and download then overlap the probe and `restic snapshots` instead of following
    them. `before` is the set of snapshot files S3 listed before restic was started (None until
    listed; empty when the listing failed or found none: then restic is not started at all).
    `settle` keeps the result only when it is provably the snapshot the decision chose."""

    stop: threading.Event
    listed: threading.Event
    # restic printed its first message (status or summary): it has resolved `latest` by then
    resolved: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    before: frozenset[str] | None = None
    started: bool = False  # restic was started, so the work directory holds its output
    result: Callable[[], RestoreSummary | None] = lambda: None


def speculate(restic: Restic, root: Path, pvc: str) -> Speculation:
    """Lists `snapshots/` on S3 (milliseconds, no restic), then starts `restic restore latest`
    into `root`'s work directory; both in a thread, so neither delays the probe or the listing.

    The speculative restic gets no legacy passwords: only the listing migrates a password, once."""
    speculation = Speculation(stop=threading.Event(), listed=threading.Event())
    runner = dataclasses.replace(
        restic, env={k: v for k, v in restic.env.items() if k != ENV_LEGACY_PASSWORDS}
    )

    def seen(message: dict[str, Any]) -> None:
        if message.get("message_type") in ("status", "verbose_status", "summary"):
            speculation.resolved.set()

    def run(handle: Restic) -> RestoreSummary | None:
        try:
            try:
                before = handle.snapshot_files(timeout=SPECULATION_LIST_TIMEOUT)
            except ResticError as exc:
                event(log, "restore.speculation_skipped", logging.DEBUG, pvc=pvc, reason=exc.message)
                before = frozenset()
            speculation.before = before
            speculation.listed.set()
            if not before or speculation.stop.is_set():
                return None
            speculation.started = True
            try:
                tree = vol.prepare(root)
            except OSError as exc:  # the attempt itself meets it again and reports it
                raise ResticError("restore", Failure.FATAL, None, f"work directory: {exc}") from None
            return handle.restore("latest", tree, delete=True, on_status=seen)
        finally:
            speculation.listed.set()
            speculation.finished.set()

    speculation.result = _in_background(runner, speculation.stop, run, "lifeboat-speculative-restore")
    return speculation


def settle(
    speculation: Speculation,
    decision: Decision,
    snapshots: Sequence[SnapshotRef],
    restic: Restic,
    root: Path,
    pvc: str,
) -> RestoreSummary | None:
    """The speculative restore's summary when it provably restored `decision`'s snapshot; else
    None, with its restic stopped and the work directory discarded (only Lifeboat's own: the
    volume itself is never touched), so the restore goes on exactly as without it.

    The proof: the decision restores (no pin) the only snapshot listed at its time, and three
    sets are equal: the snapshot files S3 listed before restic was started, the snapshots `restic
    snapshots` listed, and the snapshot files S3 lists once restic has resolved `latest` (its
    first message; a restore too short to print one: once it has exited). Snapshot files are
    named by their content's hash and never come back once removed, and removing one takes
    restic's exclusive lock, which the restore's shared lock (taken before it resolves `latest`)
    keeps out while it runs. So the set restic chose from is the listed one, and its newest is
    the decision's. A restore that printed nothing before it exited leaves one gap: a snapshot
    added after the first listing and removed between restic's exit and the second listing."""
    why = _mismatch(speculation, decision, snapshots)
    summary: RestoreSummary | None = None
    if why is None:
        # until restic has resolved `latest` or exited (milliseconds to seconds)
        while not speculation.resolved.wait(0.05) and not speculation.finished.is_set():
            if restic.cancel.is_set():
                why = "interrupted"
                break
    if why is None:
        try:
            now = restic.snapshot_files(timeout=SPECULATION_LIST_TIMEOUT)
        except ResticError as exc:
            now, why = None, f"snapshots/ not listable during the restore: {exc.message}"
        if why is None and now != speculation.before:
            why = "the repository's snapshots changed during the restore"
    if why is None:
        try:
            summary = speculation.result()
        except ResticError as exc:
            why = f"restic restore latest failed: {exc.message}"
        if why is None and summary is None:
            why = "restic was not started"
    if why is None:
        event(log, "restore.speculation", pvc=pvc, kept=True)
        return summary
    speculation.stop.set()
    with contextlib.suppress(ResticError):
        speculation.result()
    if speculation.started:
        vol.discard(root)
    event(log, "restore.speculation", pvc=pvc, kept=False, reason=why)
    return None


def _mismatch(speculation: Speculation, decision: Decision, snapshots: Sequence[SnapshotRef]) -> str | None:
    """Why the speculative restore cannot be the decision's, as far as known now; None: it may."""
    chosen = decision.snapshot
    if decision.action is not Action.RESTORE or chosen is None:
        return f"the decision is {decision.action.value}, not a restore"
    if decision.mark_pin is not None:
        return "a pin applies"
    if sum(1 for s in snapshots if s.time == chosen.time) != 1:
        return "more than one snapshot has the newest time"
    if not speculation.listed.wait(timeout=SPECULATION_LIST_TIMEOUT + 1):
        return "snapshots/ not listed in time"
    if not speculation.before:
        return "snapshots/ not listed before the restore"
    if speculation.before != {s.id for s in snapshots}:
        return "restic snapshots and S3 list different snapshots"
    return None


def ask_store(
    probe: StoreProbe, restic: Restic, repository: Repository, *, overlap: bool = True
) -> tuple[StoreAnswer, list[SnapshotRef], str]:
    """The store's answer for one repository: the probe, then restic for the snapshot list.

    With `overlap` (a volume's first attempt) both run side by side: `restic snapshots` (its key
    derivation is most of its half second) starts first, the S3 probe (two signed listings,
    milliseconds) runs meanwhile, and restic's answer counts only when the probe positively finds a
    repository; on any other probe answer restic is stopped at once (a dead endpoint keeps restic
    retrying for minutes). Retries ask in turn: a probe is then milliseconds, and a store that is
    down costs no restic start per attempt. The listing takes no lock and writes nothing."""
    stop = threading.Event()
    listed = _list_snapshots(restic, stop) if overlap else None

    def abandon() -> None:
        stop.set()
        if listed is not None:
            with contextlib.suppress(ResticError):
                listed()

    try:
        state, text = probe.probe(repository)
    except BaseException:
        abandon()
        raise
    if state is not StoreState.REPOSITORY:
        abandon()
        if state is StoreState.BUCKET_MISSING:
            text = f"bucket {repository.bucket} does not exist: create it (docs/stores.md); {text}"
        return _PROBE_ANSWERS[state], [], text
    try:
        snapshots = listed() if listed is not None else restic.snapshots()
    except ResticError as exc:
        if exc.failure is Failure.WRONG_PASSWORD:
            return StoreAnswer.WRONG_PASSWORD, [], exc.message
        if exc.failure is Failure.NO_REPOSITORY:
            return (
                StoreAnswer.INCONSISTENT,
                [],
                f"S3 shows a repository config but restic cannot open it: {exc.message}",
            )
        return StoreAnswer.UNREACHABLE, [], exc.message
    return StoreAnswer.SNAPSHOTS, [SnapshotRef(s.id, s.time, tuple(s.tags)) for s in snapshots], text


def restore_once(
    spec: VolumeSpec,
    pin: Pin | None,
    repository: Repository,
    probe: StoreProbe,
    restic: Restic,
    *,
    lock_patience: float = 0.0,
    record: Callable[[Outcome], None] | None = None,
    first_attempt: bool = True,
    speculative: bool = True,
) -> tuple[Decision, Outcome]:
    """One attempt for one volume, under the volume's lock. Never raises for store trouble.

    On the first attempt at an empty volume without a pin (and with `speculative`), `restic
    restore latest` starts into the work directory before the store has answered (`speculate`)
    and is kept only when it provably restored the snapshot the decision chose (`settle`);
    otherwise it is stopped, the work directory discarded, and the attempt goes on as without it.

    `restic restore` takes a shared lock. When restic says the repository is locked, locks older
    than restic's stale threshold are removed and the restore retried at once; a live exclusive lock
    (another pod's prune or check) is waited for up to `lock_patience` seconds (`lock.waiting`,
    `lock.acquired`), then the attempt ends as a retry like any other store trouble.

    `record` is handed a restore's outcome once its commit record is written, before the renames:
    from that point every rerun ends `restored` too, so the handover may say so already."""
    started = time.monotonic()

    def waiting() -> None:
        event(log, "restore.waiting_for_lock", pvc=spec.pvc, path=str(spec.path))

    if vol.check_readable(spec.path) is VolumeState.HAS_DATA:
        # a root we may not list but that positively holds data: nothing to lock, nothing touched
        decision = decide(VolumeState.HAS_DATA, None)
        return decision, Outcome(
            spec.pvc, decision.action.value, decision.reason + " (seen by its link count)"
        )
    with vol.exclusive(spec.path, on_wait=waiting):
        state = vol.inspect(spec.path)
        if state is VolumeState.HAS_DATA:
            vol.discard(spec.path)  # a stale, uncommitted download of ours, never user data
            decision = decide(state, None)
            return decision, Outcome(spec.pvc, decision.action.value, decision.reason)
        if state is VolumeState.PENDING:
            committed = vol.committed(spec.path)
            decision = decide(state, None)
            outcome = Outcome(
                spec.pvc,
                Action.RESTORE.value,
                decision.reason,
                snapshot=committed.get("snapshot"),
                files=int(committed.get("files", 0)),
                bytes=int(committed.get("bytes", 0)),
                warnings=[str(w) for w in committed.get("warnings", [])],
            )
            if record is not None:
                record(outcome)
            vol.move_in(spec.path)
            outcome.seconds = round(time.monotonic() - started, 3)
            return decision, outcome
        speculation = None
        if first_attempt and pin is None and speculative:
            speculation = speculate(restic, spec.path, spec.pvc)
        try:
            answer, snapshots, detail = ask_store(probe, restic, repository, overlap=first_attempt)
        except BaseException:
            if speculation is not None:
                settle(speculation, decide(state, None), [], restic, spec.path, spec.pvc)
            raise
        decision = decide(state, answer, snapshots, pin, detail)
        kept = None
        if speculation is not None:
            kept = settle(speculation, decision, snapshots, restic, spec.path, spec.pvc)
        if decision.action is Action.RESTORE:
            assert decision.snapshot is not None
            snapshot_id = decision.snapshot.id
            tree = vol.tree_dir(spec.path) if kept is not None else vol.prepare(spec.path)
            try:
                if kept is not None:
                    summary = kept
                else:
                    summary, _ = run_locked(
                        restic,
                        spec.pvc,
                        "restore",
                        lambda: restic.restore(snapshot_id, tree, delete=True),
                        patience=lock_patience,
                    )
            except ResticError as exc:
                reason = f"restic restore failed: {exc.message}"
                if isinstance(exc, LockedOut):
                    reason = f"repository locked by another process for {exc.waited:.0f}s: {exc.message}"
                retry = Decision(Action.RETRY, reason, exit_code=EX_TEMPFAIL)
                if exc.failure is Failure.WRONG_PASSWORD:
                    retry = Decision(Action.FAIL, exc.message, exit_code=EX_NOPERM)
                return retry, Outcome(spec.pvc, "waiting", retry.reason, exit_code=retry.exit_code)
            # SQLite captures (sidecar.edges.capture) back to their own paths, before the commit:
            # a crash before it restores the work tree again and places them again
            placed = capture.place(tree)
            if placed:
                event(log, "sqlite.placed", pvc=spec.pvc, databases=len(placed), paths=placed[:10])
            warnings = list(summary.warnings)
            vol.commit(
                spec.path,
                {
                    "snapshot": decision.snapshot.id,
                    "files": summary.files,
                    "bytes": summary.bytes,
                    "warnings": warnings,
                },
            )
            outcome = Outcome(
                spec.pvc,
                Action.RESTORE.value,
                decision.reason,
                snapshot=decision.snapshot.id,
                files=summary.files,
                bytes=summary.bytes,
                warnings=warnings,
            )
            if record is not None:
                record(outcome)
            if decision.mark_pin:
                # the pinned snapshot and the newest one: backups carry the newest one's pin tags on
                newest = max(snapshots, key=lambda s: s.time).id
                for marked in dict.fromkeys([decision.snapshot.id, newest]):
                    _mark_pin_applied(restic, spec.pvc, marked, decision.mark_pin, lock_patience)
            vol.move_in(spec.path)
            outcome.seconds = round(time.monotonic() - started, 3)
            return decision, outcome
        if decision.action is Action.FRESH:
            vol.discard(spec.path)
            return decision, Outcome(spec.pvc, Action.FRESH.value, decision.reason)
        label = "failed" if decision.action is Action.FAIL else "waiting"
        return decision, Outcome(spec.pvc, label, decision.reason, exit_code=decision.exit_code)


def _mark_pin_applied(restic: Restic, pvc: str, snapshot_id: str, tag: str, patience: float) -> None:
    """Tags the pinned snapshot `pin-applied=<pin>` after its restore is committed, so the pin is
    not applied again by a later restore (sidecar.restore.decision). Never fails the restore: if
    the tag cannot be written the pin stays active (logged, docs/restore.md)."""
    try:
        run_locked(restic, pvc, "tag", lambda: restic.tag(snapshot_id, add=[tag]), patience=patience)
    except ResticError as exc:
        event(log, "restore.pin_not_marked", logging.WARNING, pvc=pvc, tag=tag, error=exc.failure.value)
        return
    event(log, "restore.pin_applied", pvc=pvc, snapshot=snapshot_id[:8], tag=tag)


def restore_volumes(
    settings: Settings,
    volumes: Sequence[VolumeSpec],
    probe: StoreProbe,
    make_restic: Callable[[Repository], Restic],
    *,
    clock: Clock | None = None,
    cancel: threading.Event | None = None,
) -> list[Outcome]:
    """Runs the restore table for every volume, retrying the undecided ones until the deadline."""
    clock = clock or Clock()
    cancel = cancel or threading.Event()
    started = clock.monotonic()
    deadline = started + settings.restore_deadline if settings.restore_deadline > 0 else None
    results: dict[str, Outcome] = {}
    pending: list[tuple[VolumeSpec, Pin | None, Repository, Restic]] = []
    patience: dict[str, float] = {}
    for spec in volumes:
        try:
            pin = parse_pin(spec.snapshot or settings.restore_snapshot)
        except ValueError as exc:
            results[spec.pvc] = Outcome(spec.pvc, "failed", f"restore snapshot: {exc}", exit_code=EX_CONFIG)
            continue
        repository = for_volume(settings, spec.pvc, spec.repository)
        restic = make_restic(repository)
        restic.cancel = cancel
        # lock waits happen in sidecar.locking (stale locks removed, live ones waited for and
        # logged), never hidden inside restic's --retry-lock, which cannot remove a stale lock
        patience[spec.pvc], restic.lock_retry = restic.lock_retry, 0
        pending.append((spec, pin, repository, restic))
    attempt = 0

    def hand_over(outcome: Outcome) -> None:
        handed = _hand_over(settings, [outcome], dt.datetime.now(dt.UTC)).get(outcome.pvc)
        if outcome.outcome == "skipped" and handed is not None and handed.outcome != "skipped":
            # an earlier attempt of this pod's restore filled the volume: it stays that outcome
            outcome.outcome, outcome.snapshot = handed.outcome, handed.snapshot
            outcome.reason = f"{handed.outcome} by an earlier attempt in this pod; {outcome.reason}"

    bucket_missing_streak = 0
    while pending:
        waiting = []
        missing_bucket = []
        for spec, pin, repository, restic in pending:
            try:
                decision, outcome = restore_once(
                    spec,
                    pin,
                    repository,
                    probe,
                    restic,
                    lock_patience=patience[spec.pvc],
                    record=hand_over,
                    first_attempt=attempt == 0,
                )
            except vol.VolumeUnreadable as exc:
                decision = Decision(Action.FAIL, f"volume {spec.pvc}: {exc}", exit_code=EX_NOPERM)
                outcome = Outcome(spec.pvc, "failed", decision.reason, exit_code=EX_NOPERM)
            except vol.VolumeError as exc:
                decision = Decision(Action.FAIL, f"--volume {spec.pvc}: {exc}", exit_code=EX_CONFIG)
                outcome = Outcome(spec.pvc, "failed", decision.reason, exit_code=EX_CONFIG)
            except PermissionError as exc:
                # the same user will be refused again: a retry or a container restart cannot help
                reason = f"volume {spec.path}: {exc}; {vol.OWNER_FIX}"
                decision = Decision(Action.FAIL, reason, exit_code=EX_NOPERM)
                outcome = Outcome(spec.pvc, "failed", reason, exit_code=EX_NOPERM)
            except OSError as exc:
                decision = Decision(Action.FAIL, f"volume {spec.path}: {exc}", exit_code=EX_TEMPFAIL)
                outcome = Outcome(spec.pvc, "failed", decision.reason, exit_code=EX_TEMPFAIL)
            outcome.attempts = attempt + 1
            if outcome.outcome in DECIDED:
                hand_over(outcome)  # durable at once: a later failure must not lose it
            if decision.action is Action.RETRY and not cancel.is_set():
                event(
                    log,
                    "restore.retry",
                    logging.WARNING,
                    pvc=spec.pvc,
                    attempt=attempt + 1,
                    reason=decision.reason,
                )
                waiting.append((spec, pin, repository, restic))
                missing_bucket.append(decision.bucket_missing)
            results[spec.pvc] = outcome
        pending = waiting
        if not pending:
            break
        bucket_missing_streak = bucket_missing_streak + 1 if all(missing_bucket) else 0
        if bucket_missing_streak >= BUCKET_MISSING_ATTEMPTS:
            event(log, "restore.bucket_missing", logging.ERROR, pvcs=[spec.pvc for spec, *_ in pending])
            break  # reported as waiting, exit 75: the kubelet restarts the init container
        delay = backoff(attempt, settings.retry_initial, settings.retry_max, clock.jitter())
        if deadline is not None:
            delay = min(delay, deadline - clock.monotonic())
        if delay <= 0:
            for spec, *_ in pending:
                outcome = results[spec.pvc]
                outcome.outcome = "failed"
                outcome.reason = f"gave up after {settings.restore_deadline:g}s: {outcome.reason}"
            break
        clock.sleep(delay)
        if cancel.is_set():
            for spec, *_ in pending:
                results[spec.pvc].outcome = "failed"
                results[spec.pvc].reason = "interrupted: " + results[spec.pvc].reason
            break
        attempt += 1
    return [results[spec.pvc] for spec in volumes if spec.pvc in results]


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """The process exit code: configuration errors first, then refusals, then unavailability."""
    codes = {o.exit_code for o in outcomes if o.outcome in ("failed", "waiting")}
    for code in (EX_CONFIG, EX_NOPERM, EX_TEMPFAIL):
        if code in codes:
            return code
    return EX_OK


def summary_line(outcomes: Sequence[Outcome]) -> str:
    """One human line for the termination message, e.g. `data: restored 1a2b3c4d (12 files, 3.4 MiB)`."""
    parts = []
    for o in outcomes:
        if o.outcome == "restored":
            size = _human(o.bytes)
            parts.append(
                f"{o.pvc}: restored {(o.snapshot or '')[:8]} ({o.files} files, {size}, {o.seconds:.1f}s)"
                + (f", {len(o.warnings)} warnings" if o.warnings else "")
            )
        elif o.outcome in ("failed", "waiting"):
            parts.append(f"{o.pvc}: {o.outcome} (exit {o.exit_code}): {o.reason}")
        else:
            parts.append(f"{o.pvc}: {o.outcome}")
    return "; ".join(parts)[:3500]  # the kubelet keeps at most 4096 bytes


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def report(settings: Settings, outcomes: Sequence[Outcome], now: dt.datetime, seconds: float) -> int:
    """Logs one JSON line per run, writes the termination message and the handover; returns exit."""
    code = exit_code(outcomes)
    event(
        log,
        "restore.finished",
        logging.INFO if code == EX_OK else logging.ERROR,
        exit_code=code,
        seconds=round(seconds, 3),
        volumes=[asdict(o) for o in outcomes],
    )
    line = summary_line(outcomes)
    try:
        # written in place: the kubelet bind-mounts this file, so it cannot be renamed over
        settings.termination_message_path.write_text(line + "\n")
    except OSError as exc:
        event(log, "restore.termination_message_unwritable", logging.WARNING, error=str(exc))
    # per volume, whatever the exit code: a volume handled now stays handled on the rerun
    _hand_over(settings, outcomes, now)
    return code


def _hand_over(settings: Settings, outcomes: Sequence[Outcome], now: dt.datetime) -> dict[str, Handover]:
    """Merges the decided outcomes into the handover file; returns what it says (never raises).

    The sidecar only reads it once the init container has exited 0, when every volume is
    decided; until then it records what earlier attempts in this pod did."""
    decided = {
        o.pvc: Handover(o.outcome, o.snapshot, now.isoformat()) for o in outcomes if o.outcome in DECIDED
    }
    if not decided:
        return {}
    try:
        return record_outcomes(settings.state_dir, decided)
    except OSError as exc:
        event(log, "restore.handover_unwritable", logging.WARNING, error=str(exc))
        return {}

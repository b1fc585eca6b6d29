"""`lifeboat sidecar`: the long-running backup process of a pod, one for all its labelled volumes.

It wires the pieces and owns the process's life:
- at start: validate configuration (exit 78 naming the variable), read the restore handover, start
  the metrics server and the scheduler (backup, prune, check and restore drill jobs per volume,
  each jittered; drills: sidecar.daemon.drill, emptying their scratch space first);
  a volume that was restored or started fresh gets its first backup soon after start, so the
  newest snapshot carries this volume instance's UID before any restart can ask (sidecar.backup.guard);
- while running: jobs of one volume never overlap (one mutex per volume); a failed backup is retried
  after LIFEBOAT_BACKUP_RETRY_DELAY; the volume's used bytes are refreshed for the metric;
- on SIGTERM (Kubernetes stops a native sidecar after the app, so the data is quiesced): stop the
  scheduler, cancel running work cleanly (a drill's process group too), take one final guarded
  backup of every volume within LIFEBOAT_FINAL_BACKUP_TIMEOUT (never a drill); if time runs out
  restic is interrupted with SIGINT (no partial snapshot, its lock removed) and the process still
  exits 0. A second SIGTERM cancels at once.

The long-running process stays small: restic does the S3 work; the store probe (standard-library
signed requests) is imported only if a repository has to be created; boto3 and kubernetes never.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lifeboat.contract import ConfigError, parse_retention_ack
from lifeboat.exitcodes import EX_CONFIG, EX_OK
from lifeboat.logs import Redactor, configure, event
from sidecar.backup.guarded import GuardedBackup, GuardPolicy, claim_history, guarded_backup
from sidecar.daemon.cadence import (
    UTC,
    FirstBackup,
    Schedule,
    expected_interval,
    first_backup,
    next_backup,
    offset,
)
from sidecar.daemon.drill import Drills
from sidecar.daemon.maintenance import Breaker, Maintenance, check, forget, prune
from sidecar.daemon.metrics import Metrics, serve
from sidecar.daemon.retention import render
from sidecar.daemon.scheduler import JobSpec, Scheduler
from sidecar.drill.plan import DrillReport, drill_offset
from sidecar.edges.clock import repository_time
from sidecar.edges.listing import ListingUnavailable, has_config, snapshot_ids
from sidecar.edges.restic import Restic, ResticError, Snapshot
from sidecar.edges.usage import HeaderCache, filesystem_used_bytes
from sidecar.handover import Handover, read_handover
from sidecar.locking import own_lock_host
from sidecar.runtime import Runtime, VolumeTarget

if TYPE_CHECKING:
    from sidecar.settings import SidecarSettings, VolumeSpec

log = logging.getLogger("sidecar.daemon.main")  # also when run as __main__


Clock = Callable[[], float]
Deadline = Callable[[], float]  # seconds left


@dataclass
class VolumeWorker:
    """Everything the sidecar does for one volume; each job holds the volume's mutex."""

    runtime: Runtime
    volume: VolumeTarget
    restic: Restic
    metrics: Metrics
    outcome: str | None
    clock: Clock = time.time
    store_clock: Callable[[], dt.datetime] | None = None  # the store's time; None: its Date header
    own_snapshots: set[str] = field(default_factory=set)
    backed_up: bool = False
    mutex: threading.Lock = field(default_factory=threading.Lock)
    on_failure: Callable[[VolumeWorker], None] | None = None
    drills: Drills | None = None  # restore drills into scratch space (sidecar.daemon.drill)
    _probe: Any = None
    _init_token: str = ""  # this worker's repository-creation claim token, kept for its lifetime
    _held: bool = False  # the retention breaker refused the last forget or prune
    # the repository's snapshots as this sidecar last knew them (its last listing, plus what it
    # wrote, minus what it forgot): trusted only while the store lists exactly these ids
    # (sidecar.backup.guarded.current_snapshots); None: unknown, restic lists
    known: tuple[Snapshot, ...] | None = None
    # the last walk's SQLite header checks: unchanged files are not opened again (edges.usage)
    headers: HeaderCache = field(default_factory=HeaderCache)

    @property
    def pvc(self) -> str:
        return self.volume.pvc

    def _ensure(self) -> tuple[bool, int, str]:
        # the store probe is imported only when restic says there is no repository
        from sidecar.backup.guarded import ensure_repository
        from sidecar.edges.store import StoreProbe
        from sidecar.repository import parse_override

        if self._probe is None:
            env = self.runtime.restic_env
            self._probe = StoreProbe(
                env["AWS_ACCESS_KEY_ID"],
                env["AWS_SECRET_ACCESS_KEY"],
                region=self.runtime.s3_region,
                timeout=self.runtime.probe_timeout,
            )
        if not self._init_token:  # one token for the worker's life: a claim its own failed
            import secrets  # attempt left counts as its own (docs/RELIABILITY.md, gap 2)

            self._init_token = secrets.token_hex(16)
        repository = parse_override(self.volume.repository, self.pvc)
        return ensure_repository(self._probe, self.restic, repository, token=self._init_token)

    def backup(
        self, *, deadline: Callable[[], float] | None = None, then_forget: bool = True
    ) -> GuardedBackup:
        """One guarded backup, then forget by the retention policy; records metrics."""
        with self.mutex:
            result = guarded_backup(
                self.runtime.namespace,
                self.volume,
                self.restic,
                outcome=self.outcome,
                backed_up=self.backed_up,
                policy=GuardPolicy(
                    adopt=self.runtime.adopt_of(self.volume), shrink_limit=self.runtime.shrink_limit
                ),
                ensure=self._ensure,
                lock_patience=self.runtime.lock_retry,
                deadline=deadline,
                known=self.known,
                headers=self.headers,
                listing=lambda: self._listing(deadline),
                configured=lambda: self._configured(deadline),
            )
            self.known = result.history
            self.metrics.observe_backup(result, self.clock())
            if result.summary and result.summary.snapshot_id:  # written, complete or not: ours
                self.own_snapshots.add(result.summary.snapshot_id)
                self.backed_up = True
                if then_forget and result.succeeded:  # never after an incomplete one
                    self._forget()
        if result.result in ("failed", "locked") and self.on_failure is not None:
            self.on_failure(self)
        return result

    def _list_timeout(self, deadline: Deadline | None) -> float:
        # the final backup's budget bounds the store's listing too (it cannot be cancelled like restic)
        timeout = self.runtime.probe_timeout
        return timeout if deadline is None else min(timeout, max(1.0, deadline() / 4))

    def _listing(self, deadline: Deadline | None = None) -> frozenset[str]:
        """The snapshot ids the store holds (one S3 request; raises ListingUnavailable)."""
        env, timeout = self.runtime.restic_env, self._list_timeout(deadline)
        return snapshot_ids(self.volume.repository, env, timeout=timeout)

    def _configured(self, deadline: Deadline | None = None) -> bool:
        """Whether the repository's `config` exists (one S3 request; raises ListingUnavailable)."""
        env, timeout = self.runtime.restic_env, self._list_timeout(deadline)
        return has_config(self.volume.repository, env, timeout=timeout)

    def _exact(self) -> tuple[Snapshot, ...] | None:
        """The known snapshot list when the store proves it is the repository's, else None."""
        if self.known is None:
            return None
        try:
            ids = self._listing()
        except ListingUnavailable:
            return None
        return self.known if ids == {s.id for s in self.known} else None

    def protect(self) -> GuardedBackup | None:
        """The first backup of data Lifeboat did not restore or start (outcome `skipped`), taken only
        when no snapshot protects it yet: a volume labelled after its app had written to it is backed
        up soon after start instead of at its next slot, up to a day later (issue 14 item 8)."""
        try:
            with self.mutex:
                snapshots = self.restic.snapshots()
                self.known = tuple(snapshots)
        except ResticError as exc:
            # no repository yet, or the store is down: the guarded backup creates the repository
            # (on a positive "none") or fails and is retried after LIFEBOAT_BACKUP_RETRY_DELAY
            event(log, "backup.first_of_unprotected_data", pvc=self.pvc, because=exc.failure.value)
            return self.backup()
        if snapshots:
            event(
                log,
                "backup.first_not_needed",
                pvc=self.pvc,
                snapshots=len(snapshots),
                newest=snapshots[-1].time.isoformat(),
            )
            return None
        event(log, "backup.first_of_unprotected_data", pvc=self.pvc, because="no snapshot")
        return self.backup()

    def claim(self) -> str | None:
        """Marks the restored history as this volume instance's (sidecar.scheduled.claim_history)."""
        with self.mutex:
            try:
                new_id = claim_history(self.volume, self.restic, patience=self.runtime.lock_retry)
            except ResticError as exc:  # the first backup will carry the tag anyway
                event(log, "history.claim_failed", logging.WARNING, pvc=self.pvc, error=str(exc))
                return None
            if new_id:
                self.own_snapshots.add(new_id)
                self.known = None  # the tagged snapshot has a new id
            return new_id

    def breaker(self) -> Breaker:
        """The retention breaker's inputs: our clock, the store's, the acknowledgement if any."""
        ack = None
        text = self.runtime.retention_ack_of(self.volume)
        if text:
            try:
                ack = parse_retention_ack(text)
            except ConfigError:  # validated at start; never trusted blindly
                ack = None
        store_clock = self.store_clock or (
            lambda: repository_time(self.volume.repository, timeout=self.runtime.probe_timeout)
        )
        return Breaker(clock=self.clock, store_time=store_clock, ack=ack)

    def forget(self) -> Maintenance:
        """`restic forget` by the retention policy, through the retention breaker."""
        with self.mutex:
            return self._forget()

    def _forget(self) -> Maintenance:
        # a forget the retention policy cannot make remove anything is skipped (the known list is
        # exact); while the breaker holds retention, every forget asks it, so it can clear
        known = None if self._held else self._exact()
        result = forget(
            self.restic,
            self.pvc,
            self.runtime.retention_of(self.volume),
            patience=self.runtime.lock_retry,
            breaker=self.breaker(),
            known=known,
        )
        if result.result == "success" and result.forget is not None and self.known is not None:
            gone = set(result.forget.removed_ids)
            exact = len(gone) == result.forget.removed
            self.known = tuple(s for s in self.known if s.id not in gone) if exact else None
        return self._record(result)

    def prune(self) -> Maintenance:
        with self.mutex:
            return self._record(
                prune(
                    self.restic,
                    self.pvc,
                    self.own_snapshots,
                    patience=self.runtime.lock_retry,
                    policy=self.runtime.retention_of(self.volume),
                    breaker=self.breaker(),
                )
            )

    def check(self) -> Maintenance:
        with self.mutex:
            return self._record(
                check(
                    self.restic,
                    self.pvc,
                    self.own_snapshots,
                    read_data_subset=self.runtime.check_read_data_subset,
                    patience=self.runtime.lock_retry,
                )
            )

    def _record(self, result: Maintenance) -> Maintenance:
        self.metrics.observe_maintenance(self.pvc, result, self.clock())
        if result.breaker is not None:
            if not result.breaker.allowed:
                self._held = True
            elif self._held:
                self._held = False
                event(log, "retention.cleared", pvc=self.pvc, operation=result.operation)
        return result

    def drill(self) -> DrillReport:
        """One restore drill of the latest snapshot into scratch space, under the volume's mutex
        (never beside its backup, prune or check) and the pod's drill lock (one at a time)."""
        if self.drills is None:
            return DrillReport(result="skipped", reason="drills are off")
        cancel = self.restic.cancel
        with self.drills.lock, self.mutex:
            if cancel.is_set():
                report = DrillReport(result="cancelled", reason="the sidecar is stopping")
            else:
                event(log, "drill.started", pvc=self.pvc, scratch_budget=self.drills.budget)
                report = self.drills.run(self.volume.repository, cancel=cancel, redact=self.restic.redact)
        self.metrics.observe_drill(self.pvc, report, self.clock())
        level = {"success": logging.INFO, "failed": logging.ERROR}.get(report.result, logging.WARNING)
        event(log, "drill.finished", level, pvc=self.pvc, **report.as_dict())
        return report

    def refresh_volume_metric(self) -> None:
        self.metrics.observe_volume(self.pvc, filesystem_used_bytes(self.volume.path))


def job_specs(workers: list[VolumeWorker], settings: Runtime) -> list[JobSpec]:
    """Backup, prune and check jobs of every volume, each at its own jittered second."""
    specs = []
    for worker in workers:
        plans: list[tuple[str, Schedule]] = [
            ("backup", settings.schedule_of(worker.volume)),  # each PVC's own schedule
            ("prune", settings.prune_schedule),
            ("check", settings.check_schedule),
        ]
        for kind, schedule in plans:
            delay = offset(settings.namespace, worker.pvc, kind, schedule)
            specs.append(JobSpec(f"{kind}:{worker.pvc}", getattr(worker, kind), schedule.cron, delay))
        drill = settings.drill_of(worker.volume)
        if drill is not None and worker.drills is not None:
            delay = drill_offset(settings.namespace, worker.pvc, drill)
            specs.append(JobSpec(f"drill:{worker.pvc}", worker.drill, drill.cron, delay))
    return specs


class Sidecar:
    """The running process: workers, scheduler, metrics server, and the shutdown sequence."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        redact: Callable[[str], str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.handover: dict[str, Handover] = read_handover(runtime.state_dir)
        self.metrics = Metrics(runtime.namespace, [v.pvc for v in runtime.volumes])
        self.workers: list[VolumeWorker] = []
        self.drills = Drills(
            scratch_dir=runtime.scratch_dir,
            budget=runtime.drill_scratch_budget,
            timeout=runtime.drill_timeout,
            restic_binary=runtime.restic_binary,
            restic_env=runtime.restic_env,
            volumes={v.pvc: v.path for v in runtime.volumes},
        )
        self.drills.clean()  # what a drill killed with the last sidecar (kill -9) left behind
        for volume in runtime.volumes:
            restic = Restic(
                repository=volume.repository,
                env=runtime.restic_env,
                binary=runtime.restic_binary,
                timeout=runtime.restic_timeout,
                lock_retry=0,  # lock waits happen in sidecar.locking, where they are measured
                own_host=own_lock_host(runtime.pod_name),
                grace=runtime.stop_grace,
            )
            if redact is not None:
                restic.redact = redact
            restic.on_retry = functools.partial(self.metrics.observe_restic_retries, volume.pvc)
            outcome = self.handover[volume.pvc].outcome if volume.pvc in self.handover else None
            worker = VolumeWorker(runtime, volume, restic, self.metrics, outcome, clock=clock)
            worker.on_failure = self._retry_later
            drill = runtime.drill_of(volume)
            worker.drills = self.drills if drill is not None else None
            self.metrics.observe_drill_schedule(volume.pvc, expected_interval(drill) if drill else None)
            self.workers.append(worker)
            self.metrics.observe_outcome(volume.pvc, outcome)
            self.metrics.observe_start(volume.pvc, expected_interval(runtime.schedule_of(volume)), clock())
            worker.refresh_volume_metric()
        # a thread per volume for its backups and one more per volume for a drill waiting its turn
        # (drills run one at a time per pod): a queued drill never holds up another volume's backup
        self.scheduler = Scheduler(job_specs(self.workers, runtime), workers=2 * len(self.workers) + 1)
        self.stop = threading.Event()
        self.stopping = False
        self.started = False
        self.server: Any = None

    @classmethod
    def from_settings(cls, volumes: list[VolumeSpec], settings: SidecarSettings, **kwargs: Any) -> Sidecar:
        """A sidecar straight from validated settings, in this process (tests, benchmarks)."""
        from sidecar.settings import build_runtime

        return cls(build_runtime(settings, volumes), **kwargs)

    # -- health ---------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.stopping or self.scheduler.running

    def ready(self) -> bool:
        return self.started and not self.stopping

    # -- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.runtime
        if settings.metrics_port:
            try:
                self.server = serve(
                    self.metrics,
                    settings.metrics_address,
                    settings.metrics_port,
                    healthy=self.healthy,
                    ready=self.ready,
                )
            except OSError as exc:
                # an app on the same port (undeclared, or hostNetwork) must not stop the backups:
                # they go on unscraped, and the log says why (issue 9 item 11)
                event(
                    log,
                    "metrics.unavailable",
                    logging.ERROR,
                    port=settings.metrics_port,
                    error=str(exc),
                    fix="free the port or set another with LIFEBOAT_METRICS_PORT; backups continue",
                )
        self.scheduler.start()
        now = dt.datetime.now(UTC)
        firsts: dict[str, FirstBackup] = {}
        for worker in self.workers:
            if worker.outcome == "restored":
                self.scheduler.run_once(f"claim:{worker.pvc}", worker.claim, now)
            first = firsts[worker.pvc] = first_backup(
                worker.outcome, settings.namespace, worker.pvc, now, settings.first_backup_delay
            )
            job = worker.protect if first.only_if_unprotected else worker.backup
            self.scheduler.run_once(f"first-backup:{worker.pvc}", job, first.at)
        self.started = True
        event(
            log,
            "sidecar.started",
            volumes=[w.pvc for w in self.workers],
            outcomes={w.pvc: w.outcome for w in self.workers},
            schedules={
                w.pvc: (lambda s: s.cron if s.kind == "cron" else s.kind)(settings.schedule_of(w.volume))
                for w in self.workers
            },
            retention={w.pvc: render(settings.retention_of(w.volume)) for w in self.workers},
            next_drills={
                w.pvc: str(self.scheduler.next_run(f"drill:{w.pvc}")) for w in self.workers if w.drills
            },
            # the first backup after start when it comes before the slot (issue 14 item 8)
            next_backups={
                w.pvc: str(next_backup(firsts[w.pvc], self.scheduler.next_run(f"backup:{w.pvc}"), None))
                for w in self.workers
            },
            # volumes whose first backup runs only if their repository holds no snapshot yet
            first_backup_if_unprotected=[w.pvc for w in self.workers if firsts[w.pvc].only_if_unprotected],
            metrics_port=settings.metrics_port,
        )

    def _retry_later(self, worker: VolumeWorker) -> None:
        if self.stopping or not self.runtime.retry_delay:
            return
        when = dt.datetime.now(UTC) + dt.timedelta(seconds=self.runtime.retry_delay)
        self.scheduler.run_once(f"retry:{worker.pvc}", lambda: worker.backup(), when)
        event(log, "backup.retry_scheduled", pvc=worker.pvc, at=when.isoformat())

    def request_stop(self) -> None:
        """First call: begin the shutdown sequence. Second call: cancel the final backups too."""
        if self.stop.is_set():
            event(log, "sidecar.cancel_final_backup", logging.WARNING)
            for worker in self.workers:
                worker.restic.cancel.set()
        self.stop.set()

    def wait(self, refresh: float = 30.0) -> None:
        """Blocks until a stop is requested, refreshing the volume metrics meanwhile."""
        while not self.stop.wait(refresh):
            for worker in self.workers:
                worker.refresh_volume_metric()

    def shutdown(self) -> list[GuardedBackup]:
        """Stops scheduling, cancels running work, takes the final backups within the budget."""
        self.stopping = True
        budget = self.runtime.final_backup_timeout
        started = time.monotonic()
        event(log, "sidecar.stopping", final_backup_timeout=budget)
        self.scheduler.shutdown()
        old_tokens = [w.restic.cancel for w in self.workers]
        for token in old_tokens:
            token.set()  # running scheduled work stops cleanly (SIGINT to restic)
        for worker in self.workers:
            if worker.mutex.acquire(timeout=self.runtime.stop_grace + 5):
                worker.mutex.release()
            worker.restic.cancel = threading.Event()
        results: list[GuardedBackup] = []
        if budget > 0:
            end = started + budget

            def remaining() -> float:
                return end - time.monotonic()

            def final(worker: VolumeWorker) -> None:
                # a Job's pod (LIFEBOAT_FORGET_AT_EXIT) forgets after it: each run of a CronJob adds
                # a snapshot and no scheduled forget may ever run in its short life
                result = worker.backup(deadline=remaining, then_forget=self.runtime.forget_at_exit)
                results.append(result)

            threads = [threading.Thread(target=final, args=(w,), name=f"final-{w.pvc}") for w in self.workers]

            # every restic call of the final backups (snapshots too, not only backup) ends at the
            # deadline: restic gets SIGINT and stops cleanly
            def out_of_time() -> None:
                for worker in self.workers:
                    worker.restic.cancel.set()

            alarm = threading.Timer(budget, out_of_time)
            alarm.daemon = True
            alarm.start()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            alarm.cancel()
            for result in results:
                event(
                    log,
                    "backup.final",
                    logging.INFO if result.succeeded else logging.WARNING,
                    pvc=result.pvc,
                    result=result.result,
                    snapshot=result.summary.snapshot_id if result.summary else None,
                    seconds=round(time.monotonic() - started, 3),
                )
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        event(log, "sidecar.stopped", seconds=round(time.monotonic() - started, 3))
        return results


def run_sidecar(
    runtime: Runtime,
    *,
    redact: Callable[[str], str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Runs until SIGTERM/SIGINT (or `stop` is set), then the final backup; returns the exit code."""
    sidecar = Sidecar(runtime, redact=redact)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: sidecar.request_stop())
    if stop is not None:

        def relay() -> None:
            stop.wait()
            sidecar.request_stop()

        threading.Thread(target=relay, daemon=True).start()
    sidecar.start()
    sidecar.wait()
    sidecar.shutdown()
    return EX_OK


def main(volumes: list[VolumeSpec], env: dict[str, str] | None = None) -> int:
    """`lifeboat sidecar`: validate (exit 78 naming the variable), then run the long-running process.

    With `env=None` (the real process environment) the process re-executes itself into the slim
    long-running form (see sidecar.runtime) and this call never returns. With an explicit `env`
    it runs here, in-process.
    """
    from sidecar.settings import ConfigError, build_runtime, load_sidecar_settings

    try:
        runtime = build_runtime(load_sidecar_settings(env), volumes)
    except ConfigError as exc:
        print(f"lifeboat sidecar: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    if env is None:
        _exec_slim(runtime)
    redactor = configure(Redactor(runtime.secrets), runtime.log_level)
    return run_sidecar(runtime, redact=redactor)


def _exec_slim(runtime: Runtime) -> None:
    """Replaces this process (same PID, so signals still reach it) by `python -m sidecar.daemon.main
    --runtime-fd N`, which reads the Runtime from an inherited pipe and never imports pydantic."""
    read_end, write_end = os.pipe()
    payload = runtime.to_json().encode()
    if len(payload) > 60_000:  # a pipe holds 64 KiB; a pod never has this many volumes
        raise ValueError("configuration too large to hand over")
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "sidecar.daemon.main", "--runtime-fd", str(read_end)]
    # One malloc arena, not one per job thread: each kept its freed memory after the first backups
    # (bench/sidecar_rss.py --new-repositories: 32.3 -> 32.0 MiB); the operator's value wins.
    env = {"MALLOC_ARENA_MAX": "1", **os.environ}
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, no shell


def _run_slim(fd: int) -> int:
    with os.fdopen(fd, "r") as handover:
        runtime = Runtime.from_json(handover.read())
    redactor = configure(Redactor(runtime.secrets), runtime.log_level)
    return run_sidecar(runtime, redact=redactor)


def _cli(argv: list[str] | None = None) -> int:
    """`python -m sidecar.daemon.main --volume PVC=PATH ...` (what `lifeboat sidecar` calls)."""
    parser = argparse.ArgumentParser(prog="lifeboat sidecar")
    parser.add_argument("--volume", action="append", default=[], metavar="PVC=PATH")
    parser.add_argument("--pvc-uid", action="append", default=[], metavar="PVC=UID")
    parser.add_argument("--repository", action="append", default=[], metavar="PVC=REPOSITORY")
    for option in ("--schedule", "--retention", "--adopt", "--retention-ack", "--drill"):
        parser.add_argument(option, action="append", default=[], metavar="PVC=VALUE")
    parser.add_argument("--runtime-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runtime_fd is not None:
        return _run_slim(args.runtime_fd)
    from sidecar.settings import ConfigError, parse_volumes

    try:
        volumes = parse_volumes(
            args.volume,
            args.pvc_uid,
            repositories=args.repository,
            schedule=args.schedule,
            retention=args.retention,
            adopt=args.adopt,
            retention_ack=args.retention_ack,
            drill=args.drill,
        )
    except ConfigError as exc:
        print(f"lifeboat sidecar: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    return main(volumes)


if __name__ == "__main__":
    sys.exit(_cli())

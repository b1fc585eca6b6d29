"""`lifeboat sidecar`: the long-running backup process of a pod, one for all its labelled volumes.

It wires the pieces and owns the process's life:
- at start: validate configuration (exit 78 naming the variable), read the restore handover, start
  the metrics server and the scheduler (backup, prune and check jobs per volume, each jittered);
  a volume that was restored or started fresh gets its first backup soon after start, so the
  newest snapshot carries this volume instance's UID before any restart can ask (sidecar.guard);
- while running: jobs of one volume never overlap (one mutex per volume); a failed backup is retried
  after LIFEBOAT_BACKUP_RETRY_DELAY; the volume's used bytes are refreshed for the metric;
- on SIGTERM (Kubernetes stops a native sidecar after the app, so the data is quiesced): stop the
  scheduler, cancel running work cleanly, take one final guarded backup of every volume within
  LIFEBOAT_FINAL_BACKUP_TIMEOUT; if time runs out restic is interrupted with SIGINT (no partial
  snapshot, its lock removed) and the process still exits 0. A second SIGTERM cancels at once.

The long-running process stays small: restic does the S3 work; boto3 is imported only if a
repository has to be created (the store probe), kubernetes never.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.backup import GuardedBackup, GuardPolicy, ensure_repository, guarded_backup, restic_for
from sidecar.cadence import UTC, Schedule, jitter_seconds
from sidecar.config import EX_CONFIG, EX_OK, ConfigError, VolumeSpec, parse_volumes
from sidecar.handover import Handover, read_handover
from sidecar.logs import Redactor, configure, event
from sidecar.maintenance import Maintenance, check, forget, prune
from sidecar.metrics import Metrics, serve
from sidecar.repository import for_volume
from sidecar.restic import Restic
from sidecar.retention import render
from sidecar.scheduler import JobSpec, Scheduler
from sidecar.sidecar_config import SidecarSettings, load_sidecar_settings
from sidecar.usage import filesystem_used_bytes

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Deadline = Callable[[], float]  # seconds left


@dataclass
class VolumeWorker:
    """Everything the sidecar does for one volume; each job holds the volume's mutex."""

    settings: SidecarSettings
    volume: VolumeSpec
    restic: Restic
    metrics: Metrics
    outcome: str | None
    clock: Clock = time.time
    own_snapshots: set[str] = field(default_factory=set)
    mutex: threading.Lock = field(default_factory=threading.Lock)
    on_failure: Callable[[VolumeWorker], None] | None = None
    _probe: Any = None

    @property
    def pvc(self) -> str:
        return self.volume.pvc

    def _ensure(self) -> tuple[bool, int, str]:
        if self._probe is None:
            from sidecar.store import StoreProbe  # boto3 only when a repository must be created

            self._probe = StoreProbe.from_settings(self.settings)
        repository = for_volume(self.settings, self.pvc, self.volume.repository)
        return ensure_repository(self._probe, self.restic, repository)

    def backup(
        self, *, deadline: Callable[[], float] | None = None, then_forget: bool = True
    ) -> GuardedBackup:
        """One guarded backup, then forget by the retention policy; records metrics."""
        with self.mutex:
            result = guarded_backup(
                self.settings.namespace,
                self.volume,
                self.restic,
                outcome=self.outcome,
                policy=GuardPolicy(adopt=self.settings.adopt, shrink_limit=self.settings.shrink_limit),
                ensure=self._ensure,
                lock_patience=self.settings.lock_retry,
                deadline=deadline,
            )
            self.metrics.observe_backup(result, self.clock())
            if result.succeeded and result.summary and result.summary.snapshot_id:
                self.own_snapshots.add(result.summary.snapshot_id)
                if then_forget:
                    self._record(
                        forget(
                            self.restic, self.pvc, self.settings.retention, patience=self.settings.lock_retry
                        )
                    )
        if result.result in ("failed", "locked") and self.on_failure is not None:
            self.on_failure(self)
        return result

    def prune(self) -> Maintenance:
        with self.mutex:
            return self._record(
                prune(self.restic, self.pvc, self.own_snapshots, patience=self.settings.lock_retry)
            )

    def check(self) -> Maintenance:
        with self.mutex:
            return self._record(
                check(
                    self.restic,
                    self.pvc,
                    self.own_snapshots,
                    read_data_subset=self.settings.check_read_data_subset,
                    patience=self.settings.lock_retry,
                )
            )

    def _record(self, result: Maintenance) -> Maintenance:
        self.metrics.observe_maintenance(self.pvc, result, self.clock())
        return result

    def refresh_volume_metric(self) -> None:
        self.metrics.observe_volume(self.pvc, filesystem_used_bytes(self.volume.path))


def job_specs(workers: list[VolumeWorker], settings: SidecarSettings) -> list[JobSpec]:
    """Backup, prune and check jobs of every volume, each at its own jittered second."""
    specs = []
    plans: list[tuple[str, Schedule]] = [
        ("backup", settings.schedule),
        ("prune", settings.prune_schedule),
        ("check", settings.check_schedule),
    ]
    for worker in workers:
        for kind, schedule in plans:
            offset = jitter_seconds(settings.namespace, worker.pvc, kind, schedule.spread())
            specs.append(JobSpec(f"{kind}:{worker.pvc}", getattr(worker, kind), schedule.cron, offset))
    return specs


class Sidecar:
    """The running process: workers, scheduler, metrics server, and the shutdown sequence."""

    def __init__(
        self,
        volumes: list[VolumeSpec],
        settings: SidecarSettings,
        *,
        redact: Callable[[str], str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.handover: dict[str, Handover] = read_handover(settings.state_dir)
        self.metrics = Metrics(settings.namespace, [v.pvc for v in volumes])
        self.workers: list[VolumeWorker] = []
        for volume in volumes:
            repository = for_volume(settings, volume.pvc, volume.repository)
            restic = restic_for(settings, repository, redact)
            restic.grace = settings.stop_grace
            restic.lock_retry = 0  # lock waits happen in sidecar.locking, where they are measured
            outcome = self.handover[volume.pvc].outcome if volume.pvc in self.handover else None
            worker = VolumeWorker(settings, volume, restic, self.metrics, outcome, clock=clock)
            worker.on_failure = self._retry_later
            self.workers.append(worker)
            self.metrics.observe_outcome(volume.pvc, outcome)
            worker.refresh_volume_metric()
        self.scheduler = Scheduler(job_specs(self.workers, settings), workers=len(self.workers) + 1)
        self.stop = threading.Event()
        self.stopping = False
        self.started = False
        self.server: Any = None

    # -- health ---------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.stopping or self.scheduler.running

    def ready(self) -> bool:
        return self.started and not self.stopping

    # -- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.settings
        if settings.metrics_port:
            self.server = serve(
                self.metrics,
                settings.metrics_address,
                settings.metrics_port,
                healthy=self.healthy,
                ready=self.ready,
            )
        self.scheduler.start()
        now = dt.datetime.now(UTC)
        for worker in self.workers:
            if worker.outcome in ("restored", "fresh"):
                when = now + dt.timedelta(seconds=settings.first_backup_delay)
                self.scheduler.run_once(f"first-backup:{worker.pvc}", worker.backup, when)
        self.started = True
        event(
            log,
            "sidecar.started",
            volumes=[w.pvc for w in self.workers],
            outcomes={w.pvc: w.outcome for w in self.workers},
            schedule=settings.schedule_text,
            retention=render(settings.retention),
            next_backups={w.pvc: str(self.scheduler.next_run(f"backup:{w.pvc}")) for w in self.workers},
            metrics_port=settings.metrics_port,
        )

    def _retry_later(self, worker: VolumeWorker) -> None:
        if self.stopping or not self.settings.retry_delay:
            return
        when = dt.datetime.now(UTC) + dt.timedelta(seconds=self.settings.retry_delay)
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
        budget = self.settings.final_backup_timeout
        started = time.monotonic()
        event(log, "sidecar.stopping", final_backup_timeout=budget)
        self.scheduler.shutdown()
        old_tokens = [w.restic.cancel for w in self.workers]
        for token in old_tokens:
            token.set()  # running scheduled work stops cleanly (SIGINT to restic)
        for worker in self.workers:
            if worker.mutex.acquire(timeout=self.settings.stop_grace + 5):
                worker.mutex.release()
            worker.restic.cancel = threading.Event()
        results: list[GuardedBackup] = []
        if budget > 0:
            end = started + budget

            def remaining() -> float:
                return end - time.monotonic()

            def final(worker: VolumeWorker) -> None:
                result = worker.backup(deadline=remaining, then_forget=False)
                results.append(result)

            threads = [threading.Thread(target=final, args=(w,), name=f"final-{w.pvc}") for w in self.workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
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
    volumes: list[VolumeSpec],
    settings: SidecarSettings,
    *,
    redact: Callable[[str], str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Runs until SIGTERM/SIGINT (or `stop` is set), then the final backup; returns the exit code."""
    sidecar = Sidecar(volumes, settings, redact=redact)
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
    """`lifeboat sidecar`: validate the configuration (exit 78 on error), log JSON, run."""
    try:
        settings = load_sidecar_settings(env)
    except ConfigError as exc:
        print(f"lifeboat sidecar: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    redactor = configure(Redactor(settings.secrets()))
    return run_sidecar(volumes, settings, redact=redactor)


def _cli(argv: list[str] | None = None) -> int:
    """`python -m sidecar.daemon --volume PVC=PATH ...` (what `lifeboat sidecar` calls)."""
    parser = argparse.ArgumentParser(prog="lifeboat sidecar")
    parser.add_argument("--volume", action="append", default=[], metavar="PVC=PATH")
    parser.add_argument("--pvc-uid", action="append", default=[], metavar="PVC=UID")
    parser.add_argument("--repository", action="append", default=[], metavar="PVC=REPOSITORY")
    args = parser.parse_args(argv)
    try:
        volumes = parse_volumes(args.volume, args.pvc_uid, repositories=args.repository)
    except ConfigError as exc:
        print(f"lifeboat sidecar: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    return main(volumes)


if __name__ == "__main__":
    sys.exit(_cli())

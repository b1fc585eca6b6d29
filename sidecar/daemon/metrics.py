"""Prometheus metrics and the /healthz, /readyz probes of the sidecar, on one small HTTP server.

Users' worst surprise is learning, on the day they need a restore, that backups stopped weeks ago.
So every outcome lands in a metric labelled by `namespace` and `persistentvolumeclaim` (the labels
kubelet's volume stats carry), named by Prometheus conventions
(`_seconds`, `_bytes`, `_total`, timestamps as `_timestamp_seconds`), and the alert examples in
docs/backup.md only need these. The registry is an instance, not prometheus-client's global, so two
sidecars in one test process never share numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from sidecar.backup.guard import Reason
from sidecar.backup.guarded import GuardedBackup
from sidecar.daemon.breaker import Reason as BreakerReason
from sidecar.daemon.maintenance import Maintenance
from sidecar.drill.plan import RESULTS as DRILL_RESULTS
from sidecar.drill.plan import DrillReport

BACKUP_RESULTS = ("success", "incomplete", "blocked", "locked", "failed", "cancelled")
MAINTENANCE_RESULTS = ("success", "failed", "skipped", "locked", "cancelled", "refused")
OUTCOMES = ("restored", "fresh", "skipped", "unknown")
# `persistentvolumeclaim`, as kubelet's and kube-state-metrics' volume series name it, so alerts
# join with `kubelet_volume_stats_*` without label_replace
LABELS = ("namespace", "persistentvolumeclaim")


class Metrics:
    """All of the sidecar's metrics, on a registry of their own."""

    def __init__(self, namespace: str, pvcs: Iterable[str]) -> None:
        self.namespace = namespace
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.last_success = Gauge(
            "lifeboat_backup_last_success_timestamp_seconds",
            "Unix time of the last backup that wrote a snapshot.",
            LABELS,
            registry=r,
        )
        self.duration = Histogram(
            "lifeboat_backup_duration_seconds",
            "Wall time of backups that wrote a snapshot (restic's own duration).",
            LABELS,
            registry=r,
            buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600),
        )
        self.backups = Counter(
            "lifeboat_backups", "Backups attempted, by result.", (*LABELS, "result"), registry=r
        )
        self.added = Gauge(
            "lifeboat_backup_added_bytes",
            "Bytes the last backup added to the repository.",
            LABELS,
            registry=r,
        )
        self.snapshots = Gauge(
            "lifeboat_snapshots", "Snapshots in the repository after the last forget.", LABELS, registry=r
        )
        self.lock_wait = Counter(
            "lifeboat_lock_wait_seconds",
            "Seconds spent waiting for other processes' repository locks.",
            (*LABELS, "operation"),
            registry=r,
        )
        self.restic_retries = Counter(
            "lifeboat_restic_retries",
            "Store requests restic retried (it rides out outages of up to 15 minutes), by restic command.",
            (*LABELS, "operation"),
            registry=r,
        )
        self.stale_locks = Counter(
            "lifeboat_stale_locks_removed",
            "Stale locks (older than restic's 30 minutes) removed.",
            LABELS,
            registry=r,
        )
        self.check_last_success = Gauge(
            "lifeboat_check_last_success_timestamp_seconds",
            "Unix time of the last `restic check` that found no errors.",
            LABELS,
            registry=r,
        )
        self.prune_last_success = Gauge(
            "lifeboat_prune_last_success_timestamp_seconds",
            "Unix time of the last successful `restic prune`.",
            LABELS,
            registry=r,
        )
        self.maintenance = Counter(
            "lifeboat_maintenance",
            "Forget, prune and check runs, by operation and result.",
            (*LABELS, "operation", "result"),
            registry=r,
        )
        self.restore_outcome = Gauge(
            "lifeboat_restore_outcome",
            "How the volume started (1 for the init container's outcome, 0 for the others).",
            (*LABELS, "outcome"),
            registry=r,
        )
        self.volume_used = Gauge(
            "lifeboat_volume_used_bytes", "Bytes used on the volume's file system.", LABELS, registry=r
        )
        self.guard_blocked = Gauge(
            "lifeboat_guard_blocked",
            "1 while the guard refuses backups of the volume for this reason.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.retention_refusals = Counter(
            "lifeboat_retention_refusals",
            "Forgets and prunes the retention breaker refused, by reason.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.breaker_tripped = Gauge(
            "lifeboat_retention_breaker_tripped",
            "1 while the retention breaker holds forget and prune of the repository.",
            LABELS,
            registry=r,
        )
        self.interval = Gauge(
            "lifeboat_backup_interval_seconds",
            "The PVC's schedule: the longest gap between two of its backups (staleness is judged by it).",
            LABELS,
            registry=r,
        )
        self.started = Gauge(
            "lifeboat_sidecar_start_time_seconds",
            "Unix time the backup sidecar started (with no success since then, a PVC was never backed up).",
            LABELS,
            registry=r,
        )
        self.clock_skew = Gauge(
            "lifeboat_clock_skew_seconds",
            "This sidecar's clock minus the store's (its Date header), at the last forget or prune.",
            LABELS,
            registry=r,
        )
        self._drills_proven: set[str] = set()  # PVCs whose drill succeeded or failed at least once
        self.drill_last_success = Gauge(
            "lifeboat_drill_last_success_timestamp_seconds",
            "Unix time of the last restore drill that found nothing wrong.",
            LABELS,
            registry=r,
        )
        self.drill_last_result = Gauge(
            "lifeboat_drill_last_result",
            "1 for the last restore drill's result (success, failed, skipped, cancelled), 0 for the others.",
            (*LABELS, "result"),
            registry=r,
        )
        self.drill_duration = Gauge(
            "lifeboat_drill_duration_seconds", "Wall time of the last restore drill.", LABELS, registry=r
        )
        self.drill_interval = Gauge(
            "lifeboat_drill_interval_seconds",
            "The PVC's drill schedule: the longest gap between two drills (absent when drills are off).",
            LABELS,
            registry=r,
        )
        self.drill_files = Gauge(
            "lifeboat_drill_files",
            "Files of the last drill's snapshot: `checked` (restored and counted) and `total`.",
            (*LABELS, "scope"),
            registry=r,
        )
        self.drill_bytes = Gauge(
            "lifeboat_drill_bytes",
            "Bytes of the last drill's snapshot: `checked` (restored and counted) and `total`.",
            (*LABELS, "scope"),
            registry=r,
        )
        self.drill_databases_failed = Gauge(
            "lifeboat_drill_databases_failed",
            "SQLite databases of the last drill that failed `PRAGMA integrity_check` or did not open.",
            LABELS,
            registry=r,
        )
        self.sqlite_databases = Gauge(
            "lifeboat_sqlite_databases",
            "SQLite databases on the volume at the last backup, by capture status (captured, failed).",
            (*LABELS, "status"),
            registry=r,
        )
        self.sqlite_hold = Gauge(
            "lifeboat_sqlite_capture_hold_seconds",
            "Longest read lock a SQLite capture held at the last backup (a rollback-mode writer's wait).",
            LABELS,
            registry=r,
        )
        self.live_servers = Gauge(
            "lifeboat_live_server_database",
            "1 while the volume holds a live server database's data directory"
            " (its file-level copy is not consistent).",
            (*LABELS, "engine"),
            registry=r,
        )
        for pvc in pvcs:
            for status in ("captured", "failed"):
                self.sqlite_databases.labels(namespace, pvc, status).set(0)
            for cause in BreakerReason:
                self.retention_refusals.labels(namespace, pvc, cause.value)
            self.breaker_tripped.labels(namespace, pvc).set(0)
            for result in BACKUP_RESULTS:
                self.backups.labels(namespace, pvc, result)
            for reason in Reason:
                self.guard_blocked.labels(namespace, pvc, reason.value).set(0)
            for operation in ("backup", "forget", "prune", "check"):
                self.lock_wait.labels(namespace, pvc, operation)
                self.restic_retries.labels(namespace, pvc, operation)
            self.stale_locks.labels(namespace, pvc)

    def observe_start(self, pvc: str, interval: int, now: float) -> None:
        self.interval.labels(self.namespace, pvc).set(interval)
        self.started.labels(self.namespace, pvc).set(now)

    def observe_drill_schedule(self, pvc: str, interval: int | None) -> None:
        """A PVC with drills on gets its interval and a zero for every result; off: no series."""
        if interval is None:
            return
        self.drill_interval.labels(self.namespace, pvc).set(interval)
        for result in DRILL_RESULTS:
            self.drill_last_result.labels(self.namespace, pvc, result)

    def observe_drill(self, pvc: str, report: DrillReport, now: float) -> None:
        """Records a drill. A skipped or cancelled one proved nothing either way: it shows as the
        last result only until a drill has succeeded or failed, so it never hides a failure."""
        ns = self.namespace
        if report.result in ("skipped", "cancelled") and pvc in self._drills_proven:
            return
        if report.result in ("success", "failed"):
            self._drills_proven.add(pvc)
        for result in DRILL_RESULTS:
            self.drill_last_result.labels(ns, pvc, result).set(1 if result == report.result else 0)
        if report.result in ("skipped", "cancelled"):
            return
        self.drill_duration.labels(ns, pvc).set(report.seconds)
        self.drill_files.labels(ns, pvc, "checked").set(report.files_checked)
        self.drill_files.labels(ns, pvc, "total").set(report.files_total)
        self.drill_bytes.labels(ns, pvc, "checked").set(report.bytes_checked)
        self.drill_bytes.labels(ns, pvc, "total").set(report.bytes_total)
        self.drill_databases_failed.labels(ns, pvc).set(report.databases_failed)
        if report.result == "success":
            self.drill_last_success.labels(ns, pvc).set(now)

    def observe_outcome(self, pvc: str, outcome: str | None) -> None:
        for name in OUTCOMES:
            self.restore_outcome.labels(self.namespace, pvc, name).set(
                1 if name == (outcome or "unknown") else 0
            )

    def observe_backup(self, result: GuardedBackup, now: float) -> None:
        ns, pvc = self.namespace, result.pvc
        self.backups.labels(ns, pvc, result.result).inc()
        self.lock_wait.labels(ns, pvc, "backup").inc(result.lock_wait)
        self.stale_locks.labels(ns, pvc).inc(result.stale_locks_removed)
        if result.result == "blocked" and result.verdict and result.verdict.reason:
            for reason in Reason:
                self.guard_blocked.labels(ns, pvc, reason.value).set(
                    1 if reason is result.verdict.reason else 0
                )
        elif result.wrote_snapshot:  # the guard let it through (an incomplete one too)
            for reason in Reason:
                self.guard_blocked.labels(ns, pvc, reason.value).set(0)
        if result.wrote_snapshot:
            self.sqlite_databases.labels(ns, pvc, "captured").set(len(result.capture.captured))
            self.sqlite_databases.labels(ns, pvc, "failed").set(len(result.capture.failed))
            self.sqlite_hold.labels(ns, pvc).set(result.capture.longest_hold)
        if result.volume is not None:  # the volume was surveyed
            for engine in {engine for _, engine in result.servers}:
                self.live_servers.labels(ns, pvc, engine).set(1)
        if result.succeeded and result.summary is not None:
            self.last_success.labels(ns, pvc).set(now)
            self.duration.labels(ns, pvc).observe(result.summary.seconds)
            self.added.labels(ns, pvc).set(result.summary.data_added)
            self.snapshots.labels(ns, pvc).set(result.snapshots_before + 1)

    def observe_maintenance(self, pvc: str, result: Maintenance, now: float) -> None:
        ns = self.namespace
        self.maintenance.labels(ns, pvc, result.operation, result.result).inc()
        self.lock_wait.labels(ns, pvc, result.operation).inc(result.lock_wait)
        self.stale_locks.labels(ns, pvc).inc(result.stale_locks_removed)
        if result.snapshots is not None:
            self.snapshots.labels(ns, pvc).set(result.snapshots)
        verdict = result.breaker
        if verdict is not None:
            if verdict.skew_seconds is not None:
                self.clock_skew.labels(ns, pvc).set(verdict.skew_seconds)
            if not verdict.allowed and verdict.reason is not None:
                self.retention_refusals.labels(ns, pvc, verdict.reason.value).inc()
            self.breaker_tripped.labels(ns, pvc).set(0 if verdict.allowed else 1)
        if result.result == "success" and result.operation == "check":
            self.check_last_success.labels(ns, pvc).set(now)
        if result.result == "success" and result.operation == "prune":
            self.prune_last_success.labels(ns, pvc).set(now)

    def observe_restic_retries(self, pvc: str, command: str, retries: int) -> None:
        """restic retried `retries` store requests during `command` (a restic subcommand: few values)."""
        self.restic_retries.labels(self.namespace, pvc, command).inc(retries)

    def observe_volume(self, pvc: str, used: int | None) -> None:
        if used is not None:
            self.volume_used.labels(self.namespace, pvc).set(used)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(
    metrics: Metrics, address: str, port: int, *, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Starts `/metrics`, `/healthz` and `/readyz` on a daemon thread; `shutdown()` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/livez"):
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
            elif path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

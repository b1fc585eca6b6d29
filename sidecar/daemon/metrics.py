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
        for pvc in pvcs:
            for cause in BreakerReason:
                self.retention_refusals.labels(namespace, pvc, cause.value)
            self.breaker_tripped.labels(namespace, pvc).set(0)
            for result in BACKUP_RESULTS:
                self.backups.labels(namespace, pvc, result)
            for reason in Reason:
                self.guard_blocked.labels(namespace, pvc, reason.value).set(0)
            for operation in ("backup", "forget", "prune", "check"):
                self.lock_wait.labels(namespace, pvc, operation)
            self.stale_locks.labels(namespace, pvc)

    def observe_start(self, pvc: str, interval: int, now: float) -> None:
        self.interval.labels(self.namespace, pvc).set(interval)
        self.started.labels(self.namespace, pvc).set(now)

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

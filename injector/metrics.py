"""The injector's Prometheus metrics, on a registry owned by the process (no global state).

Counts admissions by outcome and their latency, the un-injected pods the controller found, and
when the serving certificate expires. Labels never carry secrets or pod names (cardinality).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.admissions = Counter(
            "lifeboat_admission_requests",
            "AdmissionReviews answered, by outcome (injected, admitted, denied, bad-request).",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lifeboat_admission_duration_seconds",
            "Time from the end of the request body to the reply, in seconds.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.pvc_lookups = Counter(
            "lifeboat_pvc_lookups",
            "PVC lookups by source (cache, api, unavailable).",
            ["source"],
            registry=self.registry,
        )
        self.uninjected_pods = Gauge(
            "lifeboat_uninjected_pods",
            "Running pods that mount a PVC labelled for backup but have no Lifeboat containers.",
            registry=self.registry,
        )
        self.mirrored_namespaces = Gauge(
            "lifeboat_credentials_mirrored_namespaces",
            "Namespaces holding an up-to-date mirrored credentials Secret.",
            registry=self.registry,
        )
        self.mirror_failures = Counter(
            "lifeboat_credentials_mirror_failures",
            "Credential mirror writes or reads that failed, by namespace (the other namespaces go on).",
            ["namespace"],
            registry=self.registry,
        )
        self.invalid_backup_labels = Gauge(
            "lifeboat_pvc_backup_label_invalid",
            "1 for each PVC of an opted-in namespace whose backup label has a value Lifeboat does not "
            "act on (e.g. Daily): it is not backed up.",
            ["namespace", "persistentvolumeclaim"],
            registry=self.registry,
        )
        self.events = Counter(
            "lifeboat_events_created",
            "Kubernetes Events the controller created, by reason (once per outcome per object).",
            ["reason"],
            registry=self.registry,
        )
        self.sidecar_scrape_failures = Counter(
            "lifeboat_sidecar_scrape_failures",
            "Sidecar metrics reads (for guard-refusal Events) that failed: network policy, pod starting.",
            registry=self.registry,
        )
        self.controller_errors = Counter(
            "lifeboat_controller_errors", "Controller loop iterations that failed.", registry=self.registry
        )
        self.cert_expiry = Gauge(
            "lifeboat_injector_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (Unix time).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

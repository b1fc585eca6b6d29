"""The injector's control loop: serving certificate, credential mirrors, un-injected pod reports.

All Kubernetes writes of the injector happen here, and each is narrow:

* the TLS Secret in the injector's own namespace and the ``caBundle`` of its own
  MutatingWebhookConfiguration (RBAC limited by resource name);
* a Secret named ``credentials_secret`` in each opted-in namespace, labelled as managed by
  Lifeboat; one that Lifeboat did not create is never overwritten or deleted;
* an Event on each running pod that mounts a labelled PVC but was admitted without injection.

Every replica runs the loop. Writes use resourceVersion preconditions or fixed names, so two
replicas racing produce one winner and a harmless conflict, which is cheaper than leader election.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from injector.cache import ClusterCache
from injector.config import (
    BACKUP_LABEL,
    INJECT_NAMESPACE_LABEL,
    INJECT_NAMESPACE_VALUE,
    RESTORE_CONTAINER,
    InjectorSettings,
)
from injector.credentials import (
    Layout,
    SourceSecretInvalid,
    UninjectedPod,
    check_source,
    find_uninjected,
    lacking_keys,
    mirror_labels,
    namespace_key_names,
    plan_mirrors,
)
from injector.metrics import Metrics
from injector.podevents import (
    InvalidLabel,
    ObjectRef,
    PlannedEvent,
    blocked_from_metrics,
    drill_events,
    failed_drills_from_metrics,
    guard_events,
    invalid_label_events,
    invalid_labels,
    metrics_endpoint,
    report_events,
)
from injector.tls import Bundle, not_after, renew, renewal_reason, write_files
from lifeboat.contract import BACKUP_VALUES
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.controller")


def _decode(data: dict[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def _has_container(pod: dict[str, Any], name: str) -> bool:
    spec = pod.get("spec") or {}
    return any(
        c.get("name") == name for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    )


def created_labels(component: str) -> dict[str, str]:
    """The recommended labels on what the injector creates (Events, mirrored Secrets)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        current = version("lifeboat")
    except PackageNotFoundError:
        current = "unknown"
    return {
        "app.kubernetes.io/name": "lifeboat",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "lifeboat",
        "app.kubernetes.io/version": current,
        **mirror_labels(),  # app.kubernetes.io/managed-by: lifeboat
    }


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class Controller:
    def __init__(
        self,
        settings: InjectorSettings,
        core: Any,
        admission_api: Any,
        cache: ClusterCache,
        metrics: Metrics,
        tls_dir: Path,
        now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self.settings = settings
        self.core = core
        self.admission_api = admission_api
        self.cache = cache
        self.metrics = metrics
        self.tls_dir = tls_dir
        self.now = now
        self.wake = threading.Event()
        self._stop = threading.Event()
        # Set while the source Secret is readable and holds every required key: the injector is
        # Ready only then (an injected pod could not start without the namespace's mirror anyway),
        # so `helm --wait`, ArgoCD and Flux see it and order the Secret first (issue 14 item 5).
        self.source_ready = threading.Event()
        self._source_reported = False  # the current problem was logged once (every 5 s is noise)
        self._reported: set[str] = set()

    # TLS ---------------------------------------------------------------------------------------

    def ensure_tls(self) -> Bundle:
        """Reads the TLS Secret, re-issues if needed, writes the files, patches caBundle."""
        s = self.settings
        secret = self.core.read_namespaced_secret(s.tls_secret, s.namespace)
        bundle = Bundle.from_secret_data(_decode(secret.data))
        reason = renewal_reason(bundle, s.service_dns_names, self.now(), s.cert_renew_before_days)
        if reason is not None:
            fresh = renew(
                bundle, s.service_dns_names, self.now(), s.cert_validity_days, s.cert_renew_before_days
            )
            secret.data = {k: base64.b64encode(v).decode() for k, v in fresh.as_secret_data().items()}
            try:
                # replace carries the resourceVersion we read: a concurrent replica wins or we do.
                self.core.replace_namespaced_secret(s.tls_secret, s.namespace, secret)
                bundle = fresh
                event(log, "tls.issued", reason=reason, expires=not_after(fresh.cert).isoformat())
            except Exception as exc:
                if _status(exc) != 409:
                    raise
                secret = self.core.read_namespaced_secret(s.tls_secret, s.namespace)
                bundle = Bundle.from_secret_data(_decode(secret.data))
                if bundle is None:
                    raise RuntimeError("TLS Secret changed under us but holds no certificate") from None
        assert bundle is not None
        write_files(bundle, self.tls_dir)
        self.metrics.cert_expiry.set(not_after(bundle.cert).timestamp())
        self.patch_ca_bundle(bundle.ca_cert)
        return bundle

    def patch_ca_bundle(self, ca_pem: bytes) -> bool:
        name = self.settings.webhook_config_name
        config = self.admission_api.read_mutating_webhook_configuration(name)
        wanted = base64.b64encode(ca_pem).decode()
        changed = False
        for hook in config.webhooks or []:
            if hook.client_config.ca_bundle != wanted:
                hook.client_config.ca_bundle = wanted
                changed = True
        if changed:
            self.admission_api.replace_mutating_webhook_configuration(name, config)
            event(log, "tls.ca_bundle_patched", webhook_configuration=name)
        return changed

    # Credentials -------------------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        return Layout(self.settings.cluster_name, self.settings.per_namespace_s3_keys)

    def opted_in(self) -> list[str]:
        s = self.settings
        return sorted(
            name
            for name, labels in self.cache.namespaces().items()
            if labels.get(INJECT_NAMESPACE_LABEL) == INJECT_NAMESPACE_VALUE
            and name != s.namespace
            and name not in s.excluded_namespaces
        )

    def mirror_credentials(self) -> int:
        """Brings every namespace's mirror in line with the source Secret; returns writes done."""
        from kubernetes import client  # heavy import kept at the edge

        s = self.settings
        source = self.read_source()
        wanted = self.opted_in()
        existing: dict[str, dict[str, str] | None] = {}
        managed: dict[str, bool] = {}
        skipped: set[str] = set()
        for namespace in sorted(self.cache.namespaces()):
            if namespace == s.namespace:
                continue
            try:
                current = self.core.read_namespaced_secret(s.credentials_secret, namespace)
            except Exception as exc:
                if _status(exc) == 404:
                    existing[namespace] = None
                    continue
                # one namespace's trouble (Terminating, RBAC, a flaky read) never blocks the others
                self._namespace_failed(namespace, "read", exc)
                skipped.add(namespace)
                continue
            existing[namespace] = {k: v.decode() for k, v in _decode(current.data).items()}
            labels = current.metadata.labels or {}
            managed[namespace] = all(labels.get(k) == v for k, v in mirror_labels().items())
        for namespace in lacking_keys(source, wanted, self.layout):
            # per-namespace S3 keys: no keys of its own, no Secret (fail closed); the others go on
            event(
                log,
                "credentials.namespace_keys_missing",
                logging.WARNING,
                namespace=namespace,
                keys=list(namespace_key_names(namespace)),
                secret=s.source_secret,
            )
            self.metrics.mirror_failures.labels(namespace=namespace).inc()
            wanted = [n for n in wanted if n != namespace]
        try:
            actions = plan_mirrors(
                source, [n for n in wanted if n not in skipped], existing, managed, self.layout
            )
        except SourceSecretInvalid as exc:
            event(log, "credentials.source_invalid", logging.ERROR, secret=s.source_secret, error=str(exc))
            raise
        done = 0
        for action in actions:
            try:
                if action.kind == "delete":
                    self.core.delete_namespaced_secret(s.credentials_secret, action.namespace)
                else:
                    body = client.V1Secret(
                        metadata=client.V1ObjectMeta(
                            name=s.credentials_secret,
                            namespace=action.namespace,
                            labels=created_labels("credentials"),
                        ),
                        type="Opaque",
                        string_data=action.data,
                    )
                    if action.kind == "create":
                        self.core.create_namespaced_secret(action.namespace, body)
                    else:
                        self.core.replace_namespaced_secret(s.credentials_secret, action.namespace, body)
            except Exception as exc:
                # e.g. 403 "namespace is being terminated": the others are still written
                self._namespace_failed(action.namespace, action.kind, exc)
                skipped.add(action.namespace)
                continue
            done += 1
            event(log, f"credentials.{action.kind}d", namespace=action.namespace, secret=s.credentials_secret)
        self.metrics.mirrored_namespaces.set(len([n for n in wanted if n not in skipped]))
        return done

    def read_source(self) -> dict[str, str]:
        """The source Secret's data, checked for the required keys; sets or clears readiness."""
        s = self.settings
        try:
            secret = self.core.read_namespaced_secret(s.source_secret, s.namespace)
            source = {k: v.decode() for k, v in _decode(secret.data).items()}
            check_source(source, self.layout)  # raises naming the missing keys, never values
        except Exception as exc:
            if not self._source_reported:
                status = _status(exc)
                if isinstance(exc, SourceSecretInvalid):
                    problem = str(exc)
                elif status == 404:
                    problem = (
                        f"Secret {s.namespace}/{s.source_secret} does not exist; create it (docs/install.md)"
                    )
                else:
                    why = status or type(exc).__name__
                    problem = f"cannot read Secret {s.namespace}/{s.source_secret}: API error {why}"
                event(
                    log,
                    "credentials.source_unavailable",
                    logging.ERROR,
                    secret=s.source_secret,
                    problem=problem,
                    effect="not Ready until the source Secret is readable with every required key",
                )
                self._source_reported = True
            self.source_ready.clear()
            raise
        if not self.source_ready.is_set():
            event(log, "credentials.source_ready", secret=s.source_secret)
        self._source_reported = False
        self.source_ready.set()
        return source

    def _namespace_failed(self, namespace: str, operation: str, exc: Exception) -> None:
        status = _status(exc)
        event(
            log,
            "credentials.namespace_failed",
            logging.WARNING,
            namespace=namespace,
            operation=operation,
            status=status,
            error=type(exc).__name__ if status is None else f"API error {status}",
        )
        self.metrics.mirror_failures.labels(namespace=namespace).inc()

    # Un-injected pods --------------------------------------------------------------------------

    def report_uninjected(self) -> list[UninjectedPod]:
        from kubernetes import client  # heavy import kept at the edge

        pods: list[dict[str, Any]] = []
        api = client.ApiClient()
        for namespace in self.opted_in():
            listing = self.core.list_namespaced_pod(namespace)
            pods += [api.sanitize_for_serialization(p) for p in listing.items]
        found = find_uninjected(pods, self.cache.pvc_labels())
        self.metrics.uninjected_pods.set(len(found))
        for pod in found:
            if pod.uid in self._reported:
                continue
            message = (
                f"Pod mounts PVC(s) {', '.join(pod.pvcs)} labelled for backup but has no Lifeboat containers "
                "(created before Lifeboat or while it was unavailable). "
                "Delete or restart the pod to get backups."
            )
            event(
                log,
                "controller.uninjected_pod",
                logging.WARNING,
                namespace=pod.namespace,
                pod=pod.name,
                pvcs=list(pod.pvcs),
            )
            self._create_event(
                f"lifeboat-uninjected.{pod.uid}",
                ObjectRef("Pod", pod.namespace, pod.name, pod.uid),
                reason="LifeboatNotInjected",
                type="Warning",
                message=message,
                now=self.now(),
            )  # False: the other replica reported it already
            self._reported.add(pod.uid)
        return found

    # Events from the pods' reports -------------------------------------------------------------

    def report_pod_events(self) -> list[PlannedEvent]:
        """Events for restore outcomes, guard refusals and mislabelled PVCs (docs/operations.md).

        Reads what the kubelet and the sidecars already publish (termination messages, container
        states, the sidecar's metrics port): the pods themselves get no Kubernetes credentials."""
        from kubernetes import client  # heavy import kept at the edge

        api = client.ApiClient()
        now = self.now()
        planned: list[PlannedEvent] = []
        pods: list[dict[str, Any]] = []
        mislabelled: list[InvalidLabel] = []
        for namespace in self.opted_in():
            try:
                listed = self.core.list_namespaced_pod(namespace).items
                claims = self.core.list_namespaced_persistent_volume_claim(
                    namespace,
                    label_selector=f"{BACKUP_LABEL},{BACKUP_LABEL} notin ({','.join(BACKUP_VALUES)})",
                ).items
            except Exception as exc:  # one namespace's trouble never blocks the others
                event(
                    log, "events.namespace_failed", logging.WARNING, namespace=namespace, status=_status(exc)
                )
                continue
            pods += [api.sanitize_for_serialization(p) for p in listed]
            mislabelled += invalid_labels(api.sanitize_for_serialization(c) for c in claims)
        injected = [p for p in pods if _has_container(p, RESTORE_CONTAINER)]
        for pod in injected:
            planned += report_events(pod, now)
        planned += self._guard_events(injected)
        planned += invalid_label_events(mislabelled, pods)
        self.metrics.invalid_backup_labels.clear()
        for found in mislabelled:
            self.metrics.invalid_backup_labels.labels(found.pvc.namespace, found.pvc.name).set(1)
        for item in planned:
            self._emit(item, now)
        return planned

    def _guard_events(self, pods: list[dict[str, Any]]) -> list[PlannedEvent]:
        """Scrapes each running sidecar's metrics (a few at a time, short timeout) for guard refusals."""
        import urllib.request
        from concurrent.futures import ThreadPoolExecutor

        def scrape(pod: dict[str, Any]) -> list[PlannedEvent]:
            url = metrics_endpoint(pod)
            if url is None:
                return []
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - http to a pod IP
                    text = reply.read(4 * 1024 * 1024).decode("utf-8", "replace")
            except Exception:
                self.metrics.sidecar_scrape_failures.inc()
                return []
            return guard_events(pod, blocked_from_metrics(text)) + drill_events(
                pod, failed_drills_from_metrics(text)
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            return [e for found in pool.map(scrape, pods) for e in found]

    def _emit(self, item: PlannedEvent, now: _dt.datetime) -> None:
        """Creates the Event once: a known name (this process, another replica) is skipped."""
        if item.name in self._reported:
            return
        target = item.target
        try:
            created = self._create_event(
                item.name, target, reason=item.reason, type=item.type, message=item.message, now=now
            )
        except Exception as exc:
            event(
                log,
                "events.create_failed",
                logging.WARNING,
                namespace=target.namespace,
                reason=item.reason,
                status=_status(exc),
            )
            return
        if created:  # else reported already (a restart, the other replica)
            self.metrics.events.labels(item.reason).inc()
            event(
                log,
                "events.created",
                namespace=target.namespace,
                kind=target.kind,
                object=target.name,
                reason=item.reason,
            )
        self._reported.add(item.name)

    def _create_event(
        self, name: str, target: ObjectRef, *, reason: str, type: str, message: str, now: _dt.datetime
    ) -> bool:
        """Creates one Event named `name` about `target`; False when that name exists already (409).
        Any other API error is raised: the caller decides whether it stops the step."""
        from kubernetes import client  # heavy import kept at the edge

        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=name, namespace=target.namespace, labels=created_labels("events")
            ),
            involved_object=client.V1ObjectReference(
                kind=target.kind,
                name=target.name,
                namespace=target.namespace,
                uid=target.uid,
                api_version="v1",
            ),
            reason=reason,
            message=message,
            type=type,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="lifeboat-injector"),
        )
        try:
            self.core.create_namespaced_event(target.namespace, body)
        except Exception as exc:
            if _status(exc) == 409:
                return False
            raise
        return True

    # Loop --------------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Runs every resync (or when a namespace changes); failures are logged and retried."""
        while not self._stop.is_set():
            steps: list[Callable[[], object]] = [
                self.mirror_credentials,
                self.report_uninjected,
                self.report_pod_events,
            ]
            if self.settings.tls_mode == "bootstrap":
                steps.insert(0, self.ensure_tls)
            for step in steps:
                try:
                    step()
                except Exception as exc:
                    self.metrics.controller_errors.inc()
                    event(
                        log,
                        "controller.step_failed",
                        logging.ERROR,
                        step=getattr(step, "__name__", "step"),
                        error=exc.__class__.__name__,
                        status=_status(exc),
                    )
            # until the source Secret is there, look again soon: readiness waits on it
            wait = (
                self.settings.resync_seconds
                if self.source_ready.is_set()
                else min(5.0, self.settings.resync_seconds)
            )
            self.wake.wait(wait)
            self.wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

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
from injector.config import INJECT_NAMESPACE_LABEL, INJECT_NAMESPACE_VALUE, InjectorSettings
from injector.credentials import (
    SourceSecretInvalid,
    UninjectedPod,
    find_uninjected,
    mirror_labels,
    plan_mirrors,
)
from injector.metrics import Metrics
from injector.tls import Bundle, not_after, renew, renewal_reason, write_files
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.controller")


def _decode(data: dict[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


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
        source_secret = self.core.read_namespaced_secret(s.source_secret, s.namespace)
        source = {k: v.decode() for k, v in _decode(source_secret.data).items()}
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
        try:
            actions = plan_mirrors(source, [n for n in wanted if n not in skipped], existing, managed)
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
                            name=s.credentials_secret, namespace=action.namespace, labels=mirror_labels()
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
            now = self.now()
            body = client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=f"lifeboat-uninjected.{pod.uid}", namespace=pod.namespace),
                involved_object=client.V1ObjectReference(
                    kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid, api_version="v1"
                ),
                reason="LifeboatNotInjected",
                message=message,
                type="Warning",
                first_timestamp=now,
                last_timestamp=now,
                count=1,
                source=client.V1EventSource(component="lifeboat-injector"),
            )
            try:
                self.core.create_namespaced_event(pod.namespace, body)
            except Exception as exc:
                if _status(exc) != 409:  # the other replica reported it already
                    raise
            self._reported.add(pod.uid)
        return found

    # Loop --------------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Runs every resync (or when a namespace changes); failures are logged and retried."""
        while not self._stop.is_set():
            steps: list[Callable[[], object]] = [self.mirror_credentials, self.report_uninjected]
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
            self.wake.wait(self.settings.resync_seconds)
            self.wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

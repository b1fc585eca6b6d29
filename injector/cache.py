"""A watch-backed view of PVCs and namespaces, so admission answers without an API round trip.

Two background threads list then watch PersistentVolumeClaims and Namespaces cluster-wide,
keeping only what the decision reads (uid, labels, annotations). A cache miss is not an answer:
a StatefulSet creates its PVC moments before the pod, so :meth:`ClusterCache.lookup` falls back
to a direct GET, and only a GET that fails makes the PVC "unavailable" (and the pod denied).

The admission server first calls :meth:`cached` on the event loop; it raises :class:`CacheMiss`
when the answer needs I/O, and the server then repeats the review on a worker thread with
:meth:`lookup`. The hot path therefore never blocks the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from injector.decision import PvcInfo, PvcUnavailable
from injector.metrics import Metrics
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.cache")


class CacheMiss(LookupError):
    """The cache does not hold the PVC; a direct GET is needed."""


def pvc_info(obj: Any) -> PvcInfo:
    """PvcInfo from a kubernetes-client V1PersistentVolumeClaim (or anything shaped like it)."""
    meta = obj.metadata
    return PvcInfo(
        name=meta.name,
        uid=meta.uid or "",
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
    )


class ClusterCache:
    """PVCs by (namespace, name) and namespace labels by name, fed by watches."""

    def __init__(self, core: Any, metrics: Metrics, get_timeout: float = 2.0) -> None:
        self._core = core
        self._metrics = metrics
        self._get_timeout = get_timeout
        self._pvcs: dict[tuple[str, str], PvcInfo] = {}
        self._namespaces: dict[str, dict[str, str]] = {}
        self.pvcs_synced = threading.Event()
        self.namespaces_synced = threading.Event()
        self._stop = threading.Event()
        self.on_namespace_change: Callable[[], None] = lambda: None

    # Reads -------------------------------------------------------------------------------------

    def cached(self, namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        info = self._pvcs.get((namespace, name))
        if info is None:
            raise CacheMiss(f"{namespace}/{name}")
        self._metrics.pvc_lookups.labels("cache").inc()
        return info

    def lookup(self, namespace: str, name: str) -> PvcInfo | PvcUnavailable:
        """Cache first, then a direct GET; never raises."""
        info = self._pvcs.get((namespace, name))
        if info is not None:
            self._metrics.pvc_lookups.labels("cache").inc()
            return info
        try:
            obj = self._core.read_namespaced_persistent_volume_claim(
                name, namespace, _request_timeout=self._get_timeout
            )
        except Exception as exc:
            self._metrics.pvc_lookups.labels("unavailable").inc()
            status = getattr(exc, "status", None)
            reason = "it does not exist" if status == 404 else f"API error {status or exc.__class__.__name__}"
            event(log, "cache.pvc_unavailable", logging.WARNING, namespace=namespace, pvc=name, reason=reason)
            return PvcUnavailable(name, reason)
        self._metrics.pvc_lookups.labels("api").inc()
        info = pvc_info(obj)
        self._pvcs[(namespace, name)] = info
        return info

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespaces.get(namespace)

    def namespaces(self) -> dict[str, dict[str, str]]:
        return dict(self._namespaces)

    def pvc_labels(self) -> dict[tuple[str, str], Mapping[str, str]]:
        return {key: info.labels for key, info in list(self._pvcs.items())}

    def ready(self) -> bool:
        return self.pvcs_synced.is_set() and self.namespaces_synced.is_set()

    # Feeding -----------------------------------------------------------------------------------

    def apply_pvc_event(self, kind: str, obj: Any) -> None:
        key = (obj.metadata.namespace, obj.metadata.name)
        if kind == "DELETED":
            self._pvcs.pop(key, None)
        else:
            self._pvcs[key] = pvc_info(obj)

    def apply_namespace_event(self, kind: str, obj: Any) -> None:
        name = obj.metadata.name
        before = self._namespaces.get(name)
        if kind == "DELETED":
            self._namespaces.pop(name, None)
        else:
            self._namespaces[name] = dict(obj.metadata.labels or {})
        if before != self._namespaces.get(name):
            self.on_namespace_change()

    def start(self) -> None:
        for target, name in ((self._watch_pvcs, "pvc-watch"), (self._watch_namespaces, "namespace-watch")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch_pvcs(self) -> None:
        def replace(items: list[Any]) -> None:
            self._pvcs = {(o.metadata.namespace, o.metadata.name): pvc_info(o) for o in items}

        self._watch(
            self._core.list_persistent_volume_claim_for_all_namespaces,
            replace,
            self.apply_pvc_event,
            self.pvcs_synced,
            "pvc",
        )

    def _watch_namespaces(self) -> None:
        def replace(items: list[Any]) -> None:
            self._namespaces = {o.metadata.name: dict(o.metadata.labels or {}) for o in items}
            self.on_namespace_change()

        self._watch(
            self._core.list_namespace, replace, self.apply_namespace_event, self.namespaces_synced, "ns"
        )

    def _watch(
        self,
        list_fn: Callable[..., Any],
        replace: Callable[[list[Any]], None],
        apply: Callable[[str, Any], None],
        synced: threading.Event,
        what: str,
    ) -> None:
        """List, then watch from the list's resourceVersion; relist on any error or expiry."""
        from kubernetes import watch  # heavy import kept at the edge

        backoff = 1.0
        while not self._stop.is_set():
            try:
                listing = list_fn(_request_timeout=30)
                replace(listing.items)
                if not synced.is_set():
                    event(log, "cache.synced", kind=what, objects=len(listing.items))
                synced.set()
                backoff = 1.0
                stream = watch.Watch().stream(
                    list_fn, resource_version=listing.metadata.resource_version, timeout_seconds=300
                )
                for change in stream:
                    if self._stop.is_set():
                        return
                    if change["type"] == "ERROR":
                        break
                    apply(change["type"], change["object"])
            except Exception as exc:
                event(log, "cache.watch_failed", logging.WARNING, kind=what, error=exc.__class__.__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

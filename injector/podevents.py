"""What the controller tells users through Kubernetes Events, decided from plain data (pure).

The pod's containers have no Kubernetes credentials (rule: the app's namespace grants Lifeboat
nothing), so Events are written by the injector's controller from what the kubelet and the
sidecar already publish:

* the restore init container's termination message (``state`` / ``lastState.terminated``), a
  line in the grammar of :mod:`lifeboat.podreport`, for the restore outcome: restored, started
  fresh, credentials refused, configuration error, gave up waiting; any other ``lifeboat-*``
  container that writes a line in that grammar (a restore drill) is read the same way;
* a restore init container still running after :data:`RESTORE_WAITING_AFTER` seconds: it waits
  for the store (unreachable, bucket missing) or restores a large snapshot;
* the backup sidecar's metrics port, scraped: backups refused by the guard
  (``lifeboat_guard_blocked``) and failed restore drills
  (``lifeboat_drill_last_result{result="failed"}``);
* PVCs of opted-in namespaces whose ``backup`` label is not a valid value (``Daily``): an Event on
  the PVC and on every pod that mounts it.

Every Event has a deterministic name (object UID + reason + volume), so it is created once per
outcome per object; a resync, a restart or a second replica gets a harmless 409. Messages are
built from the report line and fixed texts only: the writers keep secrets out of the line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from injector.config import BACKUP_CONTAINER, BACKUP_LABEL, RESTORE_CONTAINER
from lifeboat.contract import BACKUP_VALUES
from lifeboat.exitcodes import EX_CONFIG, EX_NOPERM, EX_TEMPFAIL
from lifeboat.podreport import ALL_VOLUMES, MAX_BYTES, Segment, parse_report

RESTORE_WAITING_AFTER = 60.0  # seconds a restore may run before the pod says it is waiting
CONTAINER_PREFIX = "lifeboat-"


@dataclass(frozen=True)
class ObjectRef:
    kind: str  # Pod | PersistentVolumeClaim
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class PlannedEvent:
    """One Event to create (once): ``name`` is deterministic, which is the deduplication."""

    target: ObjectRef
    reason: str
    type: str  # Normal | Warning
    message: str
    volume: str

    @property
    def name(self) -> str:
        digest = hashlib.sha256(f"{self.reason}/{self.volume}".encode()).hexdigest()[:10]
        return f"lifeboat.{self.target.uid}.{digest}"


# outcome -> (reason, type, what it means for the user)
_OUTCOMES: dict[str, tuple[str, str, str]] = {
    "restored": ("LifeboatRestored", "Normal", "restored from its backup"),
    "fresh": ("LifeboatStartedFresh", "Normal", "started fresh: the store holds no backup of it"),
    "skipped": ("LifeboatRestoreSkipped", "Normal", "already held data; nothing was restored"),
    "waiting": ("LifeboatRestoreWaiting", "Warning", "the restore is waiting for the store"),
    "invalid-configuration": (
        "LifeboatConfigError",
        "Warning",
        "the restore refused its configuration; fix it and delete the pod",
    ),
    "unreported": ("LifeboatRestoreFailed", "Warning", "a Lifeboat container failed without a report"),
    "drill-failed": ("LifeboatDrillFailed", "Warning", "a restore drill failed"),
    "drill-passed": ("LifeboatDrillPassed", "Normal", "a restore drill passed"),
}
_FAILED_BY_EXIT = {
    EX_NOPERM: ("LifeboatCredentialsRefused", "Warning", "the store refused the credentials or password"),
    EX_CONFIG: ("LifeboatConfigError", "Warning", "invalid configuration; fix it and delete the pod"),
    EX_TEMPFAIL: ("LifeboatRestoreWaiting", "Warning", "the restore gave up waiting for the store"),
}


def classify(segment: Segment) -> tuple[str, str, str]:
    """Reason, type and meaning of one report segment; unknown outcomes get a generic reason."""
    if segment.outcome == "failed":
        return _FAILED_BY_EXIT.get(
            segment.exit_code or 0, ("LifeboatRestoreFailed", "Warning", "the restore failed")
        )
    known = _OUTCOMES.get(segment.outcome)
    if known:
        return known
    reason = "Lifeboat" + "".join(word.capitalize() for word in segment.outcome.split("-"))
    failing = segment.exit_code not in (None, 0) or "fail" in segment.outcome
    return reason, "Warning" if failing else "Normal", segment.outcome.replace("-", " ")


def _ref(pod: Mapping[str, Any]) -> ObjectRef:
    meta = pod.get("metadata") or {}
    return ObjectRef(
        "Pod", str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
    )


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The container's latest termination: the current state's, else the previous run's."""
    for key in ("state", "lastState"):
        terminated = (status.get(key) or {}).get("terminated")
        if terminated:
            return terminated
    return None


def _seconds_since(value: Any, now: _dt.datetime) -> float | None:
    if isinstance(value, _dt.datetime):
        started = value
    elif isinstance(value, str) and value:
        started = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=_dt.UTC)
    return (now - started).total_seconds()


def report_events(pod: Mapping[str, Any], now: _dt.datetime) -> list[PlannedEvent]:
    """Events for what the pod's Lifeboat containers reported in their termination messages."""
    target = _ref(pod)
    status = pod.get("status") or {}
    planned: list[PlannedEvent] = []
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        name = str(container.get("name", ""))
        if not name.startswith(CONTAINER_PREFIX):
            continue
        terminated = _terminated(container)
        if terminated:
            text = str(terminated.get("message") or "")
            code = terminated.get("exitCode")
            segments = parse_report(text) if name == RESTORE_CONTAINER or _is_report(text) else []
            if not segments and isinstance(code, int) and code != 0 and name == RESTORE_CONTAINER:
                segments = [Segment(ALL_VOLUMES, "unreported", exit_code=code)]
            for segment in segments:
                if segment.outcome == "unreported" and segment.exit_code is None and isinstance(code, int):
                    segment = Segment(segment.pvc, "unreported", exit_code=code)
                planned.append(_segment_event(target, name, segment))
        running = (container.get("state") or {}).get("running")
        if name == RESTORE_CONTAINER and running:
            seconds = _seconds_since(running.get("startedAt"), now)
            if seconds is not None and seconds >= RESTORE_WAITING_AFTER:
                planned.append(
                    PlannedEvent(
                        target,
                        "LifeboatRestoreWaiting",
                        "Warning",
                        f"The restore has run for {int(seconds)}s: it waits for the store (unreachable, "
                        "bucket missing) or restores a large snapshot; the app starts when it is done. "
                        f"See kubectl logs {target.name} -c {RESTORE_CONTAINER}.",
                        ALL_VOLUMES,
                    )
                )
    return planned


def _is_report(text: str) -> bool:
    segments = parse_report(text)
    return bool(segments) and all(s.pvc != ALL_VOLUMES for s in segments)


def _segment_event(target: ObjectRef, container: str, segment: Segment) -> PlannedEvent:
    reason, kind, meaning = classify(segment)
    where = "every volume" if segment.pvc == ALL_VOLUMES else f"PVC {segment.pvc}"
    if segment.outcome == "unreported":
        message = (
            f"{where}: {meaning} (container {container}, exit {segment.exit_code}); "
            f"see kubectl logs {target.name} -c {container} --previous"
        )
    else:
        message = f"{where}: {meaning} ({container}: {segment.text})"
    return PlannedEvent(target, reason, kind, message[:MAX_BYTES], segment.pvc)


def guard_events(pod: Mapping[str, Any], blocked: Iterable[tuple[str, str]]) -> list[PlannedEvent]:
    """Events for the volumes whose backups the guard refuses, ``blocked`` = (pvc, reason) pairs."""
    target = _ref(pod)
    texts = {
        "empty": "the volume is empty but its repository holds history",
        "shrunk": "the volume shrank far below its last snapshot",
        "conflict": "the volume holds other data than its repository's history",
    }
    return [
        PlannedEvent(
            target,
            "LifeboatBackupRefused",
            "Warning",
            f"PVC {pvc}: the guard refuses backups ({reason}: {texts.get(reason, reason)}), so history is "
            "not overwritten; see docs/backup.md, Guard rails, and docs/operations.md.",
            f"{pvc}/{reason}",
        )
        for pvc, reason in sorted(set(blocked))
    ]


def blocked_from_metrics(text: str) -> list[tuple[str, str]]:
    """(pvc, reason) for every ``lifeboat_guard_blocked`` series at 1 in a sidecar's scrape."""
    return [(pvc, labels.get("reason", "")) for pvc, labels in _set_series(text, "lifeboat_guard_blocked")]


def failed_drills_from_metrics(text: str) -> list[str]:
    """PVCs whose last restore drill failed: ``lifeboat_drill_last_result{result="failed"} 1``."""
    return [
        pvc
        for pvc, labels in _set_series(text, "lifeboat_drill_last_result")
        if labels.get("result") == "failed"
    ]


def drill_events(pod: Mapping[str, Any], failed: Iterable[str]) -> list[PlannedEvent]:
    """One Event per PVC whose last drill failed (the drill's findings are in the sidecar's log)."""
    target = _ref(pod)
    return [
        PlannedEvent(
            target,
            "LifeboatDrillFailed",
            "Warning",
            f"PVC {pvc}: the last restore drill failed: the latest snapshot did not restore as it should. "
            f"See kubectl logs {target.name} -c {BACKUP_CONTAINER} | grep drill.finished, and "
            "docs/operations.md, LifeboatDrillFailed.",
            f"{pvc}/drill",
        )
        for pvc in sorted(set(failed))
    ]


def _set_series(text: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """(pvc, labels) of every sample of gauge ``name`` at 1 or more."""
    from prometheus_client.parser import text_string_to_metric_families

    found = []
    for family in text_string_to_metric_families(text):
        if family.name == name:
            found += [
                (s.labels.get("persistentvolumeclaim", ""), dict(s.labels))
                for s in family.samples
                if s.value >= 1
            ]
    return found


def metrics_endpoint(pod: Mapping[str, Any]) -> str | None:
    """``http://<podIP>:<port>/metrics`` of the backup sidecar of a running pod, if it has one."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") != "Running":
        return None
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") != BACKUP_CONTAINER:
            continue
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and port.get("containerPort"):
                host = f"[{ip}]" if ":" in str(ip) else ip
                return f"http://{host}:{port['containerPort']}/metrics"
    return None


@dataclass(frozen=True)
class InvalidLabel:
    pvc: ObjectRef
    value: str


def invalid_labels(pvcs: Iterable[Mapping[str, Any]]) -> list[InvalidLabel]:
    """PVCs carrying a ``backup`` label whose value is not one Lifeboat acts on (``Daily``, ``yes``)."""
    found = []
    for pvc in pvcs:
        meta = pvc.get("metadata") or {}
        labels = meta.get("labels") or {}
        if BACKUP_LABEL in labels and labels[BACKUP_LABEL] not in BACKUP_VALUES:
            ref = ObjectRef(
                "PersistentVolumeClaim",
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                str(meta.get("uid", "")),
            )
            found.append(InvalidLabel(ref, str(labels[BACKUP_LABEL])))
    return found


def invalid_label_events(
    found: Iterable[InvalidLabel], pods: Iterable[Mapping[str, Any]]
) -> list[PlannedEvent]:
    """An Event on each mislabelled PVC and on every pod mounting it."""
    found = list(found)
    by_claim = {(f.pvc.namespace, f.pvc.name): f for f in found}
    hint = lambda f: (  # noqa: E731 - one message, two targets
        f"PVC {f.pvc.name} has label {BACKUP_LABEL}={f.value!r}, which Lifeboat does not act on "
        f"(values: {', '.join(BACKUP_VALUES)}, lowercase): it is NOT backed up. Fix: kubectl -n "
        f"{f.pvc.namespace} label pvc {f.pvc.name} {BACKUP_LABEL}={_suggest(f.value)} --overwrite, "
        "then restart the pods that mount it."
    )
    planned = [PlannedEvent(f.pvc, "LifeboatInvalidBackupLabel", "Warning", hint(f), f.value) for f in found]
    for pod in pods:
        ref = _ref(pod)
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            hit = by_claim.get((ref.namespace, claim)) if claim else None
            if hit is not None:
                planned.append(
                    PlannedEvent(
                        ref, "LifeboatInvalidBackupLabel", "Warning", hint(hit), f"{claim}/{hit.value}"
                    )
                )
    return planned


def _suggest(value: str) -> str:
    lowered = value.strip().lower()
    return lowered if lowered in BACKUP_VALUES else "daily"

"""Whether and how to inject a pod: pure functions over plain data, table-tested.

The admission edge reads the pod, the PVCs it mounts (from the watch cache or a direct GET) and
the namespace labels, then calls :func:`decide`. Everything that could go wrong with a user's
labels or annotations is turned into a message that names the field and the fix.

The one rule that outranks convenience: a pod that mounts a PVC labelled for backup is never
admitted without the restore container. If such a PVC cannot be read, or its annotations cannot
be understood, the pod is denied; the controller that created it retries, and the pod starts on
its restored data once the problem is fixed, instead of starting empty next to its backup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from injector.config import (
    ADOPT_ANNOTATION,
    BACKUP_CONTAINER,
    BACKUP_LABEL,
    REPOSITORY_ANNOTATION,
    RESTORE_CONTAINER,
    RETENTION_ANNOTATION,
    SCHEDULE_ANNOTATION,
    SKIP_ANNOTATION,
    SNAPSHOT_ANNOTATION,
)
from injector.plan import Hardening, Inject, VolumePlan, memory_bytes
from lifeboat import contract
from lifeboat.contract import (
    BACKUP_VALUES,
    DRILL_ANNOTATION,
    MEMORY_LIMIT_ANNOTATION,
    MEMORY_REQUEST_ANNOTATION,
    RETENTION_ACK_ANNOTATION,
    ConfigError,
)

__all__ = ["Hardening", "Inject", "VolumePlan"]

POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class PvcInfo:
    """What the decision needs to know about one PersistentVolumeClaim."""

    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PvcUnavailable:
    """A PVC the injector could not read: missing, forbidden, or the API server failed."""

    name: str
    reason: str


@dataclass(frozen=True)
class PodRequest:
    """The parts of an AdmissionRequest the decision looks at."""

    uid: str
    operation: str
    resource: str
    sub_resource: str
    namespace: str
    pod: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """Facts about the cluster and the injector, gathered at the edges."""

    own_namespace: str
    excluded_namespaces: Sequence[str] = ("kube-system",)
    native_sidecars: bool = True
    # Used for PodSecurity only; whether to inject is the namespaceSelector's call (it is never stale).
    namespace_labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Admit:
    """Let the pod through unchanged."""

    reason: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deny:
    """Refuse the pod; the message reaches the user (kubectl, controller events)."""

    message: str
    code: int = 403


Decision = Admit | Deny | Inject


# A label or annotation value the runtime could not act on: the contract's error.
InvalidSetting = ConfigError


def pvc_claims(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(volume name, claim name) for each ``persistentVolumeClaim`` volume, first volume per claim."""
    seen: set[str] = set()
    claims: list[tuple[str, str]] = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim") if isinstance(volume, Mapping) else None
        if not isinstance(source, Mapping):
            continue
        claim = source.get("claimName")
        if isinstance(claim, str) and claim and claim not in seen:
            seen.add(claim)
            claims.append((str(volume.get("name", "")), claim))
    return claims


def is_injected(pod: Mapping[str, Any]) -> bool:
    """True once the restore container is present: a reinvocation must not inject twice."""
    spec = pod.get("spec") or {}
    return any(
        isinstance(c, Mapping) and c.get("name") == RESTORE_CONTAINER
        for c in spec.get("initContainers") or []
    )


def precheck(request: PodRequest, context: Context) -> Admit | None:
    """The reasons to admit unchanged that need no PVC lookup; None means "look up the PVCs"."""
    if request.resource != "pods" or request.sub_resource:
        return Admit(f"not a pod: {request.resource}/{request.sub_resource}".rstrip("/"))
    if request.operation != "CREATE":
        return Admit(f"operation {request.operation} is not CREATE")
    if request.namespace == context.own_namespace or request.namespace in context.excluded_namespaces:
        return Admit(f"namespace {request.namespace} is never injected")
    # The namespace label is not checked here on purpose: the API server's namespaceSelector saw
    # the namespace as it is now, while our watch may lag behind a label that was just added.
    annotations = (request.pod.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(SKIP_ANNOTATION, "")).lower() == "true":
        return Admit(f"pod annotation {SKIP_ANNOTATION}=true")
    if is_injected(request.pod):
        return Admit("already injected")
    if not pvc_claims(request.pod):
        return Admit("no persistentVolumeClaim volumes")
    return None


T = TypeVar("T")


def _parsed(source: str, parse: Callable[[str], T], value: str) -> T:
    """The contract's parser (the runtime's own) applied to `value`; its error names `source`."""
    try:
        return parse(value)
    except ConfigError as exc:
        raise InvalidSetting(f"{source}: {exc}") from None


def parse_schedule(value: str, source: str) -> str:
    """``hourly``, ``daily`` or a 5-field crontab expression: exactly what the sidecar runs."""
    _parsed(source, contract.parse_schedule, value)
    return " ".join(value.split())


def parse_retention(value: str, source: str) -> str:
    """``hourly=24,daily=7,weekly=4,monthly=6``, normalised into restic's rule order."""
    return contract.render_retention(_parsed(source, contract.parse_retention, value))


def parse_snapshot(value: str, source: str) -> str:
    """A snapshot id (8-64 hex digits), ``latest``, or an RFC 3339 time with a zone."""
    _parsed(source, contract.parse_pin, value)
    return value.strip()


def parse_adopt(value: str, source: str) -> bool:
    return _parsed(source, contract.parse_bool, value)


def parse_repository(value: str, source: str) -> str:
    """An ``s3:`` restic repository URL; credentials in it are refused (and never echoed)."""
    _parsed(source, contract.parse_repository, value)
    return value.strip()


def parse_retention_ack(value: str, source: str) -> str:
    """The RFC 3339 time a large retention change was acknowledged; its age is the sidecar's call."""
    return _parsed(source, contract.parse_retention_ack, value).isoformat().replace("+00:00", "Z")


MEMORY_LIMIT_FLOOR = 64 * 1024 * 1024  # restic needs more than this for any real repository
MEMORY_REQUEST_FLOOR = 32 * 1024 * 1024  # the idle backup sidecar alone is about 30 MiB


def _memory_quantity(value: str, source: str, *, floor: int, examples: tuple[str, str], low: str) -> str:
    """A memory quantity of at least `floor` bytes; raises InvalidSetting naming `source`.
    `examples` are two valid values for the message, `low` says why less will not do."""
    try:
        size = memory_bytes(value)
    except ValueError:
        raise InvalidSetting(
            f"{source}: {value!r} is not a memory quantity; write e.g. {examples[0]} or {examples[1]}"
        ) from None
    if size < floor:
        raise InvalidSetting(
            f"{source}: {value!r} is below {floor // (1024 * 1024)}Mi, {low}; write e.g. {examples[0]}"
        )
    return value.strip()


def parse_memory_limit(value: str, source: str) -> str:
    """A memory quantity of at least 64Mi (examples: 768Mi, 2Gi); raises InvalidSetting naming it."""
    return _memory_quantity(
        value, source, floor=MEMORY_LIMIT_FLOOR, examples=("768Mi", "2Gi"), low="too little for restic"
    )


def parse_memory_request(value: str, source: str) -> str:
    """A memory quantity of at least 32Mi (examples: 256Mi, 1Gi); raises InvalidSetting naming it."""
    return _memory_quantity(
        value,
        source,
        floor=MEMORY_REQUEST_FLOOR,
        examples=("256Mi", "1Gi"),
        low="less than the idle backup sidecar uses",
    )


def parse_drill(value: str, source: str) -> str:
    """``weekly``, ``daily``, a 5-field crontab expression or ``off``: exactly what the sidecar runs."""
    schedule = _parsed(source, contract.parse_drill, value)
    return "off" if schedule is None else " ".join(value.split())


def volume_plan(volume: str, pvc: PvcInfo) -> VolumePlan:
    """Resolves one labelled PVC's annotations; raises InvalidSetting naming the field."""
    where = f"PVC {pvc.name}: annotation "
    ann = pvc.annotations
    schedule = pvc.labels[BACKUP_LABEL]
    if SCHEDULE_ANNOTATION in ann:
        schedule = parse_schedule(ann[SCHEDULE_ANNOTATION], where + SCHEDULE_ANNOTATION)
    retention = snapshot = repository = retention_ack = None
    if ann.get(RETENTION_ANNOTATION, "").strip():  # empty: the defaults, as for LIFEBOAT_RETENTION
        retention = parse_retention(ann[RETENTION_ANNOTATION], where + RETENTION_ANNOTATION)
    if SNAPSHOT_ANNOTATION in ann:
        snapshot = parse_snapshot(ann[SNAPSHOT_ANNOTATION], where + SNAPSHOT_ANNOTATION)
    if REPOSITORY_ANNOTATION in ann:
        repository = parse_repository(ann[REPOSITORY_ANNOTATION], where + REPOSITORY_ANNOTATION)
    if ann.get(RETENTION_ACK_ANNOTATION, "").strip():
        retention_ack = parse_retention_ack(ann[RETENTION_ACK_ANNOTATION], where + RETENTION_ACK_ANNOTATION)
    adopt = parse_adopt(ann[ADOPT_ANNOTATION], where + ADOPT_ANNOTATION) if ADOPT_ANNOTATION in ann else False
    memory_limit = None
    if ann.get(MEMORY_LIMIT_ANNOTATION, "").strip():
        memory_limit = parse_memory_limit(ann[MEMORY_LIMIT_ANNOTATION], where + MEMORY_LIMIT_ANNOTATION)
    memory_request = None
    if ann.get(MEMORY_REQUEST_ANNOTATION, "").strip():
        memory_request = parse_memory_request(
            ann[MEMORY_REQUEST_ANNOTATION], where + MEMORY_REQUEST_ANNOTATION
        )
        if memory_limit is not None and memory_bytes(memory_request) > memory_bytes(memory_limit):
            raise InvalidSetting(
                f"{where}{MEMORY_REQUEST_ANNOTATION}: {memory_request!r} is above the PVC's "
                f"{MEMORY_LIMIT_ANNOTATION} {memory_limit!r}; lower the request or raise the limit"
            )
    drill = parse_drill(ann[DRILL_ANNOTATION], where + DRILL_ANNOTATION) if DRILL_ANNOTATION in ann else None
    return VolumePlan(
        pvc=pvc.name,
        volume=volume,
        uid=pvc.uid,
        schedule=schedule,
        drill=drill,
        retention=retention,
        snapshot=snapshot,
        adopt=adopt,
        repository=repository,
        retention_ack=retention_ack,
        memory_limit=memory_limit,
        memory_request=memory_request,
    )


def _app_identity(pod: Mapping[str, Any], volumes: set[str]) -> tuple[int | None, int | None]:
    """The runAsUser/runAsGroup of the app container that mounts a labelled volume (else of the
    first container that sets one): the identity that can read the data it writes."""
    containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, Mapping)]

    def mounts_labelled(container: Mapping[str, Any]) -> bool:
        mounts = container.get("volumeMounts") or []
        return any(isinstance(m, Mapping) and m.get("name") in volumes for m in mounts)

    for container in sorted(containers, key=lambda c: not mounts_labelled(c)):
        security = container.get("securityContext") or {}
        user = security.get("runAsUser") if isinstance(security, Mapping) else None
        if isinstance(user, int) and not isinstance(user, bool) and user > 0:
            group = security.get("runAsGroup")
            return user, group if isinstance(group, int) and not isinstance(group, bool) else None
    return None, None


def _hardening(
    pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None, volumes: set[str]
) -> tuple[Hardening, int | None, int | None]:
    """Root with minimal capabilities preserves file ownership; restricted namespaces get non-root.

    Non-root runs as the pod's runAsUser/runAsGroup; where the pod sets none, as the app container's
    that mounts the data (issue 9 item 4: 65532 could not read a non-root app's files, and the
    backup silently left them out). fsGroup and supplementalGroups are pod-wide: the injected
    containers get them like every other container.
    """
    security = (pod.get("spec") or {}).get("securityContext") or {}
    restricted = (namespace_labels or {}).get(POD_SECURITY_ENFORCE_LABEL) == "restricted"
    if restricted or security.get("runAsNonRoot") is True:
        app_user, app_group = _app_identity(pod, volumes)
        user = security.get("runAsUser")
        group = security.get("runAsGroup")
        pod_user = user if isinstance(user, int) and user > 0 else None
        return (
            "non-root",
            pod_user or app_user or 65532,
            group if isinstance(group, int) else (app_group if pod_user is None else None),
        )
    return "root-minimal-capabilities", None, None


def decide(
    request: PodRequest,
    pvcs: Mapping[str, PvcInfo | PvcUnavailable],
    context: Context,
) -> Decision:
    """The admission decision for a pod, given the PVCs it mounts (looked up by claim name)."""
    early = precheck(request, context)
    if early is not None:
        return early
    pod = request.pod
    warnings: list[str] = []
    plans: list[VolumePlan] = []
    for volume, claim in pvc_claims(pod):
        info = pvcs.get(claim)
        if info is None or isinstance(info, PvcUnavailable):
            reason = info.reason if info is not None else "not looked up"
            return Deny(
                f"Lifeboat cannot read PersistentVolumeClaim {request.namespace}/{claim} ({reason}); "
                f"the pod is refused so it never starts without restoring a backup. Create the PVC "
                f"(or fix the injector's access to it) and the pod will be retried; to run it "
                f'without Lifeboat, annotate the pod {SKIP_ANNOTATION}: "true".'
            )
        value = info.labels.get(BACKUP_LABEL)
        if value is None:
            continue
        if value not in BACKUP_VALUES:
            warnings.append(
                f"Lifeboat: PVC {claim} has label {BACKUP_LABEL}={value!r}, which is not backed up; "
                f"allowed values are {' or '.join(BACKUP_VALUES)} (or remove the label)."
            )
            continue
        try:
            plans.append(volume_plan(volume, info))
        except InvalidSetting as exc:
            return Deny(
                f"Lifeboat refuses the pod because {exc}. Fix the PVC annotation; the pod will be retried."
            )
    if not plans:
        return Admit("no PVC labelled for backup", tuple(warnings))
    taken = {
        c.get("name")
        for key in ("containers", "initContainers")
        for c in (pod.get("spec") or {}).get(key) or []
        if isinstance(c, Mapping)
    }
    if BACKUP_CONTAINER in taken:
        return Deny(
            f"Lifeboat refuses the pod: its container name {BACKUP_CONTAINER!r} is reserved for the backup "
            f"sidecar. Rename that container."
        )
    hardening, user, group = _hardening(pod, context.namespace_labels, {p.volume for p in plans})
    job = is_job_pod(pod)
    if job and not context.native_sidecars:
        warnings.append(
            "Lifeboat: this Job's pod gets the restore only and no backup: without native sidecars "
            "(Kubernetes >= 1.29) a backup container would keep the Job from completing."
        )
    return Inject(
        volumes=tuple(plans),
        native_sidecar=context.native_sidecars,
        hardening=hardening,
        run_as_user=user,
        run_as_group=group,
        warnings=tuple(warnings),
        job=job,
    )


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def is_job_pod(pod: Mapping[str, Any]) -> bool:
    """A pod a Job (or a CronJob's Job) runs: owned by a Job, or labelled with its name."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    owners = metadata.get("ownerReferences")
    if isinstance(owners, list) and any(isinstance(o, Mapping) and o.get("kind") == "Job" for o in owners):
        return True
    labels = metadata.get("labels")
    return isinstance(labels, Mapping) and JOB_NAME_LABEL in labels


def native_sidecars_supported(major: str, minor: str) -> bool:
    """Native sidecars (init containers with restartPolicy Always) are on by default from 1.29."""
    digits = re.match(r"\d+", minor or "")
    try:
        return (int(major), int(digits.group(0) if digits else -1)) >= (1, 29)
    except ValueError:
        return False

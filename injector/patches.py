"""The JSON Patch that turns an :class:`~injector.decision.Inject` into containers: pure.

Modelled on controller-runtime's split: the decision says *what*, this module says *which
operations*, and the admission edge only encodes them. Everything the runtime reads is set here,
in one place, so the contract with ``lifeboat restore`` / ``lifeboat sidecar`` is easy to audit:

* ``lifeboat-restore`` goes first in ``initContainers``: nothing else touches the volume before
  the backup is back.
* ``lifeboat-backup`` follows it as a native sidecar (``restartPolicy: Always``) when the API
  server supports it, so it runs through the other init containers and outlives the app for the
  final backup; on older clusters it is appended to ``containers``.
* Credentials arrive only through ``secretKeyRef``; nothing secret is ever in the pod spec.

Paths follow RFC 6901 (``~`` and ``/`` escaped); absent lists and maps are created, never assumed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from injector.config import (
    BACKUP_CONTAINER,
    CREDENTIAL_KEYS,
    INJECTED_ANNOTATION,
    RESTORE_CONTAINER,
    InjectorSettings,
)
from injector.plan import Inject, memory_bytes
from lifeboat.contract import (
    ENV_CACHE_DIR,
    ENV_FINAL_BACKUP_TIMEOUT,
    ENV_FORGET_AT_EXIT,
    ENV_METRICS_PORT,
    ENV_NAMESPACE,
    ENV_POD_NAME,
    ENV_RESTORE_DEADLINE,
    ENV_STATE_DIR,
    OPTIONAL_CREDENTIAL_KEYS,
)

Operation = dict[str, Any]

# Extra seconds on top of the final backup so the kubelet does not kill the sidecar mid-upload.
GRACE_MARGIN_SECONDS = 30
# A port name is an IANA service name: at most 15 characters ("lifeboat-metrics" is 16 and the
# API server rejected every injected pod; found by tests/e2e against a real kube-apiserver).
METRICS_PORT_NAME = "lb-metrics"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# FSETID: the kernel drops setgid from a chmod by a process outside the group without it (issue 9
# item 10); all four are in PodSecurity baseline's allowed set.
ROOT_CAPABILITIES_RESTORE = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID")
# CHOWN: a SQLite capture (sidecar.edges.capture) is given its database's owner before restic stores it
ROOT_CAPABILITIES_BACKUP = ("CHOWN", "DAC_OVERRIDE")


def escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted`` if free, else ``wanted-2``, ``wanted-3``...; the result is added to ``taken``."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}-{n}"
    taken.add(name)
    return name


def _declared_ports(spec: Mapping[str, Any]) -> set[int]:
    return {
        int(port["containerPort"])
        for key in ("containers", "initContainers")
        for container in spec.get(key) or []
        for port in container.get("ports") or []
        if isinstance(port, Mapping) and isinstance(port.get("containerPort"), int)
    }


LOWEST_PORT = 1024  # the search for a free metrics port wraps around to here


def free_port(spec: Mapping[str, Any], wanted: int) -> int | None:
    """The first port from ``wanted`` up (then from 1024) that no container of ``spec`` declares;
    None when a pod declares all of them (the admission edge denies such a pod, naming the fix)."""
    taken = _declared_ports(spec)
    for port in itertools.chain(range(wanted, 65536), range(LOWEST_PORT, wanted)):
        if port not in taken:
            return port
    return None


# the sidecar's scratch space (drills) and where SQLite captures are staged beside the volumes
SCRATCH_DIR = "/lifeboat/scratch"
SQLITE_STAGING = ".lifeboat-sqlite"
# Where the ServiceAccount admission plugin mounts the pod's API token into every container that
# has no mount there yet. Lifeboat's containers never talk to Kubernetes, so they get an empty,
# read-only directory there instead: no credentials they do not need, and, because the plugin
# then has nothing to add to them, nothing changes the pod after this webhook, so the apiserver
# calls it once per pod instead of twice (`reinvocationPolicy: IfNeeded`; docs/BENCHMARKS.md).
API_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 - a path, no secret


def mount_path(settings: InjectorSettings, pvc: str) -> str:
    return f"{settings.data_root}/{pvc}"


def _volume_args(command: str, plan: Inject, settings: InjectorSettings, restore: bool) -> list[str]:
    """`--volume PVC=PATH` and each volume's own options: every per-PVC setting stays per PVC."""
    args = [command]
    for v in plan.volumes:
        args += ["--volume", f"{v.pvc}={mount_path(settings, v.pvc)}"]
    for v in plan.volumes:
        if v.uid:
            args += ["--pvc-uid", f"{v.pvc}={v.uid}"]
        if v.repository:
            args += ["--repository", f"{v.pvc}={v.repository}"]
        if restore:
            if v.snapshot:
                args += ["--snapshot", f"{v.pvc}={v.snapshot}"]
            continue
        args += ["--schedule", f"{v.pvc}={v.schedule}"]
        if v.retention:
            args += ["--retention", f"{v.pvc}={v.retention}"]
        if v.adopt:
            args += ["--adopt", f"{v.pvc}=true"]
        if v.retention_ack:
            args += ["--retention-ack", f"{v.pvc}={v.retention_ack}"]
        if v.drill:
            args += ["--drill", f"{v.pvc}={v.drill}"]
    return args


def _common_env(settings: InjectorSettings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": settings.credentials_secret, "key": key}}}
        for key in CREDENTIAL_KEYS
    ]
    env += [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": settings.credentials_secret, "key": key, "optional": True}
            },
        }
        for key in OPTIONAL_CREDENTIAL_KEYS
    ]
    env += [
        {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_STATE_DIR, "value": settings.state_dir},
        {"name": ENV_CACHE_DIR, "value": settings.cache_dir},
    ]
    if settings.sidecar_log_level != "info":  # the default stays out of every pod spec
        env.append({"name": "LIFEBOAT_LOG_LEVEL", "value": settings.sidecar_log_level})
    return env


def _security_context(plan: Inject, capabilities: tuple[str, ...]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if plan.hardening == "non-root":
        context["runAsNonRoot"] = True
        context["runAsUser"] = plan.run_as_user or 65532
        if plan.run_as_group is not None:
            context["runAsGroup"] = plan.run_as_group
        context["capabilities"] = {"drop": ["ALL"]}
    else:
        context["runAsUser"] = 0
        context["runAsGroup"] = 0
        context["runAsNonRoot"] = False
        context["capabilities"] = {"drop": ["ALL"], "add": list(capabilities)}
    return context


def _resources(plan: Inject, settings: InjectorSettings) -> dict[str, Any]:
    """The chart's requests and limit; a PVC's ``lifeboat.dev/memory-limit`` and
    ``lifeboat.dev/memory-request`` replace them (the largest of the pod's PVCs). The request never
    exceeds the limit: an annotated request raises the limit to it, the chart's request is lowered
    to an annotated limit."""
    limit = plan.memory_limit or settings.memory_limit
    request = plan.memory_request or settings.memory_request
    try:
        if memory_bytes(request) > memory_bytes(limit):
            if plan.memory_request:
                limit = request
            else:
                request = limit
    except ValueError:  # a quantity with a fraction (chart values): leave both as given
        pass
    return {"requests": {"cpu": settings.cpu_request, "memory": request}, "limits": {"memory": limit}}


def build_containers(
    plan: Inject,
    settings: InjectorSettings,
    state_volume: str,
    cache_volume: str,
    metrics_port: int,
    *,
    scratch_volume: str = "lifeboat-scratch",
    no_token_volume: str = "lifeboat-no-api-token",  # noqa: S107 - a volume name
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The restore init container and the backup sidecar for a plan.

    The sidecar also mounts the scratch emptyDir twice: its `sqlite/` beside the volumes, where
    restic stores SQLite captures as `.lifeboat-sqlite/<pvc>/` (sidecar.edges.capture), and whole at
    SCRATCH_DIR for restore drills.
    """
    mounts: list[dict[str, Any]] = [
        {"name": v.volume, "mountPath": mount_path(settings, v.pvc)} for v in plan.volumes
    ]
    mounts += [
        {"name": state_volume, "mountPath": settings.state_dir},
        {"name": cache_volume, "mountPath": settings.cache_dir},
        {"name": no_token_volume, "mountPath": API_TOKEN_PATH, "readOnly": True},
    ]
    restore = {
        "name": RESTORE_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": _volume_args("restore", plan, settings, restore=True),
        "env": [
            *_common_env(settings),
            {"name": ENV_RESTORE_DEADLINE, "value": str(settings.restore_deadline_seconds)},
        ],
        "volumeMounts": [dict(m) for m in mounts],
        "resources": _resources(plan, settings),
        "securityContext": _security_context(plan, ROOT_CAPABILITIES_RESTORE),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    backup_env = [
        *_common_env(settings),
        {"name": ENV_METRICS_PORT, "value": str(metrics_port)},
        {"name": ENV_FINAL_BACKUP_TIMEOUT, "value": str(settings.final_backup_timeout_seconds)},
    ]
    if plan.job:  # each run of a CronJob adds a snapshot: forget by the retention at exit
        backup_env.append({"name": ENV_FORGET_AT_EXIT, "value": "true"})
    backup: dict[str, Any] = {
        "name": BACKUP_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": _volume_args("sidecar", plan, settings, restore=False),
        "env": backup_env,
        "volumeMounts": [
            *(dict(m) for m in mounts),
            {
                "name": scratch_volume,
                "mountPath": f"{settings.data_root}/{SQLITE_STAGING}",
                "subPath": "sqlite",
            },
            {"name": scratch_volume, "mountPath": SCRATCH_DIR},
        ],
        "resources": _resources(plan, settings),
        "securityContext": _security_context(plan, ROOT_CAPABILITIES_BACKUP),
    }
    if metrics_port:  # 0 (inject.metricsPort: 0): metrics off, no port declared
        backup["ports"] = [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}]
    if plan.native_sidecar:
        backup["restartPolicy"] = "Always"
    return restore, backup


def build_patch(pod: Mapping[str, Any], plan: Inject, settings: InjectorSettings) -> list[Operation]:
    """The JSON Patch (RFC 6902) operations that inject ``plan`` into ``pod``."""
    spec = pod.get("spec") or {}
    metadata = pod.get("metadata") or {}
    ops: list[Operation] = []

    volume_names = {str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, Mapping)}
    state_volume = unique_name("lifeboat-state", volume_names)
    cache_volume = unique_name("lifeboat-cache", volume_names)
    scratch_volume = unique_name("lifeboat-scratch", volume_names)
    no_token_volume = unique_name("lifeboat-no-api-token", volume_names)
    # The cache has no sizeLimit unless the chart sets one: exceeding an emptyDir's limit evicts the
    # whole pod, app included, and restic's cache grows with the repository (docs/backup.md).
    cache_limit = {"sizeLimit": settings.restic_cache_size_limit} if settings.restic_cache_size_limit else {}
    new_volumes = [
        {"name": state_volume, "emptyDir": {"sizeLimit": "16Mi"}},
        {"name": cache_volume, "emptyDir": cache_limit},
        # SQLite captures and restore drills; no sizeLimit (exceeding it would evict the app too):
        # the sidecar checks free space before it stages anything
        {"name": scratch_volume, "emptyDir": {}},
        # mounted read-only over API_TOKEN_PATH in Lifeboat's containers: stays empty
        {"name": no_token_volume, "emptyDir": {"sizeLimit": "1Mi"}},
    ]
    if spec.get("volumes"):
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in new_volumes]
    else:
        ops.append({"op": "add", "path": "/spec/volumes", "value": new_volumes})

    metrics_port = free_port(spec, settings.metrics_port) if settings.metrics_port else 0
    if metrics_port is None:  # pragma: no cover - the admission edge denies such a pod first
        raise ValueError("every port is declared by the pod; no metrics port is left for the sidecar")
    restore, backup = build_containers(
        plan,
        settings,
        state_volume,
        cache_volume,
        metrics_port,
        scratch_volume=scratch_volume,
        no_token_volume=no_token_volume,
    )
    first_init = [restore, backup] if plan.native_sidecar else [restore]
    if spec.get("initContainers"):
        # Inserting at 0 in reverse order leaves them first, in order, ahead of the user's.
        ops += [{"op": "add", "path": "/spec/initContainers/0", "value": c} for c in reversed(first_init)]
    else:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": first_init})
    if not plan.native_sidecar and not plan.job:  # a Job's pod would never complete with it
        ops.append({"op": "add", "path": "/spec/containers/-", "value": backup})

    needed_grace = settings.final_backup_timeout_seconds + GRACE_MARGIN_SECONDS
    current_grace = spec.get("terminationGracePeriodSeconds")
    if not isinstance(current_grace, int) or current_grace < needed_grace:
        ops.append({"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": needed_grace})

    wanted_secrets = [s for s in settings.image_pull_secrets if s]
    if wanted_secrets:
        # the Lifeboat image may live in a private registry: the chart's imagePullSecrets (which
        # must exist in the app's namespace too) are added unless the pod lists them already
        present = spec.get("imagePullSecrets")
        present = present if isinstance(present, list) else []
        have = {str(s.get("name")) for s in present if isinstance(s, Mapping)}
        missing = [{"name": name} for name in wanted_secrets if name not in have]
        if present:
            ops += [{"op": "add", "path": "/spec/imagePullSecrets/-", "value": s} for s in missing]
        elif missing:
            ops.append({"op": "add", "path": "/spec/imagePullSecrets", "value": missing})

    injected = ",".join(v.pvc for v in plan.volumes)
    if metadata.get("annotations"):
        ops.append(
            {"op": "add", "path": f"/metadata/annotations/{escape(INJECTED_ANNOTATION)}", "value": injected}
        )
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {INJECTED_ANNOTATION: injected}})
    if not metadata:
        # A pod without metadata cannot exist, but the patch must stay valid if it did.
        ops.insert(0, {"op": "add", "path": "/metadata", "value": {}})
    return ops

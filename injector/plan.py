"""The injection plan: what the decision hands to the patch builder, as plain frozen data.

It sits below both :mod:`injector.decision` and :mod:`injector.patches` so the two stay
independent of each other (import-linter enforces it): the decision says *what*, the patch
module says *which JSON Patch operations*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Hardening = Literal["root-minimal-capabilities", "non-root"]


@dataclass(frozen=True)
class VolumePlan:
    """One labelled PVC, resolved into the settings the runtime receives."""

    pvc: str
    volume: str
    uid: str
    schedule: str
    retention: str | None = None
    snapshot: str | None = None
    adopt: bool = False
    repository: str | None = None
    retention_ack: str | None = None  # lifeboat.dev/retention-ack, RFC 3339
    memory_limit: str | None = None  # lifeboat.dev/memory-limit, a Kubernetes quantity
    memory_request: str | None = None  # lifeboat.dev/memory-request, a Kubernetes quantity
    drill: str | None = None  # lifeboat.dev/drill: weekly, daily, cron or off; None: the default


_MEMORY = re.compile(r"([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def memory_bytes(value: str) -> int:
    """Bytes of a memory quantity (digits and an optional suffix: 768Mi, 2Gi, 1G); ValueError else."""
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


@dataclass(frozen=True)
class Inject:
    """Add the restore init container and the backup sidecar for these volumes."""

    volumes: tuple[VolumePlan, ...]  # every per-PVC setting stays on its own volume's plan
    native_sidecar: bool
    hardening: Hardening
    run_as_user: int | None = None
    run_as_group: int | None = None
    warnings: tuple[str, ...] = ()
    # A Job's pod (docs/backup.md "Jobs and CronJobs"): the final backup forgets by the retention;
    # without native sidecars it gets the restore only (a sidecar container would keep it running)
    job: bool = False

    @property
    def memory_limit(self) -> str | None:
        """The largest ``lifeboat.dev/memory-limit`` of the pod's PVCs; None when none sets one."""
        limits = [v.memory_limit for v in self.volumes if v.memory_limit]
        return max(limits, key=memory_bytes) if limits else None

    @property
    def memory_request(self) -> str | None:
        """The largest ``lifeboat.dev/memory-request`` of the pod's PVCs; None when none sets one."""
        requests = [v.memory_request for v in self.volumes if v.memory_request]
        return max(requests, key=memory_bytes) if requests else None

"""The injection plan: what the decision hands to the patch builder, as plain frozen data.

It sits below both :mod:`injector.decision` and :mod:`injector.patches` so the two stay
independent of each other (import-linter enforces it): the decision says *what*, the patch
module says *which JSON Patch operations*.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Inject:
    """Add the restore init container and the backup sidecar for these volumes."""

    volumes: tuple[VolumePlan, ...]  # every per-PVC setting stays on its own volume's plan
    native_sidecar: bool
    hardening: Hardening
    run_as_user: int | None = None
    run_as_group: int | None = None
    warnings: tuple[str, ...] = ()

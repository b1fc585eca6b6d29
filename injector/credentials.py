"""Per-namespace credentials: the password derivation and the mirroring plan, both pure.

One Secret in the injector's namespace (``lifeboat-source``) holds the S3 settings, the S3 keys
and a *master* restic password. Each opted-in namespace receives a copy whose restic password is
derived from the master and the namespace name, so the Secret readable in namespace A cannot
decrypt namespace B's repositories, and the master never leaves the injector's namespace.

The derivation is part of the on-disk contract and must never change: repositories are found by
namespace + PVC name, and a different derivation would lock users out of every existing backup.
To read a repository by hand::

    python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(),
        b"lifeboat/namespace/" + sys.argv[2].encode(), hashlib.sha256).hexdigest())' MASTER NAMESPACE

(or ``lifeboat injector password --namespace NAMESPACE`` with the master on stdin).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from injector.config import (
    BACKUP_LABEL,
    CREDENTIAL_KEYS,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MASTER_PASSWORD_KEY,
    RESTORE_CONTAINER,
    SKIP_ANNOTATION,
)
from lifeboat.contract import OPTIONAL_CREDENTIAL_KEYS

SOURCE_KEYS = (*CREDENTIAL_KEYS[:-1], MASTER_PASSWORD_KEY, *OPTIONAL_CREDENTIAL_KEYS)
REQUIRED_SOURCE_KEYS = (
    "LIFEBOAT_S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    MASTER_PASSWORD_KEY,
)


def namespace_password(master: str, namespace: str) -> str:
    """HMAC-SHA256(key=master, msg="lifeboat/namespace/<namespace>"), lowercase hex. Stable forever."""
    return hmac.new(
        master.encode("utf-8"), f"lifeboat/namespace/{namespace}".encode(), hashlib.sha256
    ).hexdigest()


class SourceSecretInvalid(ValueError):
    """The source Secret lacks a key; the message names keys, never values."""


def mirrored_data(source: Mapping[str, str], namespace: str) -> dict[str, str]:
    """The string data of the Secret mirrored into ``namespace``."""
    missing = [k for k in REQUIRED_SOURCE_KEYS if not source.get(k)]
    if missing:
        raise SourceSecretInvalid(
            f"the source Secret lacks {', '.join(missing)}; add them (see docs/injector.md, Credentials)"
        )
    data = {key: source.get(key, "") for key in CREDENTIAL_KEYS[:-1]}
    data["RESTIC_PASSWORD"] = namespace_password(source[MASTER_PASSWORD_KEY], namespace)
    # optional keys (the bucket's region) only when the source has them: absent, the injected
    # containers' `optional: true` references leave the variable unset and its default applies
    data.update({key: source[key] for key in OPTIONAL_CREDENTIAL_KEYS if source.get(key)})
    return data


@dataclass(frozen=True)
class MirrorAction:
    """One write the controller must perform. ``data`` is None for deletions."""

    kind: Literal["create", "update", "delete"]
    namespace: str
    data: dict[str, str] | None = None


def plan_mirrors(
    source: Mapping[str, str],
    opted_in: Iterable[str],
    existing: Mapping[str, Mapping[str, str] | None],
    managed: Mapping[str, bool],
) -> list[MirrorAction]:
    """What to create, update and delete so each opted-in namespace has an up-to-date Secret.

    ``existing`` maps namespace -> current data of the mirror Secret (None when absent);
    ``managed`` says whether that Secret carries our managed-by label: a Secret of the same name
    that Lifeboat did not create is never overwritten or deleted.
    """
    actions: list[MirrorAction] = []
    wanted = set(opted_in)
    for namespace in sorted(wanted):
        desired = mirrored_data(source, namespace)
        current = existing.get(namespace)
        if current is None:
            actions.append(MirrorAction("create", namespace, desired))
        elif managed.get(namespace, False) and dict(current) != desired:
            actions.append(MirrorAction("update", namespace, desired))
    for namespace in sorted(set(existing) - wanted):
        if existing[namespace] is not None and managed.get(namespace, False):
            actions.append(MirrorAction("delete", namespace))
    return actions


def mirror_labels() -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


@dataclass(frozen=True)
class UninjectedPod:
    namespace: str
    name: str
    uid: str
    pvcs: tuple[str, ...]


def find_uninjected(
    pods: Iterable[Mapping[str, Any]], pvc_labels: Mapping[tuple[str, str], Mapping[str, str]]
) -> list[UninjectedPod]:
    """Running pods that mount a PVC labelled for backup but carry no restore container.

    A webhook only sees pods as they are created, so pods created before Lifeboat was installed
    (or while it was down with a policy that let them through) must be reported, not ignored.
    """
    found: list[UninjectedPod] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        namespace = str(meta.get("namespace", ""))
        if any(c.get("name") == RESTORE_CONTAINER for c in spec.get("initContainers") or []):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if str((meta.get("annotations") or {}).get(SKIP_ANNOTATION, "")).lower() == "true":
            continue  # the user opted this pod out on purpose
        labelled = tuple(
            claim
            for claim in (
                (v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or []
            )
            if claim and pvc_labels.get((namespace, claim), {}).get(BACKUP_LABEL) in ("hourly", "daily")
        )
        if labelled:
            found.append(
                UninjectedPod(namespace, str(meta.get("name", "")), str(meta.get("uid", "")), labelled)
            )
    return found

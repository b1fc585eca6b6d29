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

The master is read the same way everywhere (the controller, that command, the docs): the Secret's
value less exactly one trailing line end (``\n`` or ``\r\n``), so ``--from-file`` of a file an
editor ended with a newline and ``--from-literal`` give the same password (``canonical_master``).
Lifeboat 0.1.0's controller used the bytes as they were; repositories created then open with a
*legacy* password, which each namespace's Secret also carries (``legacy_passwords``): the pod that
meets one adds the canonical password as a restic key, so nobody is locked out (docs/credentials.md).
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
from lifeboat.contract import DEFAULT_S3_PREFIX, ENV_LEGACY_PASSWORDS, OPTIONAL_CREDENTIAL_KEYS

# optional keys a user may write into the source Secret (the legacy passwords are computed)
_SOURCE_OPTIONAL_KEYS = tuple(k for k in OPTIONAL_CREDENTIAL_KEYS if k != ENV_LEGACY_PASSWORDS)
SOURCE_KEYS = (*CREDENTIAL_KEYS[:-1], MASTER_PASSWORD_KEY, *_SOURCE_OPTIONAL_KEYS)
REQUIRED_SOURCE_KEYS = (
    "LIFEBOAT_S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    MASTER_PASSWORD_KEY,
)


def canonical_master(raw: str) -> str:
    """The master password as Lifeboat reads it everywhere: the value less one trailing line end."""
    for ending in ("\r\n", "\n"):
        if raw.endswith(ending):
            return raw[: -len(ending)]
    return raw


def namespace_password(master: str, namespace: str) -> str:
    """HMAC-SHA256(key=master, msg="lifeboat/namespace/<namespace>"), lowercase hex. Stable forever.

    ``master`` is used as given: pass it through ``canonical_master`` first."""
    return hmac.new(
        master.encode("utf-8"), f"lifeboat/namespace/{namespace}".encode(), hashlib.sha256
    ).hexdigest()


def legacy_passwords(raw: str, namespace: str) -> list[str]:
    """The passwords Lifeboat 0.1.0 may have given ``namespace`` for this master, current one excluded.

    0.1.0 derived from the Secret's bytes as they were: from ``raw`` itself (the Secret still holds
    the trailing newline) or from the master plus ``\n`` (the Secret was made with ``--from-file``
    then and is recreated with ``--from-literal`` now, the disaster-recovery case)."""
    master = canonical_master(raw)
    current = namespace_password(master, namespace)
    found: list[str] = []
    for candidate in (raw, master + "\n"):
        password = namespace_password(candidate, namespace)
        if password != current and password not in found:
            found.append(password)
    return found


class SourceSecretInvalid(ValueError):
    """The source Secret lacks a key; the message names keys, never values."""


class NamespaceKeysMissing(SourceSecretInvalid):
    """Per-namespace S3 keys are on and the source Secret has none for this namespace."""


@dataclass(frozen=True)
class Layout:
    """How the mirrored Secrets are laid out: the chart's ``clusterName`` and ``perNamespaceS3Keys``."""

    cluster_name: str = ""
    per_namespace_keys: bool = False


def namespace_key_names(namespace: str) -> tuple[str, str]:
    """The source Secret keys holding ``namespace``'s own S3 keys (per-namespace identities)."""
    return f"AWS_ACCESS_KEY_ID.{namespace}", f"AWS_SECRET_ACCESS_KEY.{namespace}"


def key_prefix(source: Mapping[str, str], layout: Layout) -> str:
    """The mirrored LIFEBOAT_S3_PREFIX: the source's, plus the cluster name when one is set.

    Without a cluster name the source's value passes through unchanged (empty means the runtime's
    default), so installs without one keep today's layout and nothing moves."""
    prefix = source.get("LIFEBOAT_S3_PREFIX", "")
    if not layout.cluster_name:
        return prefix
    return f"{prefix.strip().strip('/') or DEFAULT_S3_PREFIX}/{layout.cluster_name}"


def check_source(source: Mapping[str, str], layout: Layout = Layout()) -> None:
    """Raises ``SourceSecretInvalid`` naming the keys (never values) the source Secret lacks."""
    required: tuple[str, ...] = REQUIRED_SOURCE_KEYS
    if layout.per_namespace_keys:
        required = tuple(k for k in REQUIRED_SOURCE_KEYS if not k.startswith("AWS_"))
    missing = [k for k in required if not source.get(k)]
    if missing:
        raise SourceSecretInvalid(
            f"the source Secret lacks {', '.join(missing)}; add them (see docs/credentials.md)"
        )
    if not canonical_master(source[MASTER_PASSWORD_KEY]):
        raise SourceSecretInvalid(
            f"the source Secret's {MASTER_PASSWORD_KEY} is only a line end; put the master password in it"
        )


def mirrored_data(source: Mapping[str, str], namespace: str, layout: Layout = Layout()) -> dict[str, str]:
    """The string data of the Secret mirrored into ``namespace``."""
    check_source(source, layout)
    raw_master = source[MASTER_PASSWORD_KEY]
    data = {key: source.get(key, "") for key in CREDENTIAL_KEYS[:-1]}
    if layout.per_namespace_keys:
        access, secret = namespace_key_names(namespace)
        if not source.get(access) or not source.get(secret):
            raise NamespaceKeysMissing(
                f"per-namespace S3 keys are on and the source Secret lacks {access} or {secret}; "
                "add this namespace's own keys (see docs/security.md)"
            )
        data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"] = source[access], source[secret]
    data["LIFEBOAT_S3_PREFIX"] = key_prefix(source, layout)
    data["RESTIC_PASSWORD"] = namespace_password(canonical_master(raw_master), namespace)
    # optional keys (the bucket's region) only when the source has them: absent, the injected
    # containers' `optional: true` references leave the variable unset and its default applies
    data.update({key: source[key] for key in _SOURCE_OPTIONAL_KEYS if source.get(key)})
    data[ENV_LEGACY_PASSWORDS] = ",".join(legacy_passwords(raw_master, namespace))
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
    layout: Layout = Layout(),
) -> list[MirrorAction]:
    """What to create, update and delete so each opted-in namespace has an up-to-date Secret.

    ``existing`` maps namespace -> current data of the mirror Secret (None when absent);
    ``managed`` says whether that Secret carries our managed-by label: a Secret of the same name
    that Lifeboat did not create is never overwritten or deleted. With per-namespace keys, pass
    only the namespaces ``lacking_keys`` does not name: the others' mirrors are then deleted
    (fail closed: a namespace never keeps keys that are not its own).
    """
    actions: list[MirrorAction] = []
    wanted = set(opted_in)
    for namespace in sorted(wanted):
        desired = mirrored_data(source, namespace, layout)
        current = existing.get(namespace)
        if current is None:
            actions.append(MirrorAction("create", namespace, desired))
        elif managed.get(namespace, False) and dict(current) != desired:
            actions.append(MirrorAction("update", namespace, desired))
    for namespace in sorted(set(existing) - wanted):
        if existing[namespace] is not None and managed.get(namespace, False):
            actions.append(MirrorAction("delete", namespace))
    return actions


def lacking_keys(source: Mapping[str, str], opted_in: Iterable[str], layout: Layout) -> list[str]:
    """The opted-in namespaces without S3 keys of their own, when per-namespace keys are on."""
    if not layout.per_namespace_keys:
        return []
    return sorted(n for n in opted_in if not all(source.get(k) for k in namespace_key_names(n)))


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

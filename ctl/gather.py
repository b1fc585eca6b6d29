"""The I/O of `lifeboat status | snapshots | ls | doctor`: Kubernetes, S3 and restic, read-only.

The cluster is read with the user's kubeconfig. The store is read with the chart's source Secret
(read from the cluster), turned into a namespace's credentials by ``injector.credentials``
(:func:`mirrored_data`, the controller's own derivation), so ctl opens exactly the repositories
the pods write. restic runs with ``--no-lock``; S3 sees only list and head requests.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ctl.report import PodFacts, PvcFacts, SnapshotFacts, StoreFacts
from injector.credentials import mirrored_data
from lifeboat.contract import (
    BACKUP_LABEL,
    DEFAULT_S3_PREFIX,
    ENV_LEGACY_PASSWORDS,
    INJECT_NAMESPACE_LABEL,
    INJECT_NAMESPACE_VALUE,
    REPOSITORY_ANNOTATION,
    SKIP_ANNOTATION,
    ConfigError,
    Repository,
    parse_repository,
)
from lifeboat.logs import Redactor

RESTORE_CONTAINER = "lifeboat-restore"


@dataclass(frozen=True)
class Target:
    """Where Lifeboat is installed and how to reach its store from here."""

    release_namespace: str = "lifeboat"
    source_secret: str = "lifeboat-source"  # noqa: S105 - a Secret name
    credentials_secret: str = "lifeboat-credentials"  # noqa: S105 - a Secret name
    webhook: str = "lifeboat-injector"
    s3_endpoint: str | None = None  # overrides the Secret's (the in-cluster name may not resolve here)
    restic: str = "restic"


class Cluster:
    """Reads through the official client; objects come back as plain dicts (camelCase keys)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core: Any = client.CoreV1Api(self.api)
        self.admission: Any = client.AdmissionregistrationV1Api(self.api)

    def plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    def namespaces(self) -> dict[str, dict[str, str]]:
        return {n.metadata.name: dict(n.metadata.labels or {}) for n in self.core.list_namespace().items}

    def labelled_pvcs(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace:
            items = self.core.list_namespaced_persistent_volume_claim(
                namespace, label_selector=BACKUP_LABEL
            ).items
        else:
            items = self.core.list_persistent_volume_claim_for_all_namespaces(
                label_selector=BACKUP_LABEL
            ).items
        return [self.plain(p) for p in items]

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return [self.plain(p) for p in self.core.list_namespaced_pod(namespace).items]

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def webhook(self, name: str) -> dict[str, Any] | None:
        try:
            return self.plain(self.admission.read_mutating_webhook_configuration(name))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def dry_run_pod(self, namespace: str) -> str | None:
        """None when the webhook answered a dry-run pod create (admit or deny), else the error."""
        body = {
            "metadata": {"generateName": "lifeboat-doctor-", "namespace": namespace},
            "spec": {"containers": [{"name": "probe", "image": "lifeboat-doctor.invalid/probe"}]},
        }
        try:
            self.core.create_namespaced_pod(namespace, body, dry_run="All")
        except Exception as exc:
            text = str(getattr(exc, "body", "") or exc)
            if "failed calling webhook" in text or "Internal error occurred" in text:
                return _message(text)
            return None  # a denial by the webhook is an answer
        return None


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))[:400]
    except (ValueError, AttributeError):
        return text[:400]


def pvc_facts(cluster: Cluster, namespace: str | None, store: Store | None, target: Target) -> list[PvcFacts]:
    namespaces = cluster.namespaces()
    pvcs = cluster.labelled_pvcs(namespace)
    pods_by_ns: dict[str, list[dict[str, Any]]] = {}
    mirrored: dict[str, bool] = {}
    facts = []
    for pvc in sorted(pvcs, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        meta = pvc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if ns not in pods_by_ns:
            pods_by_ns[ns] = cluster.pods(ns)
            mirrored[ns] = cluster.secret(ns, target.credentials_secret) is not None
        opted_in = namespaces.get(ns, {}).get(INJECT_NAMESPACE_LABEL) == INJECT_NAMESPACE_VALUE
        facts.append(
            PvcFacts(
                namespace=ns,
                name=name,
                label=(meta.get("labels") or {}).get(BACKUP_LABEL, ""),
                annotations=meta.get("annotations") or {},
                namespace_opted_in=opted_in,
                pods=tuple(_pod_facts(p) for p in pods_by_ns[ns] if _mounts(p, name)),
                store=store.facts(ns, name, meta.get("annotations") or {}) if store else None,
                mirrored_secret=mirrored[ns],
            )
        )
    return facts


def _mounts(pod: Mapping[str, Any], claim: str) -> bool:
    return any(
        (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
        for v in (pod.get("spec") or {}).get("volumes") or []
    )


def _pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    meta = pod.get("metadata") or {}
    created = meta.get("creationTimestamp")
    return PodFacts(
        name=str(meta.get("name")),
        injected=any(
            c.get("name") == RESTORE_CONTAINER for c in (pod.get("spec") or {}).get("initContainers") or []
        ),
        skipped=str((meta.get("annotations") or {}).get(SKIP_ANNOTATION, "")).lower() == "true",
        phase=str((pod.get("status") or {}).get("phase", "")),
        created=_dt.datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
    )


class Store:
    """One installation's store, opened with the source Secret's keys and derived passwords."""

    def __init__(self, source: Mapping[str, str], target: Target) -> None:
        self.source = dict(source)
        self.target = target
        self.redact = Redactor(v for v in source.values() if v)
        self.endpoint = (target.s3_endpoint or source.get("LIFEBOAT_S3_ENDPOINT", "")).rstrip("/")
        self.bucket = source.get("LIFEBOAT_S3_BUCKET", "")
        self.prefix = (source.get("LIFEBOAT_S3_PREFIX") or "").strip().strip("/") or DEFAULT_S3_PREFIX

    def repository(self, namespace: str, pvc: str, annotations: Mapping[str, str]) -> Repository:
        override = annotations.get(REPOSITORY_ANNOTATION)
        if override:
            return parse_repository(override)
        return Repository(self.endpoint, self.bucket, f"{self.prefix}/{namespace}/{pvc}")

    def env(self, namespace: str) -> dict[str, str]:
        """restic's environment for ``namespace``: what the controller mirrors there, as the pod uses it."""
        data = mirrored_data(self.source, namespace)
        env = {k: data[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD")}
        if data.get("LIFEBOAT_S3_REGION"):
            env["AWS_DEFAULT_REGION"] = data["LIFEBOAT_S3_REGION"]
        return env

    def passwords(self, namespace: str) -> list[str]:
        """The current password, then the legacy ones a not-yet-migrated repository may still have."""
        data = mirrored_data(self.source, namespace)
        legacy = [p for p in data.get(ENV_LEGACY_PASSWORDS, "").split(",") if p]
        self.redact = Redactor([*self.source.values(), data["RESTIC_PASSWORD"], *legacy])
        return [data["RESTIC_PASSWORD"], *legacy]

    def _s3(self, endpoint: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=self.source.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=self.source.get("AWS_SECRET_ACCESS_KEY"),
            region_name=self.source.get("LIFEBOAT_S3_REGION") or "us-east-1",
            config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 1}),
        )

    def bucket_error(self) -> str | None:
        """None when the bucket answers a HEAD; else why not (no secret in the text)."""
        try:
            self._s3(self.endpoint).head_bucket(Bucket=self.bucket)
        except Exception as exc:
            return self.redact(f"bucket {self.bucket} at {self.endpoint}: {exc}")
        return None

    def size(self, repository: Repository) -> int:
        total = 0
        paginator = self._s3(repository.endpoint).get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=repository.bucket, Prefix=repository.key_prefix.rstrip("/") + "/"
        ):
            total += sum(int(o.get("Size", 0)) for o in page.get("Contents") or [])
        return total

    def restic(self, namespace: str, repository: Repository, *args: str) -> str:
        """restic's stdout; tries the legacy passwords only when restic says the password is wrong."""
        binary = shutil.which(self.target.restic) or self.target.restic
        env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR", "SSL_CERT_FILE") if k in os.environ}
        env.update(self.env(namespace))
        error = ""
        for password in self.passwords(namespace):
            env["RESTIC_PASSWORD"] = password
            completed = subprocess.run(
                [binary, "-r", repository.url, "--no-lock", "--no-cache", "--json", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if completed.returncode == 0:
                return completed.stdout
            lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
            error = self.redact(lines[-1] if lines else f"restic exited {completed.returncode}")
            if "wrong password" not in error:
                break
        raise StoreError(error)

    def snapshots(self, namespace: str, repository: Repository) -> list[SnapshotFacts]:
        raw = json.loads(self.restic(namespace, repository, "snapshots") or "[]")
        return [
            SnapshotFacts(
                id=s["id"],
                time=_time(s["time"]),
                hostname=s.get("hostname", ""),
                tags=tuple(s.get("tags") or ()),
                files=(s.get("summary") or {}).get("total_files_processed"),
                bytes=(s.get("summary") or {}).get("total_bytes_processed"),
            )
            for s in raw or []
        ]

    def ls(
        self, namespace: str, repository: Repository, snapshot: str, path: str | None
    ) -> list[dict[str, Any]]:
        out = self.restic(namespace, repository, "ls", snapshot, *([path] if path else []))
        entries = []
        for line in out.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if item.get("struct_type") == "node" or item.get("message_type") == "node":
                entries.append(item)
        return entries

    def facts(self, namespace: str, pvc: str, annotations: Mapping[str, str]) -> StoreFacts:
        try:
            repository = self.repository(namespace, pvc, annotations)
        except ConfigError as exc:
            return StoreFacts("?", error=str(exc))
        try:
            snapshots = self.snapshots(namespace, repository)
            size = self.size(repository)
        except Exception as exc:
            message = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            if "does not exist" in message or "Is there a repository" in message:
                return StoreFacts(repository.url, (), 0)  # no repository yet: no backup yet
            return StoreFacts(repository.url, error=self.redact(message)[:300])
        return StoreFacts(repository.url, tuple(snapshots), size)


class StoreError(RuntimeError):
    """restic failed; the text is its last stderr line, redacted."""


def _time(value: str) -> _dt.datetime:
    from sidecar.edges.restic import parse_time

    return parse_time(value)


def ca_not_after(bundle_b64: str) -> _dt.datetime | None:
    """The expiry of the first certificate in a webhook's caBundle, or None if it holds none."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificates(base64.b64decode(bundle_b64))[0]
    except (ValueError, IndexError):
        return None
    return cert.not_valid_after_utc

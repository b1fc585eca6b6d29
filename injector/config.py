"""The injector's configuration: one validated object, read once from the environment, passed down.

Every knob the Helm chart sets arrives as a ``LIFEBOAT_INJECTOR_*`` variable. Validation happens
at start-up so a typo in the chart fails the Deployment rollout loudly instead of producing pods
that cannot back up. No module reads the environment on its own; they receive this object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Names shared by the decision, the patch, the controller and the chart. The user-facing ones
# (labels, annotations, env names, Secret keys) are the contract's, shared with the runtime.
from lifeboat.contract import (
    ADOPT_ANNOTATION,
    BACKUP_LABEL,
    CREDENTIAL_KEYS,
    INJECT_NAMESPACE_LABEL,
    INJECT_NAMESPACE_VALUE,
    INJECTED_ANNOTATION,
    REPOSITORY_ANNOTATION,
    RETENTION_ANNOTATION,
    SCHEDULE_ANNOTATION,
    SKIP_ANNOTATION,
    SNAPSHOT_ANNOTATION,
)

__all__ = [
    "ADOPT_ANNOTATION",
    "BACKUP_CONTAINER",
    "BACKUP_LABEL",
    "CREDENTIAL_KEYS",
    "INJECTED_ANNOTATION",
    "INJECT_NAMESPACE_LABEL",
    "INJECT_NAMESPACE_VALUE",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MASTER_PASSWORD_KEY",
    "REPOSITORY_ANNOTATION",
    "RESTORE_CONTAINER",
    "RETENTION_ANNOTATION",
    "SCHEDULE_ANNOTATION",
    "SKIP_ANNOTATION",
    "SNAPSHOT_ANNOTATION",
    "InjectorSettings",
]

RESTORE_CONTAINER = "lifeboat-restore"
BACKUP_CONTAINER = "lifeboat-backup"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "lifeboat"
# The key of the source Secret (injector namespace) holding the master password.
MASTER_PASSWORD_KEY = "RESTIC_MASTER_PASSWORD"  # noqa: S105 - a key name


class InjectorSettings(BaseSettings):
    """All injector settings. Defaults match the chart's defaults."""

    model_config = SettingsConfigDict(env_prefix="LIFEBOAT_INJECTOR_", extra="ignore", frozen=True)

    # What gets injected.
    image: str = Field(default="docker.io/library/lifeboat:dev", min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    credentials_secret: str = Field(default="lifeboat-credentials", min_length=1, max_length=253)
    metrics_port: int = Field(default=9090, ge=0, le=65535)  # 0: the sidecars serve no metrics
    final_backup_timeout_seconds: int = Field(default=300, ge=0, le=86400)
    restore_deadline_seconds: int = Field(default=0, ge=0)
    # "" (the chart's default): no sizeLimit, so a growing restic cache can never get the app pod
    # evicted for exceeding it (docs/backup.md, "The restic cache")
    restic_cache_size_limit: str = ""
    # Secrets of the app's namespace added to every injected pod's imagePullSecrets (a private
    # registry for the Lifeboat image); the chart passes its own imagePullSecrets
    image_pull_secrets: tuple[str, ...] = ()
    state_dir: str = "/var/run/lifeboat"
    cache_dir: str = "/var/cache/restic"
    data_root: str = "/lifeboat/volumes"
    # "auto" asks the API server its version at start-up; native sidecars need >= 1.29.
    native_sidecars: Literal["auto", "true", "false"] = "auto"
    cpu_request: str = "10m"
    # sized from measured peaks, docs/RELIABILITY.md "Memory" (chart/values.yaml says the same)
    memory_request: str = "128Mi"
    memory_limit: str = "1Gi"

    # Where the injector runs and what it may touch.
    namespace: str = "lifeboat"
    service_name: str = "lifeboat-injector"
    webhook_config_name: str = "lifeboat-injector"
    source_secret: str = "lifeboat-source"  # noqa: S105 - a Secret name
    # Added to every namespace's key prefix (`<prefix>/<cluster_name>/<namespace>/<pvc>`) so clusters
    # sharing one bucket never write into each other's repositories. Empty: today's layout. Keep it
    # the same across rebuilds of the same cluster, or its restores find nothing (docs/security.md).
    cluster_name: str = Field(default="", max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    # Each namespace gets its own S3 keys from the source Secret (`AWS_ACCESS_KEY_ID.<namespace>`,
    # `AWS_SECRET_ACCESS_KEY.<namespace>`), scoped by the store to its own prefix; a namespace
    # without them gets no credentials Secret (docs/security.md).
    per_namespace_s3_keys: bool = False
    excluded_namespaces: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")

    # Serving.
    listen_host: str = "0.0.0.0"  # noqa: S104 - the webhook must be reachable through its Service
    port: int = Field(default=8443, ge=0, le=65535)  # 0: any free port (tests)
    plain_port: int = Field(default=8080, ge=0, le=65535)  # probes and /metrics
    plain_port_enabled: bool = True
    drain_seconds: float = Field(default=5.0, ge=0)  # readiness off before closing, on SIGTERM
    max_request_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    tls_mode: Literal["bootstrap", "files"] = "bootstrap"
    tls_cert_file: str = "/tls/tls.crt"
    tls_key_file: str = "/tls/tls.key"
    tls_secret: str = "lifeboat-injector-tls"  # noqa: S105 - a Secret name
    tls_reload_seconds: float = Field(default=30.0, gt=0)
    cert_validity_days: int = Field(default=90, ge=2)
    cert_renew_before_days: int = Field(default=30, ge=1)

    # Controller loop (credential mirroring, un-injected pod reports).
    controller_enabled: bool = True
    resync_seconds: float = Field(default=300.0, gt=0)

    # Logging: JSON lines on stderr at this level (debug, info, warning, error).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # ... and of the injected containers (LIFEBOAT_LOG_LEVEL in the pod).
    sidecar_log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("log_level", "sidecar_log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("restic_cache_size_limit", "memory_request", "memory_limit", "cpu_request")
    @classmethod
    def _quantity(cls, value: str, info: ValidationInfo) -> str:
        import re

        if value == "" and info.field_name == "restic_cache_size_limit":
            return value  # no sizeLimit on the cache emptyDir
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?", value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 2Gi, 512Mi, 10m)")
        return value

    @field_validator("state_dir", "cache_dir", "data_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "":
            raise ValueError(f"{value!r} must be an absolute path other than /")
        return value.rstrip("/")

    @property
    def service_dns_names(self) -> list[str]:
        """The names the API server may use to reach the webhook Service."""
        svc, ns = self.service_name, self.namespace
        return [svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"]

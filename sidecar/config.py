"""Validated configuration for the restore and backup runtime.

Configuration comes from the environment (the injector sets it on the containers) and is
validated once at start. Anything wrong stops the process with exit 78 (EX_CONFIG) and a message
that names the variable and the fix, before a single byte is read from the volume or the store.
Secrets are held as `SecretStr`, so printing a settings object never shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sidecar.exitcodes import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL

__all__ = ["EX_CONFIG", "EX_NOPERM", "EX_OK", "EX_TEMPFAIL", "ConfigError", "Settings", "VolumeSpec"]

# DNS-1123 label (namespaces) and subdomain (PVC names), as Kubernetes validates them.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class ConfigError(ValueError):
    """A configuration problem, worded for the user: what is wrong and how to fix it."""


def _env(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """What `lifeboat restore` and `lifeboat backup` need. Field aliases are the env names."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", populate_by_name=False)

    s3_endpoint: Annotated[str, _env("LIFEBOAT_S3_ENDPOINT")]
    s3_bucket: Annotated[str, _env("LIFEBOAT_S3_BUCKET")]
    s3_prefix: Annotated[str, Field("lifeboat", validation_alias=AliasChoices("LIFEBOAT_S3_PREFIX"))]
    s3_region: Annotated[str, Field("us-east-1", validation_alias=AliasChoices("LIFEBOAT_S3_REGION"))]
    aws_access_key_id: Annotated[SecretStr, _env("AWS_ACCESS_KEY_ID")]
    aws_secret_access_key: Annotated[SecretStr, _env("AWS_SECRET_ACCESS_KEY")]
    restic_password: Annotated[
        SecretStr | None, Field(None, validation_alias=AliasChoices("RESTIC_PASSWORD"))
    ]
    restic_password_file: Annotated[
        Path | None, Field(None, validation_alias=AliasChoices("RESTIC_PASSWORD_FILE"))
    ]
    namespace: Annotated[str, _env("LIFEBOAT_NAMESPACE")]
    restore_deadline: Annotated[
        float, Field(0.0, ge=0, validation_alias=AliasChoices("LIFEBOAT_RESTORE_DEADLINE"))
    ]
    restore_snapshot: Annotated[
        str | None, Field(None, validation_alias=AliasChoices("LIFEBOAT_RESTORE_SNAPSHOT"))
    ]
    retry_initial: Annotated[float, Field(2.0, gt=0, validation_alias=AliasChoices("LIFEBOAT_RETRY_INITIAL"))]
    retry_max: Annotated[float, Field(60.0, gt=0, validation_alias=AliasChoices("LIFEBOAT_RETRY_MAX"))]
    probe_timeout: Annotated[
        float, Field(10.0, gt=0, validation_alias=AliasChoices("LIFEBOAT_PROBE_TIMEOUT"))
    ]
    restic_timeout: Annotated[
        float, Field(6 * 3600.0, gt=0, validation_alias=AliasChoices("LIFEBOAT_RESTIC_TIMEOUT"))
    ]
    restic_binary: Annotated[str, Field("restic", validation_alias=AliasChoices("LIFEBOAT_RESTIC_BINARY"))]
    restic_cache_dir: Annotated[Path | None, Field(None, validation_alias=AliasChoices("RESTIC_CACHE_DIR"))]
    lock_retry: Annotated[float, Field(300.0, ge=0, validation_alias=AliasChoices("LIFEBOAT_LOCK_RETRY"))]
    state_dir: Annotated[
        Path, Field(Path("/var/run/lifeboat"), validation_alias=AliasChoices("LIFEBOAT_STATE_DIR"))
    ]
    termination_message_path: Annotated[
        Path,
        Field(
            Path("/dev/termination-log"),
            validation_alias=AliasChoices("LIFEBOAT_TERMINATION_MESSAGE_PATH"),
        ),
    ]
    hostname: Annotated[str | None, Field(None, validation_alias=AliasChoices("LIFEBOAT_HOSTNAME"))]

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as http://127.0.0.1:8333")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be scheme://host[:port] only; put the bucket in LIFEBOAT_S3_BUCKET")
        return value.rstrip("/")

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
            raise ValueError("must be an S3 bucket name (3-63 chars of a-z, 0-9, '.', '-')")
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if not _PREFIX.fullmatch(value):
            raise ValueError("must be a path like 'lifeboat' or 'clusters/home' (letters, digits, . _ - /)")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError("must be a Kubernetes namespace name; set it from the downward API")
        return value

    @model_validator(mode="after")
    def _password(self) -> Settings:
        if self.restic_password is None and self.restic_password_file is None:
            raise ValueError("RESTIC_PASSWORD or RESTIC_PASSWORD_FILE must be set")
        if self.restic_password is not None and self.restic_password_file is not None:
            raise ValueError("set only one of RESTIC_PASSWORD and RESTIC_PASSWORD_FILE")
        if self.restic_password is not None and not self.restic_password.get_secret_value():
            raise ValueError("RESTIC_PASSWORD is empty")
        if self.restic_password_file is not None:
            path = self.restic_password_file
            if not path.is_file() or not path.read_text().strip():
                raise ValueError(f"RESTIC_PASSWORD_FILE {path} is missing or empty")
        return self

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds, for the log redactor."""
        values = [self.aws_access_key_id, self.aws_secret_access_key, self.restic_password]
        found = [v.get_secret_value() for v in values if v is not None]
        if self.restic_password_file is not None and self.restic_password_file.is_file():
            found.append(self.restic_password_file.read_text().strip())
        return found

    def restic_env(self) -> dict[str, str]:
        """Secrets and cache settings for restic, passed only through its environment."""
        env = {
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.s3_region,
        }
        if self.restic_password is not None:
            env["RESTIC_PASSWORD"] = self.restic_password.get_secret_value()
        if self.restic_password_file is not None:
            env["RESTIC_PASSWORD_FILE"] = str(self.restic_password_file)
        if self.restic_cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.restic_cache_dir)
        return env


_FIXES = {
    "LIFEBOAT_S3_ENDPOINT": "set it to the S3 URL, e.g. http://minio.storage:9000",
    "LIFEBOAT_S3_BUCKET": "set it to an existing bucket name",
    "AWS_ACCESS_KEY_ID": "set it from the lifeboat-credentials Secret",
    "AWS_SECRET_ACCESS_KEY": "set it from the lifeboat-credentials Secret",
    "LIFEBOAT_NAMESPACE": "set it from the downward API (fieldRef metadata.namespace)",
}


def describe_validation_error(error: ValidationError) -> str:
    """Turns pydantic's error into lines that name the variable and the fix, never the value."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in item["loc"]) or "configuration"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = f"is required: {_FIXES.get(name, 'set it')}"
        lines.append(f"{name}: {message}")
    return "; ".join(lines)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Builds settings from `env` (the process environment when None); raises ConfigError."""
    try:
        if env is None:
            return Settings()
        return Settings.model_validate(env)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


@dataclass(frozen=True)
class VolumeSpec:
    """One volume to protect: the PVC's name, where it is mounted, and per-volume options."""

    pvc: str
    path: Path
    pvc_uid: str | None = None
    snapshot: str | None = None
    repository: str | None = None


def _pairs(option: str, values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in values:
        pvc, sep, value = raw.partition("=")
        if not sep or not pvc or not value:
            raise ConfigError(f"{option} {raw!r}: expected PVC=VALUE, e.g. {option} data=/data")
        if not _DNS_SUBDOMAIN.fullmatch(pvc):
            raise ConfigError(f"{option} {raw!r}: {pvc!r} is not a valid PVC name (DNS-1123 subdomain)")
        if pvc in out:
            raise ConfigError(f"{option} {raw!r}: PVC {pvc!r} is given twice")
        out[pvc] = value
    return out


def parse_volumes(
    volumes: list[str],
    pvc_uids: list[str] = (),  # type: ignore[assignment]
    snapshots: list[str] = (),  # type: ignore[assignment]
    repositories: list[str] = (),  # type: ignore[assignment]
) -> list[VolumeSpec]:
    """Parses the repeatable `--volume PVC=PATH` and its per-volume companions."""
    if not volumes:
        raise ConfigError("--volume: at least one is required, e.g. --volume data=/data")
    paths = _pairs("--volume", list(volumes))
    extras = {
        "--pvc-uid": _pairs("--pvc-uid", list(pvc_uids)),
        "--snapshot": _pairs("--snapshot", list(snapshots)),
        "--repository": _pairs("--repository", list(repositories)),
    }
    for option, mapping in extras.items():
        unknown = sorted(set(mapping) - set(paths))
        if unknown:
            raise ConfigError(f"{option}: PVC {unknown[0]!r} has no matching --volume")
    specs = []
    seen_paths: set[Path] = set()
    for pvc, raw_path in paths.items():
        path = Path(raw_path)
        if not path.is_absolute():
            raise ConfigError(f"--volume {pvc}={raw_path}: the mount path must be absolute")
        if path in seen_paths:
            raise ConfigError(f"--volume {pvc}={raw_path}: two volumes share one mount path")
        seen_paths.add(path)
        specs.append(
            VolumeSpec(
                pvc=pvc,
                path=path,
                pvc_uid=extras["--pvc-uid"].get(pvc),
                snapshot=extras["--snapshot"].get(pvc),
                repository=extras["--repository"].get(pvc),
            )
        )
    return specs

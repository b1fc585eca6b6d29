"""Validated configuration of every runtime process: the single declaration of each variable.

`Settings` is what `lifeboat restore` and `lifeboat backup` need; `SidecarSettings` adds the backup
sidecar's own knobs. Each field's alias is its env name, its default and constraint are here and
nowhere else: the slim daemon's `Runtime` is copied from these fields by name (`build_runtime`), the
injector sets the names from lifeboat.contract, and a drift test checks the configuration tables
in README.md and docs/backup.md against these models.

Configuration comes from the environment (the injector sets it on the containers) and is
validated once at start. Anything wrong stops the process with exit 78 (EX_CONFIG) and a message
that names the variable and the fix, before a single byte is read from the volume or the store.
Secrets are held as `SecretStr`, so printing a settings object never shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lifeboat.contract import (
    DEFAULT_S3_PREFIX,
    ENV_ADOPT,
    ENV_CACHE_DIR,
    ENV_DRILL,
    ENV_FINAL_BACKUP_TIMEOUT,
    ENV_FORGET_AT_EXIT,
    ENV_LEGACY_PASSWORDS,
    ENV_METRICS_PORT,
    ENV_NAMESPACE,
    ENV_POD_NAME,
    ENV_RESTORE_DEADLINE,
    ENV_RETENTION,
    ENV_RETENTION_ACK,
    ENV_SCHEDULE,
    ENV_STATE_DIR,
    ConfigError,
    Schedule,
    parse_bool,
    parse_drill,
    parse_retention,
    parse_retention_ack,
    parse_schedule,
)
from lifeboat.exitcodes import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL
from lifeboat.logs import parse_level
from sidecar.daemon.retention import default_retention
from sidecar.edges.restic import Restic
from sidecar.locking import own_lock_host
from sidecar.repository import Repository, for_volume
from sidecar.runtime import Runtime, VolumeTarget

__all__ = [
    "EX_CONFIG",
    "EX_NOPERM",
    "EX_OK",
    "EX_TEMPFAIL",
    "ConfigError",
    "Settings",
    "SidecarSettings",
    "VolumeSpec",
]

# DNS-1123 label (namespaces) and subdomain (PVC names), as Kubernetes validates them.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


REQUIRED: Any = ...  # a field without a default


def _var(default: Any, name: str, description: str, **constraints: Any) -> Any:
    """One variable: its default (REQUIRED for none), env name, the docs' description, constraints."""
    return Field(default, validation_alias=AliasChoices(name), description=description, **constraints)


class Settings(BaseSettings):
    """What `lifeboat restore` and `lifeboat backup` need. Field aliases are the env names."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", populate_by_name=False)

    s3_endpoint: Annotated[
        str,
        _var(
            REQUIRED, "LIFEBOAT_S3_ENDPOINT", "S3 URL, `http(s)://host[:port]`, e.g. `http://127.0.0.1:8333`"
        ),
    ]
    s3_bucket: Annotated[str, _var(REQUIRED, "LIFEBOAT_S3_BUCKET", "bucket holding all repositories")]
    s3_prefix: Annotated[
        str,
        _var(
            DEFAULT_S3_PREFIX,
            "LIFEBOAT_S3_PREFIX",
            "key prefix; a PVC's repository is `s3:<endpoint>/<bucket>/<prefix>/<namespace>/<pvc>`",
        ),
    ]
    s3_region: Annotated[
        str,
        _var(
            "",
            "LIFEBOAT_S3_REGION",
            "the bucket's region, e.g. `eu-west-1` (optional key of the credentials Secret); empty: "
            "restic discovers it and the S3 probe follows what S3 names (signing `us-east-1` first)",
        ),
    ]
    aws_access_key_id: Annotated[SecretStr, _var(REQUIRED, "AWS_ACCESS_KEY_ID", "S3 access key")]
    aws_secret_access_key: Annotated[SecretStr, _var(REQUIRED, "AWS_SECRET_ACCESS_KEY", "S3 secret key")]
    restic_password: Annotated[
        SecretStr | None,
        _var(
            None,
            "RESTIC_PASSWORD",
            "repository password (one of the two is required; the injector derives one per namespace)",
        ),
    ]
    restic_password_file: Annotated[
        Path | None, _var(None, "RESTIC_PASSWORD_FILE", "file holding the repository password, instead")
    ]
    legacy_passwords: Annotated[
        SecretStr | None,
        _var(
            None,
            ENV_LEGACY_PASSWORDS,
            "passwords a repository may still have from Lifeboat 0.1.0, comma-separated (set by the "
            "injector): one that opens it gets the current password added as a key (docs/credentials.md)",
        ),
    ]
    namespace: Annotated[str, _var(REQUIRED, ENV_NAMESPACE, "the pod's namespace (downward API)")]
    pod_name: Annotated[
        str | None,
        _var(
            None,
            ENV_POD_NAME,
            "the pod's name (downward API); when it equals the hostname, locks of this pod's own dead "
            "restic are cleared at once instead of after restic's 30 minutes",
        ),
    ]
    restore_deadline: Annotated[
        float,
        _var(
            0.0,
            ENV_RESTORE_DEADLINE,
            "seconds to keep retrying an unavailable store before exiting 75; 0 = forever",
            ge=0,
        ),
    ]
    restore_snapshot: Annotated[
        str | None,
        _var(
            None,
            "LIFEBOAT_RESTORE_SNAPSHOT",
            "pin for every volume: a snapshot id (prefix) or an RFC 3339 time (latest at or before)",
        ),
    ]
    retry_initial: Annotated[
        float, _var(2.0, "LIFEBOAT_RETRY_INITIAL", "first backoff between store retries, seconds", gt=0)
    ]
    retry_max: Annotated[
        float, _var(60.0, "LIFEBOAT_RETRY_MAX", "longest backoff between store retries, seconds", gt=0)
    ]
    probe_timeout: Annotated[
        float, _var(10.0, "LIFEBOAT_PROBE_TIMEOUT", "connect/read timeout of the S3 probe, seconds", gt=0)
    ]
    restic_timeout: Annotated[
        float,
        _var(6 * 3600.0, "LIFEBOAT_RESTIC_TIMEOUT", "upper bound of any single restic call, seconds", gt=0),
    ]
    restic_binary: Annotated[str, _var("restic", "LIFEBOAT_RESTIC_BINARY", "restic executable")]
    log_level: Annotated[
        str, _var("info", "LIFEBOAT_LOG_LEVEL", "log level of the JSON lines: debug, info, warning or error")
    ]
    restic_cache_dir: Annotated[
        Path | None, _var(None, ENV_CACHE_DIR, "restic cache (an `emptyDir` in pods); unset: restic's own")
    ]
    lock_retry: Annotated[
        float,
        _var(
            300.0, "LIFEBOAT_LOCK_RETRY", "seconds an operation waits for other processes' live locks", ge=0
        ),
    ]
    state_dir: Annotated[
        Path,
        _var(
            Path("/var/run/lifeboat"),
            ENV_STATE_DIR,
            "shared `emptyDir`: the restore outcome handed to the sidecar (`restore.json`)",
        ),
    ]
    scratch_dir: Annotated[
        Path,
        _var(
            Path("/lifeboat/scratch"),
            "LIFEBOAT_SCRATCH_DIR",
            "scratch `emptyDir` (`lifeboat-scratch`), never the volume: SQLite staging in `sqlite/`, "
            "restore drills in `drill/`; emptied at start and after each use",
        ),
    ]
    termination_message_path: Annotated[
        Path,
        _var(
            Path("/dev/termination-log"),
            "LIFEBOAT_TERMINATION_MESSAGE_PATH",
            "where the restore's one-line summary goes",
        ),
    ]

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

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        parse_level(value)  # ValueError names the choices
        return value.strip().lower()

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not value:
            # the credentials controller mirrors a source Secret without this key as "": the default
            return DEFAULT_S3_PREFIX
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

    def legacy_password_list(self) -> list[str]:
        if self.legacy_passwords is None:
            return []
        return [p.strip() for p in self.legacy_passwords.get_secret_value().split(",") if p.strip()]

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds, for the log redactor."""
        values = [self.aws_access_key_id, self.aws_secret_access_key, self.restic_password]
        found = [v.get_secret_value() for v in values if v is not None]
        found += self.legacy_password_list()
        if self.restic_password_file is not None and self.restic_password_file.is_file():
            found.append(self.restic_password_file.read_text().strip())
        return found

    def restic_env(self) -> dict[str, str]:
        """Secrets and cache settings for restic, passed only through its environment."""
        env = {
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key.get_secret_value(),
        }
        if self.s3_region.strip():
            # only when set: restic otherwise asks S3 for the bucket's location itself, which a
            # fixed AWS_DEFAULT_REGION (us-east-1 for every bucket) would disable
            env["AWS_DEFAULT_REGION"] = self.s3_region.strip()
        if self.restic_password is not None:
            env["RESTIC_PASSWORD"] = self.restic_password.get_secret_value()
        if self.restic_password_file is not None:
            env["RESTIC_PASSWORD_FILE"] = str(self.restic_password_file)
        if self.legacy_password_list():
            # read by sidecar.edges.restic, never handed to restic itself
            env[ENV_LEGACY_PASSWORDS] = ",".join(self.legacy_password_list())
        if self.restic_cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.restic_cache_dir)
        return env


def restic_for(
    settings: Settings,
    repository: Repository,
    redact: Callable[[str], str] | None = None,
    *,
    lock_retry: float | None = None,
) -> Restic:
    """A restic handle on `repository` with this configuration's secrets and bounds."""
    restic = Restic(
        repository=repository.url,
        env=settings.restic_env(),
        binary=settings.restic_binary,
        timeout=settings.restic_timeout,
        lock_retry=settings.lock_retry if lock_retry is None else lock_retry,
        own_host=own_lock_host(settings.pod_name),
    )
    if redact is not None:
        restic.redact = redact
    return restic


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
    # this PVC's own settings (annotations on the PVC); None: the LIFEBOAT_* variable's value
    schedule: str | None = None
    retention: str | None = None
    adopt: bool | None = None
    retention_ack: str | None = None
    drill: str | None = None  # lifeboat.dev/drill: weekly, daily, cron or off


# per-volume options of the backup sidecar: (option, VolumeSpec field, the contract's parser)
_VOLUME_SETTINGS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("--schedule", "schedule", parse_schedule),
    ("--retention", "retention", parse_retention),
    ("--adopt", "adopt", parse_bool),
    ("--retention-ack", "retention_ack", parse_retention_ack),
    ("--drill", "drill", parse_drill),
)


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
    **settings: list[str],
) -> list[VolumeSpec]:
    """Parses the repeatable `--volume PVC=PATH` and its per-volume companions.

    `settings` holds the backup sidecar's per-volume options by field name (`schedule=[...]`,
    `retention=[...]`, `adopt=[...]`, `retention_ack=[...]`), each checked with the contract's
    parser so a bad value names the option, the PVC and the fix.
    """
    if not volumes:
        raise ConfigError("--volume: at least one is required, e.g. --volume data=/data")
    paths = _pairs("--volume", list(volumes))
    extras = {
        "--pvc-uid": _pairs("--pvc-uid", list(pvc_uids)),
        "--snapshot": _pairs("--snapshot", list(snapshots)),
        "--repository": _pairs("--repository", list(repositories)),
    }
    parsed: dict[str, dict[str, Any]] = {}
    for option, name, parse in _VOLUME_SETTINGS:
        extras[option] = _pairs(option, list(settings.pop(name, ())))
        for pvc, value in extras[option].items():
            try:
                result = parse(value)
            except ConfigError as exc:
                raise ConfigError(f"{option} {pvc}: {exc}") from None
            parsed.setdefault(pvc, {})[name] = result if name == "adopt" else value.strip()
    if settings:
        raise TypeError(f"unknown per-volume settings: {sorted(settings)}")
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
                **parsed.get(pvc, {}),
            )
        )
    return specs


class SidecarSettings(Settings):
    """`lifeboat sidecar`: Settings plus schedule, retention, maintenance, guard and metrics."""

    schedule_text: Annotated[
        str,
        _var(
            "hourly",
            ENV_SCHEDULE,
            "`hourly`, `daily`, or a 5-field crontab expression (UTC); jittered per namespace/PVC",
        ),
    ]
    retention_text: Annotated[
        str | None,
        _var(
            None,
            ENV_RETENTION,
            "`restic forget` rules, e.g. `hourly=24,daily=7,weekly=4,monthly=6`; unset: by schedule",
        ),
    ]
    retention_ack: Annotated[
        str | None,
        _var(
            None,
            ENV_RETENTION_ACK,
            "RFC 3339 time a large retention change was acknowledged (`lifeboat.dev/retention-ack`); "
            "for a day from then the retention breaker lets through a forget it would refuse",
        ),
    ]
    prune_schedule_text: Annotated[
        str,
        _var(
            "daily",
            "LIFEBOAT_PRUNE_SCHEDULE",
            "when `restic prune` runs: `hourly`, `daily`, `weekly` or cron",
        ),
    ]
    check_schedule_text: Annotated[
        str,
        _var(
            "weekly",
            "LIFEBOAT_CHECK_SCHEDULE",
            "when `restic check` runs: `hourly`, `daily`, `weekly` or cron",
        ),
    ]
    check_read_data_subset: Annotated[
        str,
        _var(
            "2.5%",
            "LIFEBOAT_CHECK_READ_DATA_SUBSET",
            "`--read-data-subset` of each check (`2.5%`, `1/7`, `500M`)",
        ),
    ]
    metrics_port: Annotated[
        int,
        _var(
            9090,
            ENV_METRICS_PORT,
            "`/metrics`, `/healthz`, `/readyz`; `0` turns the server off",
            ge=0,
            le=65535,
        ),
    ]
    metrics_address: Annotated[
        str, _var("0.0.0.0", "LIFEBOAT_METRICS_ADDRESS", "bind address of that server")  # noqa: S104 - a pod port
    ]
    final_backup_timeout: Annotated[
        float,
        _var(
            120.0,
            ENV_FINAL_BACKUP_TIMEOUT,
            "seconds the final backup may take after SIGTERM; `0` = no final backup",
            ge=0,
        ),
    ]
    forget_at_exit: Annotated[
        bool,
        _var(
            False,
            ENV_FORGET_AT_EXIT,
            "`true` (the injector sets it on Job pods): the final backup is followed by `forget` with the "
            "volume's retention, so a CronJob's snapshot per run stays bounded",
        ),
    ]
    adopt: Annotated[
        bool,
        _var(
            False,
            ENV_ADOPT,
            "`true`: this volume is the truth (resolves a conflict or a shrink; never lets an empty volume "
            "overwrite data)",
        ),
    ]
    shrink_limit: Annotated[
        float,
        _var(
            0.5,
            "LIFEBOAT_SHRINK_LIMIT",
            "refuse a backup when the volume lost more than this share of the newest snapshot's bytes; "
            "`1` disables",
            gt=0,
            le=1,
        ),
    ]
    first_backup_delay: Annotated[
        float,
        _var(
            30.0,
            "LIFEBOAT_FIRST_BACKUP_DELAY",
            "seconds after start for the first backup of a volume that was restored or started fresh; "
            "a volume that already held data is backed up within twice this (jittered) if no snapshot "
            "protects it yet",
            ge=0,
        ),
    ]
    retry_delay: Annotated[
        float,
        _var(
            300.0,
            "LIFEBOAT_BACKUP_RETRY_DELAY",
            "a failed or locked-out backup is retried once after this long (`0` = wait for the schedule)",
            ge=0,
        ),
    ]
    stop_grace: Annotated[
        float,
        _var(
            10.0,
            "LIFEBOAT_STOP_GRACE",
            "seconds restic gets to stop cleanly after SIGINT before SIGKILL",
            gt=0,
        ),
    ]
    drill: Annotated[
        str,
        _var(
            "weekly",
            ENV_DRILL,
            "restore drills (`lifeboat.dev/drill`): `weekly`, `daily`, a 5-field crontab expression "
            "(UTC) or `off`; jittered per namespace/PVC",
        ),
    ]
    drill_scratch_budget: Annotated[
        int,
        _var(
            256 * 2**20,
            "LIFEBOAT_DRILL_SCRATCH_BUDGET",
            "bytes of scratch space a drill may fill (never more than half the scratch file system's free "
            "space); a larger snapshot gets a sampled drill. Keep it below the scratch emptyDir's "
            "sizeLimit, if it has one: exceeding that evicts the pod",
            ge=0,
        ),
    ]
    drill_timeout: Annotated[
        float,
        _var(
            3600.0,
            "LIFEBOAT_DRILL_TIMEOUT",
            "seconds a drill may take before it is stopped (failed)",
            gt=0,
        ),
    ]

    @field_validator("schedule_text")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ConfigError (a ValueError) with the reason and the fix
        return value

    @field_validator("prune_schedule_text", "check_schedule_text")
    @classmethod
    def _maintenance(cls, value: str) -> str:
        parse_schedule(value, weekly=True)
        return value

    @field_validator("retention_text")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_retention(value)
        return value

    @field_validator("retention_ack")
    @classmethod
    def _retention_ack(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_retention_ack(value)
            return value.strip()
        return None

    @field_validator("drill")
    @classmethod
    def _drill(cls, value: str) -> str:
        parse_drill(value)
        return value.strip()

    @field_validator("check_read_data_subset")
    @classmethod
    def _subset(cls, value: str) -> str:
        text = value.strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1])
            except ValueError:
                share = -1.0
            if not 0 < share <= 100:
                raise ValueError("must be a percentage in (0, 100], e.g. 2.5%")
        elif "/" in text:
            n, _, m = text.partition("/")
            if not (n.isdigit() and m.isdigit() and 0 < int(n) <= int(m)):
                raise ValueError("must be n/m with 0 < n <= m, e.g. 1/7")
        elif not text or not ((text[:-1].isdigit() and text[-1] in "KMGT") or text.isdigit()):
            raise ValueError("must be a percentage (2.5%), a fraction (1/7) or a size (500M)")
        return text

    @property
    def schedule(self) -> Schedule:
        return parse_schedule(self.schedule_text)

    @property
    def prune_schedule(self) -> Schedule:
        return parse_schedule(self.prune_schedule_text, weekly=True)

    @property
    def check_schedule(self) -> Schedule:
        return parse_schedule(self.check_schedule_text, weekly=True)

    @property
    def retention(self) -> dict[str, int]:
        if self.retention_text is None or not self.retention_text.strip():
            return default_retention(self.schedule.kind)
        return parse_retention(self.retention_text)


def load_sidecar_settings(env: dict[str, str] | None = None) -> SidecarSettings:
    """Builds sidecar settings from `env` (the process environment when None); raises ConfigError."""
    try:
        return SidecarSettings.model_validate(dict(os.environ if env is None else env))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def _volume_retention(settings: SidecarSettings, volume: VolumeSpec, schedule: Schedule) -> dict[str, int]:
    """The volume's own policy, else LIFEBOAT_RETENTION, else the default of its own schedule."""
    if volume.retention:
        return parse_retention(volume.retention)
    if settings.retention_text and settings.retention_text.strip():
        return settings.retention
    return default_retention(schedule.kind)


def build_runtime(settings: SidecarSettings, volumes: list[VolumeSpec]) -> Runtime:
    """Freezes validated settings and volumes into the plain Runtime of the long-running process.

    Every Runtime field is copied by name from the settings (fields or properties), so a new knob
    is declared once, in the model; only what has no field of its own is computed here.
    """
    derived: dict[str, Any] = {
        "volumes": tuple(
            VolumeTarget(
                v.pvc,
                v.path,
                v.pvc_uid,
                for_volume(settings, v.pvc, v.repository).url,
                schedule=schedule,
                retention=_volume_retention(settings, v, schedule),
                adopt=settings.adopt if v.adopt is None else v.adopt,
                retention_ack=v.retention_ack or settings.retention_ack,
                drill=v.drill or settings.drill,
            )
            for v in volumes
            for schedule in [parse_schedule(v.schedule) if v.schedule else settings.schedule]
        ),
        "restic_env": settings.restic_env(),
        "secrets": tuple(settings.secrets()),
    }
    values = {
        f.name: derived[f.name] if f.name in derived else getattr(settings, f.name) for f in fields(Runtime)
    }
    return Runtime(**values)

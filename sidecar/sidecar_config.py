"""Configuration of the long-running backup sidecar: the restore/backup settings plus its own.

Everything is validated before the first backup (an invalid LIFEBOAT_SCHEDULE or LIFEBOAT_RETENTION
exits 78 naming the variable), and the parsed forms (a `Schedule`, a retention dict) are what the
rest of the sidecar receives, so nothing downstream parses strings again.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator

from sidecar.cadence import Schedule, parse_maintenance_schedule, parse_schedule
from sidecar.config import ConfigError, Settings, VolumeSpec, describe_validation_error
from sidecar.repository import for_volume
from sidecar.retention import default_retention, parse_retention
from sidecar.runtime import Runtime, VolumeTarget


def _opt(default: Any, name: str, **constraints: Any) -> Any:
    return Field(default, validation_alias=AliasChoices(name), **constraints)


class SidecarSettings(Settings):
    """`lifeboat sidecar`: Settings plus schedule, retention, maintenance, guard and metrics."""

    schedule_text: Annotated[str, _opt("hourly", "LIFEBOAT_SCHEDULE")]
    retention_text: Annotated[str | None, _opt(None, "LIFEBOAT_RETENTION")]
    prune_schedule_text: Annotated[str, _opt("daily", "LIFEBOAT_PRUNE_SCHEDULE")]
    check_schedule_text: Annotated[str, _opt("weekly", "LIFEBOAT_CHECK_SCHEDULE")]
    check_read_data_subset: Annotated[str, _opt("2.5%", "LIFEBOAT_CHECK_READ_DATA_SUBSET")]
    metrics_port: Annotated[int, _opt(9090, "LIFEBOAT_METRICS_PORT", ge=0, le=65535)]
    metrics_address: Annotated[str, _opt("0.0.0.0", "LIFEBOAT_METRICS_ADDRESS")]  # noqa: S104 - a pod port
    final_backup_timeout: Annotated[float, _opt(120.0, "LIFEBOAT_FINAL_BACKUP_TIMEOUT", ge=0)]
    adopt: Annotated[bool, _opt(False, "LIFEBOAT_ADOPT")]
    shrink_limit: Annotated[float, _opt(0.5, "LIFEBOAT_SHRINK_LIMIT", gt=0, le=1)]
    first_backup_delay: Annotated[float, _opt(30.0, "LIFEBOAT_FIRST_BACKUP_DELAY", ge=0)]
    retry_delay: Annotated[float, _opt(300.0, "LIFEBOAT_BACKUP_RETRY_DELAY", ge=0)]
    stop_grace: Annotated[float, _opt(10.0, "LIFEBOAT_STOP_GRACE", gt=0)]

    @field_validator("schedule_text")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ValueError with the reason
        return value

    @field_validator("prune_schedule_text", "check_schedule_text")
    @classmethod
    def _maintenance(cls, value: str) -> str:
        parse_maintenance_schedule(value)
        return value

    @field_validator("retention_text")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_retention(value)
        return value

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
        return parse_maintenance_schedule(self.prune_schedule_text)

    @property
    def check_schedule(self) -> Schedule:
        return parse_maintenance_schedule(self.check_schedule_text)

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


def build_runtime(settings: SidecarSettings, volumes: list[VolumeSpec]) -> Runtime:
    """Freezes validated settings and volumes into the plain Runtime of the long-running process."""
    targets = tuple(
        VolumeTarget(v.pvc, v.path, v.pvc_uid, for_volume(settings, v.pvc, v.repository).url) for v in volumes
    )
    return Runtime(
        namespace=settings.namespace,
        volumes=targets,
        schedule=settings.schedule,
        prune_schedule=settings.prune_schedule,
        check_schedule=settings.check_schedule,
        retention=settings.retention,
        check_read_data_subset=settings.check_read_data_subset,
        metrics_address=settings.metrics_address,
        metrics_port=settings.metrics_port,
        final_backup_timeout=settings.final_backup_timeout,
        adopt=settings.adopt,
        shrink_limit=settings.shrink_limit,
        first_backup_delay=settings.first_backup_delay,
        retry_delay=settings.retry_delay,
        stop_grace=settings.stop_grace,
        lock_retry=settings.lock_retry,
        state_dir=settings.state_dir,
        restic_binary=settings.restic_binary,
        restic_timeout=settings.restic_timeout,
        s3_region=settings.s3_region,
        probe_timeout=settings.probe_timeout,
        restic_env=settings.restic_env(),
        secrets=tuple(settings.secrets()),
    )

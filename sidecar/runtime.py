"""The validated configuration of the running sidecar, as plain data.

Validation needs pydantic-settings, which costs ~20 MiB of resident memory that an idle backup
sidecar has no use for (the footprint target is 32 MiB). So `lifeboat sidecar` validates with
pydantic (sidecar.settings), freezes the result into this plain `Runtime`, and re-executes
itself into the long-running process, handing the Runtime over through an inherited pipe (never
argv, never a file: it holds the secrets restic needs). The long-running modules only ever see a
`Runtime`, and none of them imports pydantic, boto3 or kubernetes at module level.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifeboat.contract import Schedule, parse_drill


@dataclass(frozen=True)
class VolumeTarget:
    """One protected volume: PVC name, mount path, PVC UID (if known), its restic repository URL,
    and its own schedule, retention, adopt and retention acknowledgement (None: the process-wide
    LIFEBOAT_* default; build_runtime fills every one in, so each PVC's settings stay its own)."""

    pvc: str
    path: Path
    pvc_uid: str | None
    repository: str
    schedule: Schedule | None = None
    retention: dict[str, int] | None = None
    adopt: bool | None = None
    retention_ack: str | None = None
    drill: str | None = None  # weekly, daily, cron or off (lifeboat.contract.parse_drill)


@dataclass(frozen=True)
class Runtime:
    namespace: str
    pod_name: str | None
    volumes: tuple[VolumeTarget, ...]
    schedule: Schedule
    prune_schedule: Schedule
    check_schedule: Schedule
    retention: dict[str, int]
    check_read_data_subset: str
    metrics_address: str
    metrics_port: int
    final_backup_timeout: float
    adopt: bool
    shrink_limit: float
    first_backup_delay: float
    retry_delay: float
    stop_grace: float
    lock_retry: float
    state_dir: Path
    restic_binary: str
    restic_timeout: float
    s3_region: str
    probe_timeout: float
    retention_ack: str | None  # RFC 3339, parsed where it is judged (sidecar.daemon.breaker)
    scratch_dir: Path
    drill: str
    drill_scratch_budget: int
    drill_timeout: float
    restic_env: dict[str, str] = field(repr=False)  # secrets: never printed
    secrets: tuple[str, ...] = field(repr=False, default=())
    log_level: str = "info"
    forget_at_exit: bool = False  # Job pods: forget after the final backup (docs/backup.md)

    def schedule_of(self, volume: VolumeTarget) -> Schedule:
        return volume.schedule or self.schedule

    def retention_of(self, volume: VolumeTarget) -> dict[str, int]:
        return volume.retention or self.retention

    def adopt_of(self, volume: VolumeTarget) -> bool:
        return self.adopt if volume.adopt is None else volume.adopt

    def retention_ack_of(self, volume: VolumeTarget) -> str | None:
        return volume.retention_ack or self.retention_ack

    def drill_of(self, volume: VolumeTarget) -> Schedule | None:
        """The volume's restore drill schedule; None: drills are off for it."""
        return parse_drill(volume.drill or self.drill)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Runtime:
        raw: dict[str, Any] = json.loads(text)
        raw["volumes"] = tuple(
            VolumeTarget(
                v["pvc"],
                Path(v["path"]),
                v.get("pvc_uid"),
                v["repository"],
                schedule=Schedule(**v["schedule"]) if v.get("schedule") else None,
                retention=v.get("retention"),
                adopt=v.get("adopt"),
                retention_ack=v.get("retention_ack"),
                drill=v.get("drill"),
            )
            for v in raw["volumes"]
        )
        for name in ("schedule", "prune_schedule", "check_schedule"):
            raw[name] = Schedule(**raw[name])
        raw["state_dir"] = Path(raw["state_dir"])
        raw["scratch_dir"] = Path(raw["scratch_dir"])
        raw["secrets"] = tuple(raw.get("secrets", ()))
        return cls(**raw)

"""One backup of one volume: ask the store, initialise only on a positive "none", back up.

The repository is created here and nowhere else, and only when the store probe positively says no
repository exists at the PVC's prefix (rule 2 applied to writes: a missing bucket or a refused
credential never leads to a second repository being started beside the real one).
Snapshots carry a stable identity: host `lifeboat`, tags for namespace, PVC and (when known) the
PVC's UID, so restarts of the pod continue one history and a rebuilt cluster finds it by name.

The long-running sidecar uses sidecar.scheduled: the same backup and identity, preceded by the
guard rails and lock handling, in a module light enough for the idle process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.config import EX_NOPERM, EX_OK, EX_TEMPFAIL, Settings, VolumeSpec
from sidecar.identity import SNAPSHOT_HOST, tags_for
from sidecar.logs import event
from sidecar.repository import Repository, for_volume
from sidecar.restic import BackupSummary, Failure, Restic, ResticError
from sidecar.store import StoreProbe, StoreState

log = logging.getLogger(__name__)

__all__ = [
    "SNAPSHOT_HOST",
    "BackupResult",
    "backup_volume",
    "ensure_repository",
    "restic_for",
    "snapshot_tags",
]


@dataclass(frozen=True)
class BackupResult:
    pvc: str
    exit_code: int
    summary: BackupSummary | None
    initialized: bool
    message: str


def snapshot_tags(namespace: str, volume: VolumeSpec) -> list[str]:
    """The identity every Lifeboat snapshot carries (see sidecar.identity)."""
    return tags_for(namespace, volume.pvc, volume.pvc_uid)


def restic_for(
    settings: Settings, repository: Repository, redact: Callable[[str], str] | None = None
) -> Restic:
    """A restic handle on `repository` with this configuration's secrets and bounds."""
    restic = Restic(
        repository=repository.url,
        env=settings.restic_env(),
        binary=settings.restic_binary,
        timeout=settings.restic_timeout,
        lock_retry=settings.lock_retry,
    )
    if redact is not None:
        restic.redact = redact
    return restic


def ensure_repository(probe: StoreProbe, restic: Restic, repository: Repository) -> tuple[bool, int, str]:
    """Makes sure a repository exists. Returns (initialized now, exit code, explanation)."""
    state, text = probe.probe(repository)
    if state is StoreState.REPOSITORY:
        return False, EX_OK, text
    if state is StoreState.NO_REPOSITORY:
        restic.init()
        return True, EX_OK, f"initialised a new repository at {repository.url}"
    if state is StoreState.DENIED:
        return False, EX_NOPERM, text
    return False, EX_TEMPFAIL, text


def backup_volume(
    settings: Settings, volume: VolumeSpec, probe: StoreProbe, restic: Restic | None = None
) -> BackupResult:
    """Backs one volume up; never raises for store or restic trouble, returns an exit code."""
    repository = for_volume(settings, volume.pvc, volume.repository)
    restic = restic or restic_for(settings, repository)
    try:
        initialized, code, text = ensure_repository(probe, restic, repository)
        if code != EX_OK:
            event(log, "backup.store_unavailable", logging.WARNING, pvc=volume.pvc, reason=text)
            return BackupResult(volume.pvc, code, None, False, text)
        if initialized:
            event(log, "repository.initialized", pvc=volume.pvc, repository=repository.url)
        summary = restic.backup(
            volume.path, host=SNAPSHOT_HOST, tags=snapshot_tags(settings.namespace, volume)
        )
    except ResticError as exc:
        code = EX_NOPERM if exc.failure is Failure.WRONG_PASSWORD else EX_TEMPFAIL
        event(log, "backup.failed", logging.ERROR, pvc=volume.pvc, failure=exc.failure.value, error=str(exc))
        return BackupResult(volume.pvc, code, None, False, str(exc))
    event(
        log,
        "backup.finished",
        pvc=volume.pvc,
        snapshot=summary.snapshot_id,
        files=summary.total_files,
        bytes=summary.total_bytes,
        added_bytes=summary.data_added,
        seconds=summary.seconds,
        incomplete=summary.incomplete,
    )
    return BackupResult(volume.pvc, EX_OK, summary, initialized, f"snapshot {summary.snapshot_id}")

"""`lifeboat backup`: the sidecar's guarded backup, run once per volume, with exit codes.

There is one way to back up a volume (sidecar.backup.guarded): measure it, read the repository's
history, ask the guard (never an empty, shrunken or foreign volume over real history), handle locks
(stale ones removed by restic's own rules, live ones waited for, measured), back up with the stable
identity. The one-shot command is that path and nothing else: the restore outcome comes from the
handover file when one exists (else it is unknown, which the guard treats as the cautious
`skipped`), the guard's knobs from the same settings as the sidecar's.

Exit codes: 0 backed up; 65 the guard refused (the message says why and how to override);
66 the snapshot was written but is incomplete (unreadable files, counted in the log: not a success);
75 store unreachable, locked or interrupted; 77 credentials or password refused.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from lifeboat.exitcodes import EX_DATAERR, EX_NOINPUT, EX_NOPERM, EX_OK, EX_TEMPFAIL
from lifeboat.logs import event
from sidecar.backup.guarded import GuardedBackup, GuardPolicy, ensure_repository, guarded_backup
from sidecar.edges.restic import Failure
from sidecar.edges.store import StoreProbe
from sidecar.handover import read_handover
from sidecar.repository import for_volume
from sidecar.runtime import VolumeTarget
from sidecar.settings import SidecarSettings, VolumeSpec, restic_for

log = logging.getLogger(__name__)


def exit_code(result: GuardedBackup) -> int:
    """The process exit code for one volume's result."""
    if result.succeeded:
        return EX_OK
    if result.result == "blocked":
        return EX_DATAERR
    if result.result == "incomplete":
        return EX_NOINPUT
    if result.store_code:
        return result.store_code
    if result.failure is Failure.WRONG_PASSWORD:
        return EX_NOPERM
    return EX_TEMPFAIL


def backup_volumes(
    settings: SidecarSettings,
    volumes: list[VolumeSpec],
    probe: StoreProbe,
    *,
    redact: Callable[[str], str] | None = None,
    cancel: threading.Event | None = None,
) -> list[GuardedBackup]:
    """One guarded backup of each volume, in order; never raises for store or restic trouble."""
    handover = read_handover(settings.state_dir)
    results = []
    for spec in volumes:
        adopt = settings.adopt if spec.adopt is None else spec.adopt  # the PVC's own, else the variable
        policy = GuardPolicy(adopt=adopt, shrink_limit=settings.shrink_limit)
        repository = for_volume(settings, spec.pvc, spec.repository)
        restic = restic_for(settings, repository, redact, lock_retry=0)  # waits are measured here
        if cancel is not None:
            restic.cancel = cancel
        # Ask the store once before restic does: restic retries a dead endpoint for many minutes,
        # and a one-shot command should say "unavailable" (75) at once. The probe also creates the
        # repository, only on a positive "none" (the same ensure_repository the sidecar calls),
        # with one claim token for both of its calls below.
        token = secrets.token_hex(16)
        initialized, code, text = ensure_repository(probe, restic, repository, token=token)
        if code != EX_OK:
            event(log, "backup.store_unavailable", logging.WARNING, pvc=spec.pvc, reason=text)
            results.append(
                GuardedBackup(spec.pvc, "failed", message=text, failure=Failure.FATAL, store_code=code)
            )
            continue
        if initialized:
            event(log, "repository.initialized", pvc=spec.pvc, repository=repository.url)
        target = VolumeTarget(spec.pvc, spec.path, spec.pvc_uid, repository.url)
        outcome = handover[spec.pvc].outcome if spec.pvc in handover else None
        results.append(
            guarded_backup(
                settings.namespace,
                target,
                restic,
                outcome=outcome,
                policy=policy,
                ensure=lambda restic=restic, repository=repository, token=token: ensure_repository(  # type: ignore[misc]
                    probe, restic, repository, token=token
                ),
                lock_patience=settings.lock_retry,
                timeout=settings.restic_timeout,
            )
        )
    return results

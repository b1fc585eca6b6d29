"""Guard rails: may this volume be backed up over the repository's history? A pure decision.

The failure this prevents is the quiet one (volsync#627): an app starts on an empty or half-empty
volume, the scheduler dutifully snapshots it, retention ages the real snapshots out, and the data is
gone without a single error. So before every backup the sidecar compares what is on the volume
with the newest snapshot and refuses, loudly (log event, metric), when the volume

- is empty while the history has data;
- shrank by more than LIFEBOAT_SHRINK_LIMIT of the newest snapshot's bytes (not for the first
  backup after a restore: a rollback to an older snapshot is smaller on purpose);
- has data that Lifeboat neither restored nor started fresh, while the newest snapshot was taken
  from another volume instance (another PVC UID): a **conflict**. Two volumes claiming one history
  is never resolved by the newest writer silently winning.

How restarts and rebuilds stay out of the conflict rule: snapshots carry the PVC's UID. A pod that
restarts on the same PVC sees outcome `skipped` with its own UID on the newest snapshot: normal. A
rebuilt cluster restores into a new PVC (new UID, outcome `restored`): restored volumes continue the
history by definition, and right at start the sidecar adds the new UID to the newest snapshot's
tags (`restic tag`, seconds) so a restart before its first backup is not mistaken for a conflict.
A PVC whose UID is unknown cannot be told apart and is not blocked for conflict (the empty and
shrink rules still hold).

A volume Lifeboat started `fresh` (the restore found no snapshot) is exempt from the empty and
shrink rules only while the history is not its own and was written by Lifeboat: a history holding
this volume's snapshots (its PVC UID on the newest one, or this process already backed it up) is
guarded exactly as after a restore (issue 9 item 1: otherwise a pod that once started fresh could
empty its history for the rest of its life), and a snapshot another tool wrote (VolSync's host
`volsync`, no `lifeboat` tag) is data Lifeboat's restore never saw, which an empty or shrunken
volume must not bury (item 14). `fresh` still continues the history for the conflict rule. The
newest snapshot is judged whatever its host or tags; one without a size (restic < 0.17 wrote no
summary) counts as holding data.

LIFEBOAT_ADOPT=true ("this volume is the truth") overrides conflict and shrink. It never makes an
empty volume overwrite a history that has data: that snapshot could only lose information.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reason(Enum):
    EMPTY = "empty"
    SHRUNK = "shrunk"
    CONFLICT = "conflict"


# Restore outcomes (the init container's handover) that make the volume part of the history.
CONTINUES_HISTORY = ("restored", "fresh")


@dataclass(frozen=True)
class VolumeFacts:
    """What is on the volume now: regular files and their bytes (lost+found not counted)."""

    files: int
    bytes: int

    @property
    def empty(self) -> bool:
        return self.files == 0


@dataclass(frozen=True)
class History:
    """The newest snapshot in the repository, as far as the guard cares (None: no snapshots)."""

    snapshots: int
    latest_files: int | None = None  # None: the snapshot has no summary (written by restic < 0.17)
    latest_bytes: int | None = None
    latest_uids: tuple[str, ...] = ()
    latest_foreign: bool = False  # the newest snapshot was not written by Lifeboat (e.g. VolSync)
    # `pin-applied=` tags of the newest snapshot: every backup carries them on, so a spent snapshot
    # pin stays spent after retention forgot the snapshot it pinned (docs/restore.md)
    latest_pins: tuple[str, ...] = ()

    @property
    def latest_size_known(self) -> bool:
        return self.latest_files is not None or self.latest_bytes is not None

    @property
    def latest_has_data(self) -> bool:
        """Whether the newest snapshot holds data; a snapshot of unknown size is assumed to."""
        if self.snapshots and not self.latest_size_known:
            return True
        return bool(self.latest_files) or bool(self.latest_bytes)


@dataclass(frozen=True)
class GuardInput:
    outcome: str | None  # restored | fresh | skipped | None (no handover)
    volume: VolumeFacts
    history: History
    pvc_uid: str | None
    adopt: bool = False
    shrink_limit: float = 0.5
    backed_up: bool = False  # this process already took a backup of the volume


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: Reason | None
    explanation: str
    adopted: bool = False  # allowed only because LIFEBOAT_ADOPT=true overrode `reason`


def decide(facts: GuardInput) -> Verdict:
    """Allow the backup, or refuse it with a reason the user can act on."""
    history, volume = facts.history, facts.volume
    if history.snapshots == 0:
        return Verdict(True, None, "no snapshots yet: this is the first")
    uid = facts.pvc_uid
    # the history already holds this volume: it is guarded like any other, whatever the outcome
    own = facts.backed_up or (uid is not None and uid in history.latest_uids)
    fresh = facts.outcome == "fresh" and not own and not history.latest_foreign
    if volume.empty:
        if not history.latest_has_data:
            return Verdict(True, None, "the volume and the newest snapshot are both empty")
        if fresh:
            return Verdict(True, None, "the volume started fresh (the restore found no snapshot)")
        holds = (
            f"{history.latest_files} files"
            if history.latest_files is not None
            else "data of unknown size (no summary: written by restic < 0.17)"
        )
        return Verdict(
            False,
            Reason.EMPTY,
            f"the volume is empty but the newest snapshot holds {holds}; "
            "restore it (delete the pod with the volume emptied) or investigate the app",
        )
    if facts.outcome not in CONTINUES_HISTORY and uid and uid not in history.latest_uids:
        others = ", ".join(history.latest_uids) or "unknown"
        text = (
            f"the volume (PVC UID {uid}) has data that Lifeboat did not restore, and the newest "
            f"snapshot comes from another volume instance (PVC UID {others})"
        )
        if not facts.adopt:
            return Verdict(
                False, Reason.CONFLICT, text + "; set LIFEBOAT_ADOPT=true to make this volume the history"
            )
        return Verdict(True, Reason.CONFLICT, text + "; adopted (LIFEBOAT_ADOPT=true)", adopted=True)
    # a volume restored from a pinned, older snapshot is smaller than the newest one by the user's
    # choice: until its first backup it is compared with nothing; afterwards with its own snapshot
    just_restored = facts.outcome == "restored" and not facts.backed_up
    if not fresh and not just_restored and history.latest_bytes:
        floor = history.latest_bytes * (1 - facts.shrink_limit)
        if volume.bytes < floor:
            share = 1 - volume.bytes / history.latest_bytes
            text = (
                f"the volume shrank by {share:.0%} ({history.latest_bytes} -> {volume.bytes} bytes), "
                f"more than LIFEBOAT_SHRINK_LIMIT={facts.shrink_limit:g}"
            )
            if not facts.adopt:
                return Verdict(False, Reason.SHRUNK, text + "; set LIFEBOAT_ADOPT=true if intended")
            return Verdict(True, Reason.SHRUNK, text + "; adopted (LIFEBOAT_ADOPT=true)", adopted=True)
    return Verdict(True, None, "the volume continues its history")

"""The restore decision: restore, start fresh, skip, wait, or fail — as a pure function.

This is the one decision Lifeboat cannot get wrong. Handing an app an empty volume while its
backup exists loses data as surely as deleting it; restoring over data that is there destroys it.
So the table is small and strict:

| volume    | the store says                          | decision                       |
|-----------|-----------------------------------------|--------------------------------|
| has data  | (not asked)                             | skip                           |
| pending   | (not asked)                             | finish the interrupted restore |
| empty     | no repository / no snapshot             | fresh                          |
| empty     | an abandoned init only: keys/ (locks/,  | fresh: asked as no repository  |
|           | the init claim), no config, every       | (no config, so no snapshot and |
|           | object older than 10 minutes            | no data; sidecar.restore.run)  |
| empty     | snapshots                               | restore latest (or the pinned) |
| empty     | unreachable, 5xx, timeout, bucket gone, | retry until the deadline (75)  |
|           | objects without a repository config     |                                |
| empty     | credentials refused, wrong password     | fail (77)                      |
| empty     | a pinned snapshot that does not exist   | fail (78): fix the pin         |

Only a *positive* "no repository" or "no snapshot" leads to fresh (rule 2). An abandoned init is
one: restic writes keys/ before config, so keys/ without config (and nothing in snapshots/, data/,
index/) holds nothing to restore; the store probe tells it apart (StoreState.HALF_INITIALISED) and
the restore asks the table with NO_REPOSITORY for it. Any other object without a config, or an
init's objects younger than the bound (an init may be running), stays INCONSISTENT: retry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from lifeboat.contract import Pin
from lifeboat.exitcodes import EX_CONFIG, EX_NOPERM, EX_TEMPFAIL


class VolumeState(Enum):
    EMPTY = "empty"  # nothing but lost+found and Lifeboat's own transient work directory
    HAS_DATA = "has_data"
    PENDING = "pending"  # a restore finished downloading and was interrupted while moving in


class StoreAnswer(Enum):
    NO_REPOSITORY = "no_repository"
    SNAPSHOTS = "snapshots"  # the repository exists; the snapshot list may be empty
    INCONSISTENT = "inconsistent"
    BUCKET_MISSING = "bucket_missing"
    UNREACHABLE = "unreachable"
    DENIED = "denied"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a name, not a password


@dataclass(frozen=True)
class SnapshotRef:
    """What the decision needs to know of a snapshot."""

    id: str
    time: dt.datetime


class Action(Enum):
    SKIP = "skipped"
    FRESH = "fresh"
    RESTORE = "restored"
    RESUME = "resume"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    snapshot: SnapshotRef | None = None
    exit_code: int = 0


def choose_snapshot(snapshots: Sequence[SnapshotRef], pin: Pin | None) -> SnapshotRef | None:
    """The latest snapshot, or the pinned one; None when nothing matches."""
    if pin is None:
        return max(snapshots, key=lambda s: s.time, default=None)
    if pin.snapshot_id is not None:
        matches = [s for s in snapshots if s.id.startswith(pin.snapshot_id)]
        return matches[0] if len(matches) == 1 else None
    assert pin.at_or_before is not None
    eligible = [s for s in snapshots if s.time <= pin.at_or_before]
    return max(eligible, key=lambda s: s.time, default=None)


def decide(
    volume: VolumeState,
    answer: StoreAnswer | None,
    snapshots: Sequence[SnapshotRef] = (),
    pin: Pin | None = None,
    detail: str = "",
) -> Decision:
    """The whole restore table. `answer` is None when the store has not been asked (yet)."""
    if volume is VolumeState.HAS_DATA:
        return Decision(Action.SKIP, "the volume already holds data; nothing is touched")
    if volume is VolumeState.PENDING:
        return Decision(Action.RESUME, "an interrupted restore had finished downloading; completing it")
    if answer is None:
        return Decision(Action.RETRY, "the store has not answered yet", exit_code=EX_TEMPFAIL)
    if answer is StoreAnswer.DENIED:
        return Decision(Action.FAIL, f"the store refused the credentials: {detail}", exit_code=EX_NOPERM)
    if answer is StoreAnswer.WRONG_PASSWORD:
        return Decision(
            Action.FAIL,
            "the repository exists but the restic password does not open it",
            exit_code=EX_NOPERM,
        )
    if answer in (StoreAnswer.UNREACHABLE, StoreAnswer.BUCKET_MISSING, StoreAnswer.INCONSISTENT):
        return Decision(Action.RETRY, f"{answer.value}: {detail}".rstrip(": "), exit_code=EX_TEMPFAIL)
    if answer is StoreAnswer.NO_REPOSITORY or not snapshots:
        if pin is not None:
            return Decision(
                Action.FAIL,
                f"snapshot {pin} was asked for, but the repository holds no snapshot; "
                "remove or correct the lifeboat.dev/restore-snapshot annotation",
                exit_code=EX_CONFIG,
            )
        what = "no repository" if answer is StoreAnswer.NO_REPOSITORY else "a repository with no snapshot"
        said = f": {detail}" if detail and answer is StoreAnswer.NO_REPOSITORY else ""
        return Decision(Action.FRESH, f"the store positively holds {what} for this volume{said}")
    chosen = choose_snapshot(snapshots, pin)
    if chosen is None:
        return Decision(
            Action.FAIL,
            f"no snapshot matches {pin} (of {len(snapshots)}); correct the "
            "lifeboat.dev/restore-snapshot annotation (an id prefix or an RFC 3339 time)",
            exit_code=EX_CONFIG,
        )
    return Decision(Action.RESTORE, f"restoring snapshot {chosen.id[:8]}", snapshot=chosen)


def backoff(attempt: int, initial: float, maximum: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry `attempt` (0-based): doubling, capped, with jitter in [0, 1)."""
    base = min(maximum, initial * (2 ** min(attempt, 30)))
    return base * (0.8 + 0.4 * jitter)

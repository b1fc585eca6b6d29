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
    tags: tuple[str, ...] = ()


# A pin applies to the restore it was meant for, once (docs/restore.md "Pinning a snapshot"):
# after a pinned restore the restore container tags the restored snapshot `pin-applied=<key>`;
# a later restore that finds the tag ignores the pin (logged) and restores the latest, so a pin
# left on the PVC (or in Git) cannot roll a volume back, or block its restore, months later.
PIN_APPLIED_TAG = "pin-applied"


def pin_key(pin: Pin) -> str:
    """The pin as a restic tag value: the id prefix as written, or the time in UTC (no commas)."""
    if pin.snapshot_id is not None:
        return pin.snapshot_id.lower()
    assert pin.at_or_before is not None
    return pin.at_or_before.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def pin_applied_tag(pin: Pin) -> str:
    return f"{PIN_APPLIED_TAG}={pin_key(pin)}"


def applied_by(snapshots: Sequence[SnapshotRef], pin: Pin) -> SnapshotRef | None:
    """The snapshot that records an earlier restore with this pin, if any."""
    tag = pin_applied_tag(pin)
    return next((s for s in snapshots if tag in s.tags), None)


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
    # set when the restore follows a pin: the tag to add to the restored snapshot afterwards
    mark_pin: str | None = None
    # the store says the bucket does not exist: a setup mistake no retry inside the pod fixes
    bucket_missing: bool = False


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
        if pin is not None:
            return Decision(
                Action.SKIP,
                f"the volume already holds data; nothing is touched (the lifeboat.dev/restore-snapshot "
                f"pin {pin} applies only to a restore into an empty volume)",
            )
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
    if answer is StoreAnswer.BUCKET_MISSING:
        # waits like any store error (rule 2), but says what to do: Lifeboat never creates buckets
        said = detail or "the bucket does not exist: create it (docs/stores.md)"
        return Decision(Action.RETRY, said, exit_code=EX_TEMPFAIL, bucket_missing=True)
    if answer in (StoreAnswer.UNREACHABLE, StoreAnswer.INCONSISTENT):
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
    spent = applied_by(snapshots, pin) if pin is not None else None
    if spent is not None and pin is not None:
        latest = choose_snapshot(snapshots, None)
        assert latest is not None
        return Decision(
            Action.RESTORE,
            f"restoring the latest snapshot {latest.id[:8]}: the lifeboat.dev/restore-snapshot pin {pin} "
            f"was applied by an earlier restore (snapshot {spent.id[:8]} carries {pin_applied_tag(pin)}) "
            "and is ignored; remove the annotation",
            snapshot=latest,
        )
    chosen = choose_snapshot(snapshots, pin)
    if chosen is None:
        return Decision(
            Action.FAIL,
            f"no snapshot matches {pin} (of {len(snapshots)}); correct the "
            "lifeboat.dev/restore-snapshot annotation (an id prefix or an RFC 3339 time)",
            exit_code=EX_CONFIG,
        )
    if pin is not None:
        return Decision(
            Action.RESTORE,
            f"restoring snapshot {chosen.id[:8]}, pinned by lifeboat.dev/restore-snapshot {pin}",
            snapshot=chosen,
            mark_pin=pin_applied_tag(pin),
        )
    return Decision(Action.RESTORE, f"restoring snapshot {chosen.id[:8]}", snapshot=chosen)


def backoff(attempt: int, initial: float, maximum: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry `attempt` (0-based): doubling, capped, with jitter in [0, 1)."""
    base = min(maximum, initial * (2 ** min(attempt, 30)))
    return base * (0.8 + 0.4 * jitter)

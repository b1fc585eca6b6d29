"""The guard table: every row is one situation a sidecar meets before a backup, and its answer."""

from __future__ import annotations

import pytest

from sidecar.backup.guard import GuardInput, History, Reason, VolumeFacts, decide

MINE, OTHER = "uid-mine", "uid-other"
EMPTY = VolumeFacts(files=0, bytes=0)
FULL = VolumeFacts(files=100, bytes=1000)
HALF = VolumeFacts(files=60, bytes=600)
TENTH = VolumeFacts(files=10, bytes=100)
NONE = History(snapshots=0)
OURS = History(snapshots=5, latest_files=100, latest_bytes=1000, latest_uids=(MINE,))
THEIRS = History(snapshots=5, latest_files=100, latest_bytes=1000, latest_uids=(OTHER,))
UNTAGGED = History(snapshots=5, latest_files=100, latest_bytes=1000)
EMPTY_HISTORY = History(snapshots=1, latest_files=0, latest_bytes=0, latest_uids=(MINE,))

# (outcome, volume, history, pvc uid, adopt) -> (allowed, reason)
TABLE = [
    # no history: nothing to protect, whatever the volume holds
    ("fresh", EMPTY, NONE, MINE, False, True, None),
    ("skipped", FULL, NONE, MINE, False, True, None),
    (None, EMPTY, NONE, None, False, True, None),
    # an empty volume over real history: refused unless Lifeboat started it fresh
    ("skipped", EMPTY, OURS, MINE, False, False, Reason.EMPTY),
    ("restored", EMPTY, OURS, MINE, False, False, Reason.EMPTY),
    (None, EMPTY, OURS, MINE, False, False, Reason.EMPTY),
    ("skipped", EMPTY, OURS, MINE, True, False, Reason.EMPTY),  # adopt never empties history
    ("fresh", EMPTY, OURS, MINE, False, True, None),
    ("skipped", EMPTY, EMPTY_HISTORY, MINE, False, True, None),  # nothing to lose
    # a normal restart: skipped, same volume instance
    ("skipped", FULL, OURS, MINE, False, True, None),
    ("skipped", HALF, OURS, MINE, False, True, None),  # shrank by 40% < 50%
    # shrinking by more than the limit
    ("skipped", TENTH, OURS, MINE, False, False, Reason.SHRUNK),
    ("restored", TENTH, OURS, MINE, False, True, None),  # first backup after a (pinned) restore
    ("fresh", TENTH, OURS, MINE, False, True, None),
    ("skipped", TENTH, OURS, MINE, True, True, Reason.SHRUNK),  # adopted
    # another volume instance's history
    ("skipped", FULL, THEIRS, MINE, False, False, Reason.CONFLICT),
    (None, FULL, THEIRS, MINE, False, False, Reason.CONFLICT),
    ("skipped", FULL, UNTAGGED, MINE, False, False, Reason.CONFLICT),
    ("skipped", FULL, THEIRS, MINE, True, True, Reason.CONFLICT),  # adopted
    # a rebuilt cluster: restored into a new PVC, continues the old history
    ("restored", FULL, THEIRS, MINE, False, True, None),
    ("fresh", FULL, THEIRS, MINE, False, True, None),
    # a PVC without a known UID cannot be told apart: not a conflict
    ("skipped", FULL, THEIRS, None, False, True, None),
]


@pytest.mark.parametrize(("outcome", "volume", "history", "uid", "adopt", "allowed", "reason"), TABLE)
def test_guard_table(
    outcome: str | None,
    volume: VolumeFacts,
    history: History,
    uid: str | None,
    adopt: bool,
    allowed: bool,
    reason: Reason | None,
) -> None:
    verdict = decide(GuardInput(outcome, volume, history, uid, adopt=adopt))
    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.explanation
    assert verdict.adopted == (allowed and reason is not None)


def test_empty_volume_is_not_backed_up_over_history() -> None:
    verdict = decide(GuardInput("skipped", EMPTY, OURS, MINE))
    assert not verdict.allowed
    assert "100 files" in verdict.explanation


def test_shrink_limit_is_configurable() -> None:
    lenient = decide(GuardInput("skipped", TENTH, OURS, MINE, shrink_limit=0.95))
    strict = decide(GuardInput("skipped", HALF, OURS, MINE, shrink_limit=0.3))
    assert lenient.allowed
    assert strict.reason is Reason.SHRUNK


def test_conflict_explanation_names_both_instances_and_the_way_out() -> None:
    verdict = decide(GuardInput("skipped", FULL, THEIRS, MINE))
    assert MINE in verdict.explanation and OTHER in verdict.explanation
    assert "LIFEBOAT_ADOPT=true" in verdict.explanation


def test_a_restored_volume_is_shrink_checked_again_after_its_first_backup() -> None:
    first = decide(GuardInput("restored", TENTH, OURS, MINE))
    later = decide(GuardInput("restored", TENTH, OURS, MINE, backed_up=True))
    assert first.allowed
    assert later.reason is Reason.SHRUNK

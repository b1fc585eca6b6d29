"""The guard table: every row is one situation a sidecar meets before a backup, and its answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.backup.guard import GuardInput, History, Reason, VolumeFacts, decide
from sidecar.backup.guarded import history_of
from sidecar.edges.restic import Snapshot
from sidecar.edges.usage import measure

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
# written by VolSync (host `volsync`, no tags), or by a restic < 0.17 that wrote no size summary
VOLSYNC = History(snapshots=3, latest_files=100, latest_bytes=1000, latest_foreign=True)
UNSIZED = History(snapshots=3, latest_foreign=True)

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
    # fresh, but the history is this volume's own now (issue 9 item 1): guarded like any other
    ("fresh", EMPTY, OURS, MINE, False, False, Reason.EMPTY),
    # fresh, over a Lifeboat history that is not provably this volume's: still exempt
    ("fresh", EMPTY, THEIRS, MINE, False, True, None),
    ("fresh", EMPTY, OURS, None, False, True, None),
    ("skipped", EMPTY, EMPTY_HISTORY, MINE, False, True, None),  # nothing to lose
    # a history another tool wrote is judged too, and `fresh` does not bury it (item 14)
    ("skipped", EMPTY, VOLSYNC, MINE, False, False, Reason.EMPTY),
    ("restored", EMPTY, VOLSYNC, MINE, False, False, Reason.EMPTY),
    ("fresh", EMPTY, VOLSYNC, MINE, False, False, Reason.EMPTY),
    ("fresh", EMPTY, VOLSYNC, None, False, False, Reason.EMPTY),
    ("skipped", EMPTY, UNSIZED, MINE, False, False, Reason.EMPTY),  # unknown size is not empty
    ("fresh", EMPTY, UNSIZED, MINE, True, False, Reason.EMPTY),
    # a normal restart: skipped, same volume instance
    ("skipped", FULL, OURS, MINE, False, True, None),
    ("skipped", HALF, OURS, MINE, False, True, None),  # shrank by 40% < 50%
    # shrinking by more than the limit
    ("skipped", TENTH, OURS, MINE, False, False, Reason.SHRUNK),
    ("restored", TENTH, OURS, MINE, False, True, None),  # first backup after a (pinned) restore
    ("fresh", TENTH, OURS, MINE, False, False, Reason.SHRUNK),  # its own history (item 1)
    ("fresh", TENTH, THEIRS, MINE, False, True, None),  # Lifeboat started it; history not its own
    ("fresh", TENTH, VOLSYNC, MINE, False, False, Reason.SHRUNK),  # item 14
    ("fresh", TENTH, VOLSYNC, MINE, True, True, Reason.SHRUNK),  # adopted
    (None, TENTH, VOLSYNC, None, False, False, Reason.SHRUNK),
    ("skipped", TENTH, OURS, MINE, True, True, Reason.SHRUNK),  # adopted
    # another volume instance's history
    ("skipped", FULL, THEIRS, MINE, False, False, Reason.CONFLICT),
    (None, FULL, THEIRS, MINE, False, False, Reason.CONFLICT),
    ("skipped", FULL, UNTAGGED, MINE, False, False, Reason.CONFLICT),
    ("skipped", FULL, THEIRS, MINE, True, True, Reason.CONFLICT),  # adopted
    # a rebuilt cluster: restored into a new PVC, continues the old history
    ("restored", FULL, THEIRS, MINE, False, True, None),
    ("fresh", FULL, THEIRS, MINE, False, True, None),
    ("fresh", FULL, VOLSYNC, MINE, False, True, None),
    ("restored", TENTH, VOLSYNC, MINE, False, True, None),  # first backup after restoring VolSync's
    ("skipped", FULL, VOLSYNC, MINE, False, False, Reason.CONFLICT),
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


def test_a_fresh_volume_is_guarded_once_it_has_backed_itself_up() -> None:
    """Issue 9 item 1: without a PVC UID, this process's own backup makes the history its own."""
    history = History(snapshots=4, latest_files=100, latest_bytes=1000)
    assert decide(GuardInput("fresh", EMPTY, history, None)).allowed
    wiped = decide(GuardInput("fresh", EMPTY, history, None, backed_up=True))
    mostly_deleted = decide(GuardInput("fresh", TENTH, history, None, backed_up=True))
    assert wiped.reason is Reason.EMPTY
    assert mostly_deleted.reason is Reason.SHRUNK


def test_a_fresh_volume_over_its_own_history_is_refused_even_when_adopting() -> None:
    verdict = decide(GuardInput("fresh", EMPTY, OURS, MINE, adopt=True))
    assert not verdict.allowed and verdict.reason is Reason.EMPTY


def test_a_snapshot_of_unknown_size_is_named_as_such_when_refusing() -> None:
    verdict = decide(GuardInput("skipped", EMPTY, UNSIZED, MINE))
    assert "unknown size" in verdict.explanation


def _snapshot(host: str, tags: tuple[str, ...], *, summary: bool = True, minute: int = 0) -> Snapshot:
    raw: dict[str, object] = {
        "id": f"{minute:064x}",
        "time": f"2026-11-27T10:{minute:02d}:00.123456789Z",
        "hostname": host,
        "tags": list(tags),
        "paths": ["/data"],
        "tree": "t",
    }
    if summary:
        raw["summary"] = {"total_files_processed": 7, "total_bytes_processed": 700}
    return Snapshot.from_json(raw)


def test_the_guard_judges_the_newest_snapshot_whatever_its_host_or_tags() -> None:
    ours = _snapshot("lifeboat", ("lifeboat", "pvc=data", f"pvc-uid={MINE}"), minute=1)
    volsync = _snapshot("volsync", (), minute=2)
    history = history_of([ours, volsync])
    assert history.snapshots == 2
    assert history.latest_foreign and history.latest_uids == ()
    assert (history.latest_files, history.latest_bytes) == (7, 700)
    assert not history_of([volsync, _snapshot("lifeboat", ("lifeboat",), minute=3)]).latest_foreign


def test_a_snapshot_without_a_summary_counts_as_holding_data() -> None:
    history = history_of([_snapshot("volsync", (), summary=False)])
    assert history.latest_files is None and history.latest_has_data
    assert not decide(GuardInput("fresh", EMPTY, history, MINE)).allowed


def test_a_volume_holding_only_lost_and_found_is_empty(tmp_path: Path) -> None:
    lost = tmp_path / "lost+found"
    lost.mkdir()
    (lost / "#1234").write_bytes(b"x" * 100)  # fsck's leftovers do not count either
    assert measure(tmp_path) == VolumeFacts(files=0, bytes=0)
    assert measure(tmp_path).empty
    nested = tmp_path / "app" / "lost+found"
    nested.mkdir(parents=True)
    (nested / "kept").write_bytes(b"y" * 10)  # only the root's lost+found is fsck's
    assert measure(tmp_path) == VolumeFacts(files=1, bytes=10)


def test_lost_and_found_alone_is_still_refused_over_history(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    verdict = decide(GuardInput("fresh", measure(tmp_path), OURS, MINE))
    assert verdict.reason is Reason.EMPTY

"""The speculative restore, on real restic and real S3 (SeaweedFS).

On a volume's first attempt, an empty volume without a pin starts `restic restore latest` into
Lifeboat's work directory while the store is still being asked (sidecar.restore.run `speculate`).
It is kept only when it provably restored the snapshot the decision chose (`settle`); on any other
outcome it is stopped, the work directory discarded, and the restore goes on as without it. These
tests make the store change under it (a backup landing, a `restic tag` rewrite), ask with a pin,
and give it answers that are not "restore": the volume must end as the decision says, never a mix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.devstore import free_port
from devtools.devtree import describe, make_volume, top_level
from lifeboat.contract import parse_pin
from sidecar.edges import volume as vol
from sidecar.edges.restic import Restic
from sidecar.edges.store import StoreProbe, StoreState
from sidecar.repository import Repository, for_volume
from sidecar.restore.decision import Action, Decision, Pin
from sidecar.restore.run import Outcome, restore_once
from sidecar.settings import Settings, load_settings, parse_volumes, restic_for
from tests.conftest import ACCESS_KEY, SECRET_KEY, Store
from tests.support import processes
from tests.support.lifeboat_cli import restic, snapshots

pytestmark = pytest.mark.s3


class ProbeThen(StoreProbe):
    """The real S3 probe, after `meanwhile` has run: the store changes while it is being asked."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        super().__init__(ACCESS_KEY, SECRET_KEY, timeout=3)
        self.meanwhile = meanwhile

    def probe(self, repository: Repository) -> tuple[StoreState, str]:
        self.meanwhile()
        return super().probe(repository)


def _settings(store: Store, tmp_path: Path, **extra: str) -> Settings:
    return load_settings(
        store.env(
            LIFEBOAT_STATE_DIR=str(tmp_path / "state"), RESTIC_CACHE_DIR=str(tmp_path / "cache"), **extra
        )
    )


def _backup(store: Store, tmp_path: Path, seed: int, *, init: bool = False) -> Path:
    """A source tree backed up by restic itself (a shared lock, like any backup)."""
    source = tmp_path / f"source-{seed}"
    make_volume(source, seed=seed)
    if init:
        restic(store, store.repository("data"), "init")
    restic(store, store.repository("data"), "backup", "--host", "pod", ".", cwd=source)
    return source


def _restic(settings: Settings, repository: Repository) -> Restic:
    handle = restic_for(settings, repository)
    handle.lock_retry = 0  # as restore_volumes does: lock waits are sidecar.locking's
    return handle


def _attempt(
    store: Store,
    tmp_path: Path,
    volume: Path,
    *,
    probe: StoreProbe | None = None,
    pin: Pin | None = None,
    first_attempt: bool = True,
    probe_settings: Settings | None = None,
    restic_pvc: str = "data",
) -> tuple[Decision, Outcome]:
    settings = _settings(store, tmp_path)
    (spec,) = parse_volumes([f"data={volume}"])
    handle = _restic(settings, for_volume(settings, restic_pvc))
    repository = for_volume(probe_settings or settings, "data")
    return restore_once(
        spec,
        pin,
        repository,
        probe or StoreProbe(ACCESS_KEY, SECRET_KEY, timeout=3),
        handle,
        first_attempt=first_attempt,
    )


def _speculations(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if getattr(r, "event", None) == "restore.speculation"]  # type: ignore[attr-defined]


def _restic_processes_on(path: Path) -> list[list[str]]:
    """restic processes whose command line names `path` (the speculative restore's target)."""
    return [cmdline for cmdline in processes.naming(path) if cmdline and cmdline[0].endswith("restic")]


@pytest.fixture(autouse=True)
def _events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sidecar.restore.run")


def test_the_speculative_restore_of_the_newest_snapshot_is_kept(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _backup(seaweed, tmp_path, 1, init=True)
    newest = _backup(seaweed, tmp_path, 2)
    volume = tmp_path / "vol"
    (volume / "lost+found").mkdir(parents=True)
    decision, outcome = _attempt(seaweed, tmp_path, volume)
    assert decision.action is Action.RESTORE, outcome.reason
    assert _speculations(caplog) == [{"pvc": "data", "kept": True}]
    assert outcome.snapshot == snapshots(seaweed, seaweed.repository("data"))[-1]["id"]
    assert describe(volume) == describe(newest)
    assert top_level(volume) == sorted(["lost+found", *top_level(newest)])


def test_a_backup_landing_while_the_store_is_asked_restores_the_listed_newest_not_a_mix(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources = {1: _backup(seaweed, tmp_path, 1, init=True)}

    def land() -> None:
        sources[2] = _backup(seaweed, tmp_path, 2)

    volume = tmp_path / "vol"
    volume.mkdir()
    decision, outcome = _attempt(seaweed, tmp_path, volume, probe=ProbeThen(land))
    assert decision.action is Action.RESTORE, outcome.reason
    (speculation,) = _speculations(caplog)
    assert speculation["kept"] is False, "the set of snapshots changed: never kept"
    ids = [s["id"] for s in snapshots(seaweed, seaweed.repository("data"))]
    assert outcome.snapshot in ids
    assert describe(volume) == describe(sources[ids.index(outcome.snapshot) + 1])


def test_a_tag_rewriting_the_newest_snapshot_during_the_restore_is_never_kept(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _backup(seaweed, tmp_path, 1, init=True)
    newest = _backup(seaweed, tmp_path, 2)
    rewritten = snapshots(seaweed, seaweed.repository("data"))[-1]["id"]

    def rewrite() -> None:  # waits for the speculative restore's shared lock, if it holds one
        restic(seaweed, seaweed.repository("data"), "tag", "--retry-lock", "2m", "--add", "x", rewritten)

    volume = tmp_path / "vol"
    volume.mkdir()
    decision, outcome = _attempt(seaweed, tmp_path, volume, probe=ProbeThen(rewrite))
    (speculation,) = _speculations(caplog)
    assert speculation["kept"] is False
    if decision.action is Action.RETRY:  # the listing named the snapshot the tag then removed
        assert outcome.outcome == "waiting"
        decision, outcome = _attempt(seaweed, tmp_path, volume, first_attempt=False)
    assert decision.action is Action.RESTORE, outcome.reason
    current = snapshots(seaweed, seaweed.repository("data"))[-1]
    assert "x" in current["tags"] and current["id"] != rewritten
    # the listing may have named either: the same tree (restic still opens the removed one when its
    # cache holds it, as without speculation); never a mix of the two snapshots
    assert outcome.snapshot in (rewritten, current["id"])
    assert describe(volume) == describe(newest)


def test_a_pin_is_restored_without_speculation(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    older = _backup(seaweed, tmp_path, 1, init=True)
    _backup(seaweed, tmp_path, 2)
    first = snapshots(seaweed, seaweed.repository("data"))[0]
    volume = tmp_path / "vol"
    volume.mkdir()
    decision, outcome = _attempt(seaweed, tmp_path, volume, pin=parse_pin(first["short_id"]))
    assert decision.action is Action.RESTORE, outcome.reason
    assert _speculations(caplog) == []
    assert outcome.snapshot == first["id"]
    assert describe(volume) == describe(older)


def test_no_speculation_after_the_first_attempt(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _backup(seaweed, tmp_path, 1, init=True)
    volume = tmp_path / "vol"
    volume.mkdir()
    decision, _ = _attempt(seaweed, tmp_path, volume, first_attempt=False)
    assert decision.action is Action.RESTORE
    assert _speculations(caplog) == []
    assert describe(volume) == describe(source)


def test_no_repository_starts_fresh_and_leaves_no_work_directory(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume = tmp_path / "vol"
    (volume / "lost+found").mkdir(parents=True)
    decision, outcome = _attempt(seaweed, tmp_path, volume)
    assert decision.action is Action.FRESH, outcome.reason
    assert _speculations(caplog) == [
        {"pvc": "data", "kept": False, "reason": "the decision is fresh, not a restore"}
    ]
    assert top_level(volume) == ["lost+found"]
    assert seaweed.keys("lifeboat/") == []


def test_a_started_speculation_the_decision_does_not_want_is_stopped_and_discarded(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """restic restores `data`'s repository while the store says `other` holds none: fresh wins."""
    _backup(seaweed, tmp_path, 1, init=True)
    volume = tmp_path / "vol"
    volume.mkdir()
    settings = _settings(seaweed, tmp_path)
    (spec,) = parse_volumes([f"data={volume}"])
    decision, outcome = restore_once(
        spec,
        None,
        for_volume(settings, "other"),
        StoreProbe(ACCESS_KEY, SECRET_KEY, timeout=3),
        _restic(settings, for_volume(settings, "data")),
    )
    assert decision.action is Action.FRESH, outcome.reason
    (speculation,) = _speculations(caplog)
    assert speculation["kept"] is False
    assert top_level(volume) == [], "the work directory is discarded"
    assert _restic_processes_on(vol.tree_dir(volume)) == []


def test_an_unreachable_store_retries_with_no_work_directory_and_no_restic_left(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _backup(seaweed, tmp_path, 1, init=True)
    volume = tmp_path / "vol"
    volume.mkdir()
    dead = _settings(seaweed, tmp_path, LIFEBOAT_S3_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    # restic reaches the store, the probe does not: the speculative restic is started, then stopped
    decision, outcome = _attempt(seaweed, tmp_path, volume, probe_settings=dead)
    assert decision.action is Action.RETRY, outcome.reason
    assert outcome.outcome == "waiting"
    (speculation,) = _speculations(caplog)
    assert speculation == {"pvc": "data", "kept": False, "reason": "the decision is retry, not a restore"}
    assert top_level(volume) == []
    assert _restic_processes_on(vol.tree_dir(volume)) == []
    # neither reaches it: nothing is started, nothing written
    caplog.clear()
    settings = dead
    (spec,) = parse_volumes([f"data={volume}"])
    decision, outcome = restore_once(
        spec,
        None,
        for_volume(settings, "data"),
        StoreProbe(ACCESS_KEY, SECRET_KEY, timeout=3),
        _restic(settings, for_volume(settings, "data")),
    )
    assert decision.action is Action.RETRY, outcome.reason
    assert top_level(volume) == []
    assert _restic_processes_on(vol.tree_dir(volume)) == []

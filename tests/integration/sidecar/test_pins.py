"""A snapshot pin applies once (issue 14 item 6): real `lifeboat restore` and `lifeboat backup`,
real restic, real S3 (SeaweedFS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.devtree import describe, make_volume
from tests.conftest import Store
from tests.support.lifeboat_cli import lifeboat, restic, snapshots

pytestmark = pytest.mark.s3


def backed_up(store: Store, tmp_path: Path, name: str, seed: int = 0, source: Path | None = None) -> Path:
    if source is None:
        source = tmp_path / name
        make_volume(source, seed=seed)
    run = lifeboat("backup", store, {"data": source}, tmp_path / f"backup-{name}")
    assert run.code == 0, run.stderr
    return source


def restore(store: Store, tmp_path: Path, name: str, pin: str) -> tuple[Path, object]:
    volume = tmp_path / name
    volume.mkdir()
    run = lifeboat(
        "restore", store, {"data": volume}, tmp_path / f"restore-{name}", "--snapshot", f"data={pin}"
    )
    assert run.code == 0, run.stderr
    return volume, run


def test_a_pin_left_on_the_pvc_rolls_back_once_and_later_restores_the_latest(
    seaweed: Store, tmp_path: Path
) -> None:
    good = backed_up(seaweed, tmp_path, "good", seed=1)
    backed_up(seaweed, tmp_path, "bad", seed=2)
    pin = snapshots(seaweed, seaweed.repository("data"))[0]["short_id"]

    rolled_back, run = restore(seaweed, tmp_path, "rollback", pin)
    assert describe(rolled_back) == describe(good)  # the pinned restore happened
    assert len(run.events("restore.pin_applied")) == 2  # the pinned snapshot and the newest
    (rolled_back / "written-after-the-rollback").write_text("new data")
    backed_up(seaweed, tmp_path, "after", source=rolled_back)
    newest = snapshots(seaweed, seaweed.repository("data"))[-1]
    assert f"pin-applied={pin}" in newest["tags"]  # carried on by the backup

    # months later: the volume is lost, the pin is still on the PVC
    again, run = restore(seaweed, tmp_path, "months-later", pin)
    assert describe(again) == describe(rolled_back)  # the latest, not a second rollback
    assert "was applied by an earlier restore" in run.outcome("data")["reason"]

    # retention forgot the pinned snapshot: the pin neither blocks nor rolls back further
    pinned = [s for s in snapshots(seaweed, seaweed.repository("data")) if s["time"] < newest["time"]]
    restic(seaweed, seaweed.repository("data"), "forget", *[s["id"] for s in pinned])
    after_forget, run = restore(seaweed, tmp_path, "after-forget", pin)
    assert describe(after_forget) == describe(rolled_back)

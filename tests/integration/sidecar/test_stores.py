"""A source Secret with a region, as docs/stores.md gives for Garage, B2 and AWS (issue 14 item 12):
fresh start, backup and restore on the real executables, on SeaweedFS and `rclone serve s3`."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.devtree import describe, make_volume
from tests.conftest import Store
from tests.support.lifeboat_cli import lifeboat

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("region", ["garage", "eu-central-1"])
def test_a_store_with_a_region_set_backs_up_and_restores(s3: Store, tmp_path: Path, region: str) -> None:
    env = {"LIFEBOAT_S3_REGION": region}
    volume = tmp_path / "vol"
    volume.mkdir()
    fresh = lifeboat("restore", s3, {"data": volume}, tmp_path / "fresh", env=env)
    assert fresh.code == 0 and fresh.outcome("data")["outcome"] == "fresh", fresh.stderr
    make_volume(volume, seed=3)
    backup = lifeboat("backup", s3, {"data": volume}, tmp_path / "backup", env=env)
    assert backup.code == 0, backup.stderr
    lost = tmp_path / "lost"
    lost.mkdir()
    restored = lifeboat("restore", s3, {"data": lost}, tmp_path / "restore", env=env)
    assert restored.code == 0 and restored.outcome("data")["outcome"] == "restored", restored.stderr
    assert describe(lost) == describe(volume)

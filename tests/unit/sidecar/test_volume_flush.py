"""The restore's one durability flush: `syncfs(2)` of the volume's file system before the commit
record (sidecar.edges.volume.sync_volume), never a flush of every file system on the node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.edges import volume as vol


def test_the_flush_of_a_volume_returns_once_its_file_system_is_written_back(tmp_path: Path) -> None:
    (tmp_path / "restored.bin").write_bytes(os.urandom(64 * 1024))
    vol.sync_volume(tmp_path)


def test_the_flush_of_a_missing_volume_fails_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as failure:
        vol.sync_volume(tmp_path / "not-mounted")
    assert "not-mounted" in str(failure.value)


def test_the_commit_record_follows_the_flush_and_a_rerun_finds_the_volume_pending(tmp_path: Path) -> None:
    tree = vol.prepare(tmp_path)
    (tree / "data.txt").write_text("restored")
    vol.commit(tmp_path, {"snapshot": "1a2b3c4d"})
    assert vol.committed(tmp_path) == {"snapshot": "1a2b3c4d"}
    assert vol.inspect(tmp_path).name == "PENDING"

"""Two sidecars on one repository (an RWX volume mounted by two pods): no corruption, one prune."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec
from tests.conftest import Store
from tests.support.sidecar import check_clean, fill, handover, locks, settings, snapshots

pytestmark = pytest.mark.s3


def together(*calls: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_two_sidecars_share_a_repository_without_corruption_or_double_prune(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = VolumeSpec("shared", fill(tmp_path / "vol", files=30, size=64 * 1024), pvc_uid="uid-rwx")
    pods = []
    for name in ("pod-a", "pod-b"):
        conf = settings(seaweed, tmp_path / name, LIFEBOAT_RETENTION="last=10", LIFEBOAT_LOCK_RETRY="120")
        handover(conf.state_dir, shared="skipped")
        pods.append(Sidecar.from_settings([volume], conf).workers[0])
    a, b = pods
    assert a.backup().succeeded  # the repository exists before the two race
    fill(volume.path / "more", files=10, size=64 * 1024)
    results = together(a.backup, b.backup)
    assert [r.result for r in results] == ["success", "success"]
    prunes = together(a.prune, b.prune)
    assert sorted(p.result for p in prunes) == ["skipped", "success"]
    checks = together(a.check, b.check)
    assert sorted(c.result for c in checks) == ["skipped", "success"]
    assert len(snapshots(seaweed, "shared")) == 3
    assert locks(seaweed, "shared") == []
    check_clean(seaweed, "shared")

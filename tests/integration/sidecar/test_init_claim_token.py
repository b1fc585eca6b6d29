"""A store cut during a repository's first creation: the sidecar's retry finishes it at once.

The sidecar creates a repository under a claim object (`.lifeboat-init`, sidecar.backup.guarded
`ensure_repository`). When the store goes away after the claim was written, the claim cannot be
released and stays behind. The VolumeWorker keeps one claim token for its lifetime, so its next
attempt recognises that claim as its own and creates the repository at once; a process holding
another token still takes it for a live init elsewhere and waits (docs/RELIABILITY.md, gap 2:
before, the retry waited `half_init_age`, ten minutes).

Real restic, real SeaweedFS behind a real toxiproxy (devtools/toxiproxy.py) that cuts the store.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from devtools import toxiproxy
from devtools.toxiproxy import Fault
from lifeboat.exitcodes import EX_TEMPFAIL
from sidecar.backup.guarded import GuardedBackup, ensure_repository
from sidecar.daemon.main import Sidecar, VolumeWorker
from sidecar.edges.store import HALF_INIT_AGE, INIT_CLAIM, StoreProbe
from sidecar.repository import parse_override
from sidecar.settings import VolumeSpec
from tests.conftest import ACCESS_KEY, SECRET_KEY, Store
from tests.support.sidecar import fill, restic, settings

pytestmark = pytest.mark.s3

PVC = "data"
CLAIM = f"lifeboat/apps/{PVC}/{INIT_CLAIM}"


def _worker(store: Store, proxy: toxiproxy.Toxiproxy, tmp_path: Path) -> VolumeWorker:
    """A sidecar's worker for one new volume, talking to the store through the proxy."""
    conf = settings(store, tmp_path, LIFEBOAT_S3_ENDPOINT=proxy.endpoint)
    sidecar = Sidecar.from_settings([VolumeSpec(PVC, fill(tmp_path / "volume"))], conf)
    return sidecar.workers[0]


def _first_backup_cut_after_the_claim(
    store: Store, proxy: toxiproxy.Toxiproxy, worker: VolumeWorker
) -> GuardedBackup:
    """The worker's first backup, with the store cut as soon as its init claim is written."""
    results: list[GuardedBackup] = []
    job = threading.Thread(target=lambda: results.append(worker.backup()))
    job.start()
    try:
        deadline = time.monotonic() + 60
        while not store.keys(CLAIM):  # read straight from the store, never through the proxy
            assert time.monotonic() < deadline, "the worker never wrote its init claim"
            time.sleep(0.05)
        proxy.apply(Fault("cut"))  # within the claim's settle time: the read-back fails
        job.join(timeout=120)
    finally:
        proxy.clear()
    assert results, "the first backup did not end"
    return results[0]


def test_a_first_init_cut_by_the_store_is_finished_by_the_same_workers_retry_at_once(
    seaweed: Store, proxy: toxiproxy.Toxiproxy, tmp_path: Path
) -> None:
    worker = _worker(seaweed, proxy, tmp_path)
    first = _first_backup_cut_after_the_claim(seaweed, proxy, worker)
    assert first.result == "failed", first
    assert seaweed.keys(CLAIM), "the cut left the worker's own claim behind"
    assert not seaweed.keys(f"lifeboat/apps/{PVC}/config")

    started = time.monotonic()
    retry = worker.backup()  # the sidecar's retry after LIFEBOAT_BACKUP_RETRY_DELAY
    took = time.monotonic() - started

    assert retry.result == "success", retry.message
    assert retry.initialized
    assert took < 60 < HALF_INIT_AGE, f"the retry took {took:.1f}s: it waited for its own claim"
    assert not seaweed.keys(CLAIM), "the claim was released"
    keys = json.loads(restic(seaweed, PVC, "key", "list", "--json").stdout)
    assert len(keys) == 1
    restic(seaweed, PVC, "check")


def test_a_claim_left_by_another_worker_is_still_waited_for(
    seaweed: Store, proxy: toxiproxy.Toxiproxy, tmp_path: Path
) -> None:
    """Another token (another pod, or this pod's next container) cannot tell a dead init from a
    live one until the claim is `half_init_age` old: it waits and leaves the claim alone."""
    worker = _worker(seaweed, proxy, tmp_path / "pod-0")
    first = _first_backup_cut_after_the_claim(seaweed, proxy, worker)
    assert first.result == "failed", first
    claim = seaweed.keys(CLAIM)
    assert claim

    other = _worker(seaweed, proxy, tmp_path / "pod-1")
    repository = parse_override(other.volume.repository, PVC)
    probe = StoreProbe(ACCESS_KEY, SECRET_KEY, timeout=3)  # half_init_age: the production 600 s
    started = time.monotonic()
    initialized, code, text = ensure_repository(probe, other.restic, repository, patience=3.0)

    assert (initialized, code) == (False, EX_TEMPFAIL), text
    assert time.monotonic() - started >= 3.0, "it waited for the other worker's init"
    assert "another process" in text
    assert seaweed.keys(CLAIM) == claim
    assert not seaweed.keys(f"lifeboat/apps/{PVC}/config")

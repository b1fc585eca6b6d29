"""The retention breaker on real restic and real S3 (SeaweedFS): a year-eraser is refused.

One repository with 40 hourly snapshots (taken with `restic backup --time`, Lifeboat's identity) is
built once per module and copied object by object into each test's bucket, so every test starts
from the same history in a second or two instead of forty backups.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devtools import devstore
from sidecar.daemon.breaker import Reason
from sidecar.daemon.main import Sidecar, VolumeWorker
from sidecar.daemon.maintenance import ask_breaker
from sidecar.edges.clock import StoreTimeUnavailable, repository_time, store_time
from sidecar.identity import SNAPSHOT_HOST, tags_for
from sidecar.settings import VolumeSpec
from tests.conftest import RESTIC, Store
from tests.support.sidecar import check_clean, fill, handover, settings, snapshots

pytestmark = pytest.mark.s3

HISTORY = 40
PVC = "data"


def new_store(server: devstore.S3Server) -> Store:
    bucket = f"rb{os.getpid()}-{time.monotonic_ns()}"
    server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return Store(server=server, bucket=bucket)


def take(store: Store, volume: Path, when: dt.datetime) -> None:
    """One snapshot of `volume` dated `when`, exactly as the sidecar takes it (cd volume; backup .)."""
    env = {**store.restic_env(store.repository(PVC)), "TZ": "UTC"}
    tags = [arg for tag in tags_for("apps", PVC, "uid-1") for arg in ("--tag", tag)]
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    argv = [RESTIC, "backup", "--quiet", "--host", SNAPSHOT_HOST, *tags, "--time", stamp, "."]
    subprocess.run(argv, cwd=volume, env=env, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def template(
    seaweed_server: devstore.S3Server, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Store, Path]:
    """A repository with 40 hourly snapshots, the newest 20 minutes old, and the volume they came from."""
    store = new_store(seaweed_server)
    volume = fill(tmp_path_factory.mktemp("history") / "vol")
    env = store.restic_env(store.repository(PVC))
    subprocess.run([RESTIC, "init"], env=env, check=True, capture_output=True, timeout=120)
    newest = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    take(store, volume, newest)  # the data first, so the parallel ones only add snapshots
    with ThreadPoolExecutor(4) as pool:  # backups share the lock: four at a time
        list(pool.map(lambda i: take(store, volume, newest - dt.timedelta(hours=i)), range(1, HISTORY)))
    assert len(snapshots(store, PVC)) == HISTORY
    return store, volume


@pytest.fixture
def history(template: tuple[Store, Path]) -> tuple[Store, Path]:
    """This test's own copy of the 40-snapshot repository, in a bucket of its own."""
    source, volume = template
    target = new_store(source.server)
    client: Any = source.server.client()
    for key in source.keys(f"lifeboat/apps/{PVC}/"):
        client.copy_object(Bucket=target.bucket, Key=key, CopySource={"Bucket": source.bucket, "Key": key})
    return target, volume


def worker_for(store: Store, tmp_path: Path, volume: Path, **env: str) -> tuple[Sidecar, VolumeWorker]:
    conf = settings(store, tmp_path, **env)
    handover(conf.state_dir, data="skipped")
    sidecar = Sidecar.from_settings([VolumeSpec(PVC, volume, pvc_uid="uid-1")], conf)
    worker = sidecar.workers[0]
    worker.own_snapshots.update(s.id for s in worker.restic.snapshots())  # it may prune (the leader)
    return sidecar, worker


def sample(sidecar: Sidecar, name: str, **labels: str) -> float:
    value = sidecar.metrics.registry.get_sample_value(
        name, {"namespace": "apps", "persistentvolumeclaim": PVC, **labels}
    )
    return -1.0 if value is None else value


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if getattr(r, "event", "") == name]  # type: ignore[attr-defined]


def test_a_change_from_hourly_to_last_1_is_refused_and_all_40_snapshots_stay(
    history: tuple[Store, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, volume = history
    sidecar, worker = worker_for(store, tmp_path, volume, LIFEBOAT_RETENTION="last=1")
    before = ask_breaker(worker.restic, {"hourly": 24, "daily": 7}, worker.breaker())
    assert before.allowed, before.message  # the old policy is ordinary retention

    with caplog.at_level(logging.INFO):
        forgot = worker.forget()
        pruned = worker.prune()

    assert forgot.result == "refused" and pruned.result == "refused"
    assert forgot.breaker is not None
    assert forgot.breaker.reasons == (Reason.TOO_MANY, Reason.NEWEST, Reason.HISTORY)
    assert (forgot.breaker.total, forgot.breaker.removed) == (HISTORY, HISTORY - 1)
    assert len(snapshots(store, PVC)) == HISTORY
    refused = events(caplog, "retention.refused")
    assert [e["operation"] for e in refused] == ["forget", "prune"]
    assert refused[0]["would_remove"] == HISTORY - 1 and refused[0]["snapshots"] == HISTORY
    assert refused[0]["retention"] == "last=1"
    assert sample(sidecar, "lifeboat_retention_breaker_tripped") == 1
    assert sample(sidecar, "lifeboat_retention_refusals_total", reason="too_many") == 2
    assert sample(sidecar, "lifeboat_maintenance_total", operation="forget", result="refused") == 1
    assert sample(sidecar, "lifeboat_maintenance_total", operation="prune", result="refused") == 1

    backed_up = worker.backup()  # a refusal never blocks backups; their forget is refused again
    assert backed_up.succeeded, backed_up.message
    assert len(snapshots(store, PVC)) == HISTORY + 1
    assert sample(sidecar, "lifeboat_retention_refusals_total", reason="too_many") == 3


def test_with_a_fresh_acknowledgement_the_change_goes_through(
    history: tuple[Store, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, volume = history
    written = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sidecar, worker = worker_for(
        store, tmp_path, volume, LIFEBOAT_RETENTION="last=1", LIFEBOAT_RETENTION_ACK=written
    )
    with caplog.at_level(logging.INFO):
        forgot = worker.forget()
    assert forgot.result == "success", forgot.message
    assert forgot.breaker is not None and forgot.breaker.acknowledged
    assert forgot.forget is not None and forgot.forget.removed == HISTORY - 1
    assert len(snapshots(store, PVC)) == 1
    assert events(caplog, "retention.acknowledged")[0]["would_remove"] == HISTORY - 1
    assert worker.prune().result == "success"
    assert sample(sidecar, "lifeboat_retention_breaker_tripped") == 0
    check_clean(store, PVC)


def test_an_acknowledgement_older_than_a_day_does_not_disarm_the_breaker(
    history: tuple[Store, Path], tmp_path: Path
) -> None:
    store, volume = history
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, worker = worker_for(store, tmp_path, volume, LIFEBOAT_RETENTION="last=1", LIFEBOAT_RETENTION_ACK=stale)
    assert worker.forget().result == "refused"
    assert len(snapshots(store, PVC)) == HISTORY


def test_a_refusal_clears_once_a_later_dry_run_passes(
    history: tuple[Store, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, volume = history
    sidecar, worker = worker_for(store, tmp_path, volume, LIFEBOAT_RETENTION="last=1")
    assert worker.forget().result == "refused"
    worker.volume = replace(worker.volume, retention={"hourly": 24, "daily": 7})  # a fixed annotation
    with caplog.at_level(logging.INFO):
        assert worker.forget().result == "success"
    assert events(caplog, "retention.cleared")
    assert sample(sidecar, "lifeboat_retention_breaker_tripped") == 0


def test_a_clock_two_days_ahead_stops_forget_and_prune_but_not_backups(
    seaweed: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume = VolumeSpec(PVC, fill(tmp_path / "vol"), pvc_uid="uid-1")
    conf = settings(seaweed, tmp_path, LIFEBOAT_RETENTION="last=1")
    handover(conf.state_dir, data="fresh")
    sidecar = Sidecar.from_settings([volume], conf)
    worker = sidecar.workers[0]
    assert worker.backup().succeeded  # the first forget is allowed: the clock is right
    worker.clock = lambda: time.time() + 2 * 86400
    fill(volume.path / "more")
    with caplog.at_level(logging.INFO):
        assert worker.backup().succeeded
        pruned = worker.prune()
    assert len(snapshots(seaweed, PVC)) == 2  # last=1 was not applied
    assert pruned.result == "refused" and pruned.breaker is not None
    assert pruned.breaker.reasons == (Reason.CLOCK_SKEW,)
    refused = events(caplog, "retention.refused")
    assert [e["operation"] for e in refused] == ["forget", "prune"]
    assert refused[0]["reasons"] == ["clock_skew"] and refused[0]["skew_seconds"] > 86400
    assert sample(sidecar, "lifeboat_retention_refusals_total", reason="clock_skew") == 2
    assert sample(sidecar, "lifeboat_clock_skew_seconds") > 86400
    assert sample(sidecar, "lifeboat_retention_breaker_tripped") == 1


def test_a_store_whose_time_cannot_be_read_holds_forget_for_this_round(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = VolumeSpec(PVC, fill(tmp_path / "vol"), pvc_uid="uid-1")
    conf = settings(seaweed, tmp_path, LIFEBOAT_RETENTION="last=1")
    handover(conf.state_dir, data="fresh")
    sidecar = Sidecar.from_settings([volume], conf)
    worker = sidecar.workers[0]
    nobody = f"http://127.0.0.1:{devstore.free_port()}/"
    worker.store_clock = lambda: store_time(nobody, timeout=2)
    assert worker.backup().succeeded  # one snapshot: last=1 removes nothing, the forget is skipped
    (volume.path / "more").write_bytes(b"x" * 100)
    assert worker.backup().succeeded  # backups go on; the forget after it (it would remove one) is held
    forgot = worker.forget()
    assert forgot.result == "refused" and forgot.breaker is not None
    assert forgot.breaker.reasons == (Reason.CLOCK_UNKNOWN,)
    assert "did not answer" in forgot.message
    assert len(snapshots(seaweed, PVC)) == 2
    assert sample(sidecar, "lifeboat_retention_refusals_total", reason="clock_unknown") == 2


def test_the_store_time_comes_from_any_s3_response_even_a_403(s3: Store) -> None:
    """An unsigned HEAD is refused (403) or answered: either way it carries the store's Date."""
    now = dt.datetime.now(dt.UTC)
    when = repository_time(s3.repository(PVC), timeout=5)
    assert abs((when - now).total_seconds()) < 120
    with pytest.raises(StoreTimeUnavailable):
        store_time(f"http://127.0.0.1:{devstore.free_port()}/", timeout=2)

"""A store outage restic rides out is logged and counted, not only seen as a slow backup.

restic retries a failing store request on its own (for up to 15 minutes) and says so only on its
stderr. The restic edge turns those lines into a `restic.retry` WARNING (the first at once, then at
most one a minute per restic process, one more when it ends) and the sidecar counts them in
`lifeboat_restic_retries_total` (docs/RELIABILITY.md, gap 1). Real restic, real SeaweedFS behind a
real toxiproxy that cuts the store for a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devtools import toxiproxy
from devtools.toxiproxy import Fault
from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec
from tests.conftest import ACCESS_KEY, PASSWORD, SECRET_KEY, Store
from tests.support.sidecar import fill, settings

pytestmark = pytest.mark.s3

OUTAGE = 5.0


def _retry_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {})) for r in caplog.records if getattr(r, "event", None) == "restic.retry"
    ]


def _retries_counted(sidecar: Sidecar) -> dict[str, float]:
    counted = {}
    for metric in sidecar.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "lifeboat_restic_retries_total" and sample.value:
                counted[sample.labels["operation"]] = sample.value
    return counted


def test_a_backup_that_rides_out_a_store_cut_logs_and_counts_restics_retries(
    seaweed: Store, proxy: toxiproxy.Toxiproxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = settings(seaweed, tmp_path, LIFEBOAT_S3_ENDPOINT=proxy.endpoint)
    sidecar = Sidecar.from_settings([VolumeSpec("data", fill(tmp_path / "volume"))], conf)
    worker = sidecar.workers[0]
    assert worker.backup().result == "success"  # the repository and a first snapshot
    assert _retries_counted(sidecar) == {}, "no retries while the store answers"
    caplog.set_level(logging.INFO)

    proxy.apply(Fault("cut"))
    try:
        results: list[Any] = []
        job = threading.Thread(target=lambda: results.append(worker.backup()))
        job.start()
        time.sleep(OUTAGE)
    finally:
        proxy.clear()
    job.join(timeout=300)

    assert results and results[0].result == "success", results
    events = _retry_events(caplog)
    assert events, "restic's retries were logged"
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "restic.retry"]
    assert all(r.levelno == logging.WARNING for r in warnings)
    first = events[0]
    assert first["retries"] == 1 and "exit_code" not in first, "the first retry is reported at once"
    assert sum(first["requests"].values()) == 1
    last = events[-1]
    assert last.get("exit_code") == 0, "restic's end is reported with what it retried since"
    # a 5 s cut against a 60 s interval: one report at the first retry, one when restic ends
    by_command: dict[str, int] = {}
    for fields in events:
        by_command[fields["command"]] = by_command.get(fields["command"], 0) + fields["retries"]
    assert all(n <= 2 for n in _reports_per_command(events).values()), events
    assert _retries_counted(sidecar) == {k: float(v) for k, v in by_command.items()}
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    for secret in (ACCESS_KEY, SECRET_KEY, PASSWORD):
        assert secret not in text


def _reports_per_command(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fields in events:
        counts[fields["command"]] = counts.get(fields["command"], 0) + 1
    return counts

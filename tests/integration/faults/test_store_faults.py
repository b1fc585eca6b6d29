"""Store faults through toxiproxy, a few cells of bench/faults.py's matrix (issue 12 item 1).

The real jobs (`lifeboat restore`, the sidecar's guarded backup and prune) talk to the session's
SeaweedFS through a toxiproxy; the fault hits while the job runs, clears after a few seconds, and
the verdict is read straight from the store: no fresh start (config and keys unchanged), `restic
check --read-data` clean, the job's goal reached once the store is back. `make reliability` runs
the whole matrix (five faults x six phases, outages of minutes) and docs/RELIABILITY.md has the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import lab as L
from bench.faults import Plan, run_cell
from devtools import devstore, toxiproxy
from devtools.toxiproxy import Fault

pytestmark = pytest.mark.s3

PLAN = Plan(outage=3.0, patience=120.0, slow_cap=60.0)


@pytest.fixture(scope="module")
def faulty(seaweed_server: devstore.S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L.Lab]:
    """The session's SeaweedFS behind a toxiproxy of this module's own."""
    root = tmp_path_factory.mktemp("faults")
    with toxiproxy.running(root / "toxiproxy", seaweed_server.endpoint) as proxy:
        yield L.Lab(root, seaweed_server, proxy)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return L.make_tree(tmp_path_factory.mktemp("faults-source") / "tree", files=30, mib=0.5)


def assert_nothing_lost(cell: object) -> None:
    assert cell.hit, "the fault must land while the job runs"  # type: ignore[attr-defined]
    assert cell.fresh_starts == 0, cell  # type: ignore[attr-defined]
    assert cell.check_ok, cell  # type: ignore[attr-defined]
    assert cell.goal, cell  # type: ignore[attr-defined]
    assert cell.recovered is not None, cell  # type: ignore[attr-defined]


def test_a_store_cut_during_a_restore_waits_and_restores_once_the_store_is_back(
    faulty: L.Lab, source: Path, tmp_path: Path
) -> None:
    cell = run_cell(faulty, Fault("cut"), "restore", source, tmp_path, PLAN, lead=1.0)
    assert_nothing_lost(cell)
    assert cell.first == "restored" and cell.reruns == 0  # the init container waited, never gave up


def test_a_store_cut_during_a_backup_loses_nothing_and_the_next_run_has_the_new_data(
    faulty: L.Lab, source: Path, tmp_path: Path
) -> None:
    cell = run_cell(faulty, Fault("cut"), "backup", source, tmp_path, PLAN, lead=1.5)
    assert_nothing_lost(cell)


def test_connections_reset_mid_transfer_during_a_prune_leave_a_clean_repository(
    faulty: L.Lab, source: Path, tmp_path: Path
) -> None:
    cell = run_cell(faulty, Fault("reset", bytes=16 * 1024), "prune", source, tmp_path, PLAN, lead=1.5)
    assert_nothing_lost(cell)


def test_the_proxy_cuts_and_restores_the_store_on_demand(faulty: L.Lab) -> None:
    import urllib.error
    import urllib.request

    assert faulty.proxy is not None
    faulty.proxy.apply(Fault("cut"))
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(faulty.proxy.endpoint, timeout=3)
    faulty.proxy.clear()
    assert faulty.proxy.enabled() and faulty.proxy.toxics() == []
    faulty.proxy.apply(Fault("latency"))
    assert [t["type"] for t in faulty.proxy.toxics()] == ["latency"]
    faulty.proxy.clear()

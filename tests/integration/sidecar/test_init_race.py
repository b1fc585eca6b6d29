"""Creating a repository: racing first backups and half-finished inits (issue 9, item 7).

restic 0.19 `init` checks that no `config`, key or snapshot exists, then writes `keys/<id>` and
only then `config` (internal/repository/repository.go `Init` and `init`). Two inits racing on one
prefix both pass the checks and both write a key and a config: the config that lands last is
encrypted with one process's master key, and the other process's key (which the shared password
opens first as often as not) makes every later restic call fail with "config or key ... is
damaged". An init killed between the two writes leaves `keys/` without `config`.

Lifeboat serialises `init` through the store (sidecar.backup.guarded.ensure_repository, a claim
object read back after a settle time) and finishes, or cleans, what an abandoned init left once it
is older than a bound (StoreProbe's `half_init_age`, 10 minutes in production; seconds here).
Everything runs on real restic and real S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.devtree import make_volume
from lifeboat.exitcodes import EX_OK, EX_TEMPFAIL
from sidecar.backup.guarded import ensure_repository
from sidecar.backup.oneshot import backup_volumes
from sidecar.edges.store import INIT_CLAIM, StoreProbe, StoreState
from sidecar.repository import for_volume
from sidecar.restore.run import restore_volumes
from sidecar.settings import SidecarSettings, load_sidecar_settings, parse_volumes, restic_for
from tests.conftest import ACCESS_KEY, RESTIC, SECRET_KEY, Store
from tests.support.lifeboat_cli import LIFEBOAT, lifeboat, restic

pytestmark = pytest.mark.s3

ROUNDS = int(os.environ.get("LIFEBOAT_TEST_INIT_RACE_ROUNDS", "8"))

# Waits until a shared instant, then becomes `lifeboat backup`: both processes start together.
_BARRIER = (
    "import os, sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def _start_backup(store: Store, pvc: str, volume: Path, run: Path, at: float) -> subprocess.Popen[str]:
    run.mkdir(parents=True)
    env = store.env(
        LIFEBOAT_STATE_DIR=str(run / "state"),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(run / "termination-log"),
        RESTIC_CACHE_DIR=str(run / "restic-cache"),
    )
    argv = [sys.executable, "-c", _BARRIER, repr(at), LIFEBOAT, "backup", "--volume", f"{pvc}={volume}"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _opens(store: Store, repository: str, cache: Path) -> bool:
    """restic opens the repository (key, then config) from a cold cache and lists its snapshots."""
    env = {**store.restic_env(repository), "RESTIC_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [RESTIC, "snapshots", "--json", "--no-lock"], env=env, capture_output=True, text=True, timeout=300
    )
    return proc.returncode == 0


def _race(store: Store, tmp_path: Path, rounds: int) -> list[str]:
    """`rounds` pairs of first backups on new repositories; returns what went wrong, per round."""
    problems = []
    for n in range(rounds):
        pvc = f"race-{n}"
        volume = tmp_path / pvc / "volume"  # one volume, two pods (RWX)
        make_volume(volume, seed=n)
        at = time.time() + 2.0
        procs = [_start_backup(store, pvc, volume, tmp_path / pvc / f"pod-{i}", at) for i in (0, 1)]
        results = [(p.wait(timeout=600), p.communicate()[1]) for p in procs]
        repository = store.repository(pvc)
        for i, (code, stderr) in enumerate(results):
            if code != EX_OK:
                problems.append(f"round {n}: pod-{i} exited {code}: {stderr[-600:]}")
        # each pod opens the repository afresh, as its next scheduled backup would
        for i in (0, 1):
            if not _opens(store, repository, tmp_path / pvc / f"reopen-{i}"):
                problems.append(f"round {n}: pod-{i} cannot open the repository afterwards")
        try:
            restic(store, repository, "check")
        except subprocess.CalledProcessError as exc:
            problems.append(f"round {n}: restic check refused the repository: {exc.stderr[-600:]}")
        keys = json.loads(restic(store, repository, "key", "list", "--json").stdout) if not problems else []
        if not problems and len(keys) != 1:
            problems.append(f"round {n}: {len(keys)} keys, expected one (an orphan key of a second init)")
        if store.keys(f"lifeboat/apps/{pvc}/{INIT_CLAIM}"):
            problems.append(f"round {n}: the init claim was left behind")
    return problems


def test_two_first_backups_racing_on_a_new_repository_leave_one_usable_repository(
    seaweed: Store, tmp_path: Path
) -> None:
    problems = _race(seaweed, tmp_path, ROUNDS)
    assert not problems, f"{len(problems)} problems in {ROUNDS} rounds:\n" + "\n".join(problems)


def test_two_first_backups_racing_leave_one_usable_repository_on_any_s3(s3: Store, tmp_path: Path) -> None:
    problems = _race(s3, tmp_path, 2)
    assert not problems, "\n".join(problems)


# --- half-finished inits ---------------------------------------------------------------------


def _half_init(store: Store, pvc: str) -> list[str]:
    """What `restic init` leaves when killed between its two writes: `keys/<id>` and no `config`."""
    repository = store.repository(pvc)
    restic(store, repository, "init")
    store.server.client().delete_object(Bucket=store.bucket, Key=f"lifeboat/apps/{pvc}/config")  # type: ignore[attr-defined]
    keys = store.keys(f"lifeboat/apps/{pvc}/")
    assert keys and all("/keys/" in k for k in keys), keys
    return keys


def _probe(age: float) -> StoreProbe:
    return StoreProbe(ACCESS_KEY, SECRET_KEY, timeout=5, half_init_age=age)


def _settings(store: Store, tmp_path: Path, **extra: str) -> SidecarSettings:
    return load_sidecar_settings(
        store.env(
            LIFEBOAT_STATE_DIR=str(tmp_path / "state"),
            RESTIC_CACHE_DIR=str(tmp_path / "cache"),
            **extra,
        )
    )


def test_a_half_finished_init_older_than_the_bound_is_finished_by_the_next_backup(
    seaweed: Store, tmp_path: Path
) -> None:
    leftovers = _half_init(seaweed, "data")
    time.sleep(2.5)  # older than the bound below (S3 LastModified has one-second resolution)
    volume = tmp_path / "volume"
    make_volume(volume, seed=7)
    settings = _settings(seaweed, tmp_path)
    specs = parse_volumes([f"data={volume}"])
    (result,) = backup_volumes(settings, specs, _probe(1.0))
    assert result.result == "success", result.message
    assert not set(leftovers) & set(seaweed.keys("lifeboat/apps/data/")), "the orphan key was removed"
    restic(seaweed, seaweed.repository("data"), "check")
    assert len(json.loads(restic(seaweed, seaweed.repository("data"), "key", "list", "--json").stdout)) == 1


def test_a_young_half_finished_init_is_left_alone_and_waited_for(seaweed: Store, tmp_path: Path) -> None:
    """A concurrent init in progress looks the same as an abandoned one until the bound has passed."""
    leftovers = _half_init(seaweed, "data")
    settings = _settings(seaweed, tmp_path)
    repository = for_volume(settings, "data")
    started = time.monotonic()
    initialized, code, text = ensure_repository(
        _probe(600.0), restic_for(settings, repository), repository, patience=3.0
    )
    assert (initialized, code) == (False, EX_TEMPFAIL), text
    assert time.monotonic() - started >= 3.0, "it waited for the other process first"
    assert sorted(seaweed.keys("lifeboat/apps/data/")) == sorted(leftovers)


def test_the_restore_of_an_empty_volume_over_a_half_finished_init_starts_fresh(
    seaweed: Store, tmp_path: Path
) -> None:
    _half_init(seaweed, "data")
    time.sleep(2.5)
    volume = tmp_path / "volume"
    (volume / "lost+found").mkdir(parents=True)
    settings = _settings(seaweed, tmp_path, LIFEBOAT_RESTORE_DEADLINE="3")
    assert _probe(1.0).probe(for_volume(settings, "data"))[0] is StoreState.HALF_INITIALISED
    specs = parse_volumes([f"data={volume}"])
    (outcome,) = restore_volumes(settings, specs, _probe(1.0), lambda r: restic_for(settings, r))
    assert (outcome.outcome, outcome.exit_code) == ("fresh", EX_OK), outcome.reason
    assert sorted(p.name for p in volume.iterdir()) == ["lost+found"]


def test_the_restore_over_snapshots_without_a_config_still_retries(seaweed: Store, tmp_path: Path) -> None:
    """Objects besides keys/ (here snapshots/) without a config are never a positive "no snapshot"."""
    source = tmp_path / "source"
    make_volume(source, seed=3)
    assert lifeboat("backup", seaweed, {"data": source}, tmp_path / "first").code == EX_OK
    client = seaweed.server.client()
    for key in seaweed.keys("lifeboat/apps/data/"):
        if not key.split("lifeboat/apps/data/")[1].startswith(("keys/", "snapshots/")):
            client.delete_object(Bucket=seaweed.bucket, Key=key)  # type: ignore[attr-defined]
    time.sleep(2.5)
    settings = _settings(seaweed, tmp_path, LIFEBOAT_RESTORE_DEADLINE="2")
    assert _probe(1.0).probe(for_volume(settings, "data"))[0] is StoreState.INCONSISTENT
    volume = tmp_path / "volume"
    volume.mkdir()
    specs = parse_volumes([f"data={volume}"])
    (outcome,) = restore_volumes(settings, specs, _probe(1.0), lambda r: restic_for(settings, r))
    assert outcome.exit_code == EX_TEMPFAIL, outcome.reason
    assert "inconsistent" in outcome.reason
    assert list(volume.iterdir()) == []

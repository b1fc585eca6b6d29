"""The restic edge on real restic and SeaweedFS: typed results, typed failures, bounded calls,
clean cancellation, and secrets kept out of every process listing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from sidecar.edges.restic import Failure, Restic, ResticError
from tests.conftest import PASSWORD, RESTIC, SECRET_KEY, Store
from tests.support.lifeboat_cli import LIFEBOAT

pytestmark = pytest.mark.s3


def _restic(store: Store, pvc: str = "data", **kw: object) -> Restic:
    env = store.restic_env(store.repository(pvc))
    secrets = {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD")}
    return Restic(repository=store.repository(pvc), env=secrets, binary=RESTIC, **kw)  # type: ignore[arg-type]


def _random_tree(root: Path, megabytes: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(megabytes // 4):
        (root / f"blob-{i}").write_bytes(os.urandom(4 * 1024 * 1024))
    return root


def test_a_missing_repository_is_a_typed_failure_not_a_message(seaweed: Store) -> None:
    with pytest.raises(ResticError) as error:
        _restic(seaweed).snapshots()
    assert error.value.failure is Failure.NO_REPOSITORY
    assert error.value.exit_code == 10


def test_init_backup_snapshots_and_restore_return_typed_summaries(seaweed: Store, tmp_path: Path) -> None:
    restic = _restic(seaweed)
    assert len(restic.init()) == 64
    source = tmp_path / "src"
    source.mkdir()
    (source / "a").write_text("hello\n")
    summary = restic.backup(source, host="lifeboat", tags=["pvc=data"])
    assert summary.snapshot_id and summary.files_new == 1 and summary.total_bytes == 6
    (snap,) = restic.snapshots()
    assert snap.id == summary.snapshot_id and snap.tag_value("pvc") == "data" and snap.hostname == "lifeboat"
    assert snap.paths == (str(source),)
    restored = restic.restore(snap.id, tmp_path / "out")
    assert (restored.files_restored, (tmp_path / "out" / "a").read_text()) == (1, "hello\n")


def test_a_wrong_password_is_a_typed_failure(seaweed: Store, tmp_path: Path) -> None:
    _restic(seaweed).init()
    wrong = _restic(seaweed)
    wrong.env = {**wrong.env, "RESTIC_PASSWORD": "not-it"}
    with pytest.raises(ResticError) as error:
        wrong.snapshots()
    assert (error.value.failure, error.value.exit_code) == (Failure.WRONG_PASSWORD, 12)


def test_a_call_past_its_bound_is_stopped_cleanly_without_a_lock_or_snapshot(
    seaweed: Store, tmp_path: Path
) -> None:
    restic = _restic(seaweed, timeout=1.0)
    restic.init()
    source = _random_tree(tmp_path / "src", 160)
    with pytest.raises(ResticError) as error:
        restic.backup(source, host="lifeboat")
    assert error.value.failure is Failure.TIMEOUT
    assert _restic(seaweed).snapshots() == []
    assert _restic(seaweed).locks() == []


def test_cancel_token_interrupts_restic_with_sigint_and_leaves_no_lock(
    seaweed: Store, tmp_path: Path
) -> None:
    restic = _restic(seaweed)
    restic.init()
    source = _random_tree(tmp_path / "src", 160)
    threading.Timer(0.8, restic.cancel.set).start()
    with pytest.raises(ResticError) as error:
        restic.backup(source, host="lifeboat")
    assert error.value.failure is Failure.INTERRUPTED
    assert error.value.exit_code == 130
    assert _restic(seaweed).locks() == []
    assert _restic(seaweed).snapshots() == []


def test_sigterm_to_lifeboat_backup_becomes_a_clean_restic_cancel_and_secrets_stay_out_of_argv(
    seaweed: Store, tmp_path: Path
) -> None:
    _restic(seaweed).init()
    source = _random_tree(tmp_path / "src", 200)
    env = seaweed.env(RESTIC_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [LIFEBOAT, "backup", "--volume", f"data={source}"], env=env, stderr=subprocess.PIPE, text=True
    )
    listings: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("restic" in c and "backup" in c for c in listings):
        # this backup's own processes only: other tests run restic backups in parallel
        with contextlib.suppress(psutil.NoSuchProcess):
            for process in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    listings.append(" ".join(process.cmdline()))
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert listings, "restic was never seen running"
    for cmdline in listings:
        assert SECRET_KEY not in cmdline and PASSWORD not in cmdline
    assert '"failure": "interrupted"' in stderr
    assert _restic(seaweed).locks() == []
    assert _restic(seaweed).snapshots() == []

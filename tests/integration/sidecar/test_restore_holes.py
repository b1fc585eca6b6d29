"""Restore holes of issue 9: per-volume handover across reruns, non-root restores, extended
attributes the target refuses, setgid bits. Real restic, real SeaweedFS, real processes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.devtree import describe, make_volume, top_level
from tests.conftest import Store
from tests.support.lifeboat_cli import LIFEBOAT, Run, lifeboat

pytestmark = pytest.mark.s3

NOBODY = 65534


def _backed_up(store: Store, source: Path, tmp: Path, pvc: str = "data") -> None:
    run = lifeboat("backup", store, {pvc: source}, tmp / f"backup-{pvc}")
    assert run.code == 0, run.stderr


# -- item 9: each volume's outcome is handed over on its own ---------------------------------------


def test_a_volume_restored_before_another_failed_is_handed_over_as_restored_on_the_rerun(
    seaweed: Store, tmp_path: Path
) -> None:
    db_source, logs_source = tmp_path / "db-source", tmp_path / "logs-source"
    make_volume(db_source, seed=1)
    make_volume(logs_source, seed=2)
    _backed_up(seaweed, db_source, tmp_path, "db")
    _backed_up(seaweed, logs_source, tmp_path, "logs")
    db, logs = tmp_path / "db", tmp_path / "logs"
    db.mkdir()
    logs.mkdir()
    pod = tmp_path / "pod"  # one pod: the state directory (an emptyDir) is shared by both runs
    broken = f"logs=s3:{seaweed.server.endpoint}/no-such-bucket/lifeboat/apps/logs"

    first = lifeboat(
        "restore",
        seaweed,
        {"db": db, "logs": logs},
        pod,
        "--repository",
        broken,
        env={"LIFEBOAT_RESTORE_DEADLINE": "2"},
    )
    assert first.code == 75, first.stderr
    assert first.outcome("db")["outcome"] == "restored"
    assert describe(db) == describe(db_source)
    assert top_level(logs) == []
    handed = first.handover()["volumes"]
    assert handed["db"]["outcome"] == "restored", "kept although the process exits non-zero"
    assert "logs" not in handed
    snapshot = handed["db"]["snapshot"]

    second = lifeboat("restore", seaweed, {"db": db, "logs": logs}, pod)  # the override fixed
    assert second.code == 0, second.stderr
    handed = second.handover()["volumes"]
    assert handed["db"]["outcome"] == "restored", "not skipped: its history is still this PVC's"
    assert handed["db"]["snapshot"] == snapshot
    assert handed["logs"]["outcome"] == "restored"
    assert second.outcome("db")["outcome"] == "restored"
    assert describe(logs) == describe(logs_source)


def test_a_volume_with_data_before_any_restore_of_this_pod_is_still_handed_over_as_skipped(
    seaweed: Store, tmp_path: Path
) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "PG_VERSION").write_text("16\n")
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path)
    assert run.code == 0, run.stderr
    assert run.handover()["volumes"]["data"]["outcome"] == "skipped"


# -- item 8: a restore that does not run as root -------------------------------------------------


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory uid 65534 can reach (pytest's own tmp_path is 0700, root's)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop to another uid")
    path = Path(tempfile.mkdtemp(prefix="lifeboat-nonroot-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def _restore_as_nobody(store: Store, volume: Path, tmp: Path) -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    os.chown(tmp, NOBODY, NOBODY)
    env = store.env(
        LIFEBOAT_STATE_DIR=str(tmp / "state"),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(tmp / "term"),
        RESTIC_CACHE_DIR=str(tmp / "cache"),
        HOME=str(tmp),
    )
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    proc = subprocess.run(
        [*drop, LIFEBOAT, "restore", "--volume", f"data={volume}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    term = tmp / "term"
    shown = term.read_text() if term.exists() else ""
    return Run(proc.returncode, proc.stdout, proc.stderr, shown, tmp / "state")


def test_a_non_root_restore_moves_read_only_directories_into_place_and_keeps_their_mode(
    seaweed: Store, open_tmp: Path
) -> None:
    source = open_tmp / "source"
    make_volume(source)
    (source / "ro" / "inner").mkdir(parents=True)
    (source / "ro" / "inner" / "file").write_text("read-only tree\n")
    os.chmod(source / "ro" / "inner", 0o555)
    os.chmod(source / "ro", 0o555)
    _backed_up(seaweed, source, open_tmp)
    volume = open_tmp / "vol"
    volume.mkdir()
    os.chown(volume, NOBODY, NOBODY)

    run = _restore_as_nobody(seaweed, volume, open_tmp / "run")
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "restored"
    assert ".lifeboat-restore" not in top_level(volume)
    assert stat.S_IMODE(os.lstat(volume / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(volume / "ro" / "inner").st_mode) == 0o555
    assert (volume / "ro" / "inner" / "file").read_text() == "read-only tree\n"
    assert sorted(os.listdir(volume)) == sorted(os.listdir(source))


def test_a_rerun_after_a_crash_mid_rename_puts_back_the_mode_of_a_lent_directory(tmp_path: Path) -> None:
    from sidecar.edges import volume as vol

    volume = tmp_path / "vol"
    volume.mkdir()
    tree = vol.prepare(volume)
    (tree / "ro").mkdir()
    (tree / "moved").mkdir()
    vol.commit(volume, {"snapshot": "x"})
    # the crash: both modes recorded and lent; "moved" renamed, "ro" not yet
    (vol.work_dir(volume) / "modes.json").write_text('{"ro": 365, "moved": 365}')
    os.chmod(tree / "ro", 0o755)
    os.rename(tree / "moved", volume / "moved")
    vol.move_in(volume)
    assert stat.S_IMODE(os.lstat(volume / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(volume / "moved").st_mode) == 0o555
    assert top_level(volume) == ["moved", "ro"]


def test_a_volume_root_another_uid_owns_with_data_is_skipped_by_a_non_root_restore(
    seaweed: Store, open_tmp: Path
) -> None:
    volume = open_tmp / "pgdata"
    for name in ("base", "global", "pg_wal"):
        (volume / name).mkdir(parents=True)
    (volume / "PG_VERSION").write_text("16\n")
    os.chmod(volume, 0o700)  # root's, like a postgres data directory owned by uid 999
    before = describe(volume)
    run = _restore_as_nobody(seaweed, volume, open_tmp / "run")
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "skipped"
    assert describe(volume) == before


def test_an_unreadable_volume_root_that_may_be_empty_fails_with_77_naming_the_fix(
    seaweed: Store, open_tmp: Path
) -> None:
    volume = open_tmp / "vol"
    volume.mkdir()
    (volume / "file").write_text("no subdirectory: the link count cannot tell\n")
    os.chmod(volume, 0o700)
    run = _restore_as_nobody(seaweed, volume, open_tmp / "run")
    assert run.code == 77, run.stderr
    assert "runAsUser" in run.termination
    assert sorted(os.listdir(volume)) == ["file"]


# -- item 10: extended attributes and setgid -----------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs (it holds user xattrs far larger than ext4 allows); needs root."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_an_extended_attribute_the_target_refuses_does_not_fail_the_restore_and_is_reported(
    seaweed: Store, tmpfs: Path, tmp_path: Path
) -> None:
    source = tmpfs / "source"
    make_volume(source)
    big = source / "big-xattr"
    big.write_text("content\n")
    os.setxattr(big, "user.big", b"x" * 30000)  # fine on tmpfs, too large for ext4 (ENOSPC)
    _backed_up(seaweed, source, tmp_path)
    volume = tmp_path / "vol"  # ext4 (or whatever tmp_path is): refuses the 30 kB attribute
    volume.mkdir()
    probe = volume / "probe"
    probe.write_text("")
    try:
        os.setxattr(probe, "user.big", b"x" * 30000)
        pytest.skip("this file system takes 30 kB extended attributes")
    except OSError:
        pass
    probe.unlink()

    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path / "run")
    assert run.code == 0, run.stderr
    outcome = run.outcome("data")
    assert outcome["outcome"] == "restored"
    assert len(outcome["warnings"]) == 1 and "user.big" in outcome["warnings"][0]
    assert (volume / "big-xattr").read_text() == "content\n"
    assert "1 warnings" in run.termination
    assert sorted(os.listdir(volume)) == sorted(os.listdir(source))


def test_setgid_on_a_file_and_a_directory_comes_back_when_the_restore_runs_as_root(
    seaweed: Store, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_CHOWN, CAP_FSETID)")
    source = tmp_path / "source"
    make_volume(source)
    shared = source / "shared"
    shared.mkdir()
    tool = shared / "tool"
    tool.write_text("#!/bin/sh\n")
    for path, mode in ((shared, 0o2775), (tool, 0o2755)):
        os.chown(path, 0, 1234)  # a group the restoring process is not in
        os.chmod(path, mode)
    _backed_up(seaweed, source, tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path / "run")
    assert run.code == 0, run.stderr
    for name, mode in (("shared", 0o2775), ("shared/tool", 0o2755)):
        info = os.lstat(volume / name)
        assert stat.S_IMODE(info.st_mode) == mode, name
        assert info.st_gid == 1234

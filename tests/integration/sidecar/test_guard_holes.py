"""Issue 9's holes in the guard rails, on real restic + SeaweedFS: a volume that once started fresh,
a history VolSync wrote, and a backup restic could not read completely."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.backup.guarded import GuardedBackup
from sidecar.daemon.main import VolumeWorker
from sidecar.settings import VolumeSpec
from tests.conftest import RESTIC, Store
from tests.support import lifeboat_cli
from tests.support.sidecar import fill, make, metric, restic, snapshots

pytestmark = pytest.mark.s3

NOBODY = 65534


def wipe(path: Path) -> None:
    """What an app that deletes everything leaves on an ext4 volume: lost+found, maybe not empty."""
    for child in path.iterdir():
        if child.name == "lost+found":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    (path / "lost+found").mkdir(exist_ok=True)
    (path / "lost+found" / "#12").write_bytes(b"fsck leftovers" * 100)


def reason(result: GuardedBackup) -> str | None:
    verdict = result.verdict
    return verdict.reason.value if verdict and verdict.reason else None


# -- item 1: a pod that started fresh keeps its guard rails --------------------------------------


def test_a_fresh_volume_that_its_app_wiped_after_weeks_of_backups_is_refused(
    seaweed: Store, tmp_path: Path
) -> None:
    path = fill(tmp_path / "vol")
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    worker = make(seaweed, tmp_path, volume, "fresh").workers[0]
    for week in range(3):
        (path / f"week{week}").write_bytes(os.urandom(2048))
        assert worker.backup().result == "success"
    history = snapshots(seaweed, "data")
    wipe(path)
    same_process = worker.backup()
    # the sidecar container restarts: the handover (an emptyDir) still says `fresh`
    restarted = make(seaweed, tmp_path, volume, "fresh").workers[0].backup()
    assert (same_process.result, reason(same_process)) == ("blocked", "empty")
    assert (restarted.result, reason(restarted)) == ("blocked", "empty")
    assert snapshots(seaweed, "data") == history  # nothing empty became "latest"


def test_a_fresh_volume_whose_app_deleted_most_of_its_data_is_refused(seaweed: Store, tmp_path: Path) -> None:
    path = fill(tmp_path / "vol", files=20)
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    worker = make(seaweed, tmp_path, volume, "fresh").workers[0]
    assert worker.backup().result == "success"
    assert worker.backup().result == "success"
    for victim in sorted(path.glob("dir*/*.bin"))[:15]:
        victim.unlink()
    same_process = worker.backup()
    restarted = make(seaweed, tmp_path, volume, "fresh").workers[0].backup()
    assert (same_process.result, reason(same_process)) == ("blocked", "shrunk")
    assert (restarted.result, reason(restarted)) == ("blocked", "shrunk")


def test_a_fresh_volume_without_a_pvc_uid_is_guarded_after_its_own_first_backup(
    seaweed: Store, tmp_path: Path
) -> None:
    path = fill(tmp_path / "vol")
    worker = make(seaweed, tmp_path, VolumeSpec("data", path), "fresh").workers[0]
    assert worker.backup().result == "success"
    wipe(path)
    result = worker.backup()
    assert (result.result, reason(result)) == ("blocked", "empty")


def test_every_sidecar_on_a_fresh_volumes_repository_refuses_it_empty(seaweed: Store, tmp_path: Path) -> None:
    """An RWX volume: two pods, both started fresh, one PVC UID. The empty snapshot never lands."""
    path = fill(tmp_path / "vol")
    volume = VolumeSpec("data", path, pvc_uid="uid-rwx")
    first = make(seaweed, tmp_path / "a", volume, "fresh").workers[0]
    second = make(seaweed, tmp_path / "b", volume, "fresh").workers[0]
    assert first.backup().result == "success"
    wipe(path)
    results = [second.backup(), first.backup()]
    assert [(r.result, reason(r)) for r in results] == [("blocked", "empty")] * 2
    assert len(snapshots(seaweed, "data")) == 1


# -- item 14: a history VolSync wrote is history -------------------------------------------------


def volsync_repository(store: Store, tmp_path: Path, files: int = 20) -> str:
    """A repository made the VolSync way: `cd /data; restic backup --host volsync .`, no tags."""
    data = fill(tmp_path / "volsync-data", files=files)
    repository = f"s3:{store.server.endpoint}/{store.bucket}/volsync/myapp"
    lifeboat_cli.restic(store, repository, "init")
    lifeboat_cli.restic(store, repository, "backup", "--host", "volsync", ".", cwd=data)
    (snap,) = lifeboat_cli.snapshots(store, repository)
    assert snap["hostname"] == "volsync" and not snap.get("tags")
    return repository


@pytest.mark.parametrize("outcome", ["fresh", "skipped"])
def test_an_empty_volume_is_refused_over_a_volsync_history(
    seaweed: Store, tmp_path: Path, outcome: str
) -> None:
    repository = volsync_repository(seaweed, tmp_path)
    path = tmp_path / "vol"
    (path / "lost+found").mkdir(parents=True)
    volume = VolumeSpec("data", path, pvc_uid="uid-1", repository=repository)
    result = make(seaweed, tmp_path, volume, outcome).workers[0].backup()
    assert (result.result, reason(result)) == ("blocked", "empty"), result.message
    assert "20 files" in result.message
    assert len(lifeboat_cli.snapshots(seaweed, repository)) == 1


def test_a_fresh_volume_far_smaller_than_a_volsync_snapshot_is_refused(
    seaweed: Store, tmp_path: Path
) -> None:
    repository = volsync_repository(seaweed, tmp_path, files=20)
    volume = VolumeSpec("data", fill(tmp_path / "vol", files=2), pvc_uid="uid-1", repository=repository)
    result = make(seaweed, tmp_path, volume, "fresh").workers[0].backup()
    assert (result.result, reason(result)) == ("blocked", "shrunk"), result.message
    adopted = make(seaweed, tmp_path / "adopt", volume, "fresh", LIFEBOAT_ADOPT="true").workers[0].backup()
    assert adopted.result == "success", adopted.message


def test_a_fresh_volume_as_large_as_a_volsync_snapshot_continues_its_history(
    seaweed: Store, tmp_path: Path
) -> None:
    repository = volsync_repository(seaweed, tmp_path)
    volume = VolumeSpec("data", fill(tmp_path / "vol"), pvc_uid="uid-1", repository=repository)
    result = make(seaweed, tmp_path, volume, "fresh").workers[0].backup()
    assert result.result == "success", result.message


# -- item 4: an incomplete backup is not a success -----------------------------------------------


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the unprivileged restic can reach (pytest's tmp_path is root-only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and util-linux setpriv to run restic as another user")
    path = Path(tempfile.mkdtemp(prefix="lifeboat-nobody-"))
    path.chmod(0o755)
    (path / "cache").mkdir(mode=0o777)
    (path / "cache").chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(worker: VolumeWorker, shared: Path) -> None:
    """The worker's restic now runs as uid 65534, like a sidecar that is not root."""
    script = shared / "restic-as-nobody"
    script.write_text(
        "#!/bin/sh\n"
        f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
        f'env RESTIC_CACHE_DIR={shared}/cache {RESTIC} "$@"\n'
    )
    script.chmod(0o755)
    worker.restic.binary = str(script)


def readable_volume(shared: Path) -> Path:
    path = fill(shared / "vol")
    for item in [path, *path.rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)
    (path / "lost+found").chmod(0o700)  # as mkfs.ext4 leaves it: root's alone
    return path


def test_an_unreadable_file_makes_the_backup_incomplete_not_a_success(
    seaweed: Store, tmp_path: Path, shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = readable_volume(shared)
    secret = path / "dir0" / "secret.db"
    secret.write_bytes(b"only root reads this")
    secret.chmod(0o600)
    volume = VolumeSpec("data", path, pvc_uid="uid-1")
    sidecar = make(seaweed, tmp_path, volume, "fresh", LIFEBOAT_RETENTION="last=1")
    worker = sidecar.workers[0]
    as_nobody(worker, shared)
    with caplog.at_level(logging.INFO):
        result = worker.backup()
    assert result.result == "incomplete", result.message
    assert not result.succeeded
    assert result.unreadable == 1 and result.summary is not None
    assert result.summary.unreadable == (str(secret),)
    assert len(snapshots(seaweed, "data")) == 1  # restic wrote it, without the secret
    (incomplete,) = [r for r in caplog.records if getattr(r, "event", "") == "backup.incomplete"]
    assert incomplete.fields["unreadable"] == 1  # type: ignore[attr-defined]
    assert incomplete.fields["paths"] == [str(secret)]  # type: ignore[attr-defined]
    (finished,) = [r for r in caplog.records if getattr(r, "event", "") == "backup.finished"]
    assert finished.fields["result"] == "incomplete" and finished.fields["unreadable"] == 1  # type: ignore[attr-defined]
    text = sidecar.metrics.render().decode()
    assert metric(text, "lifeboat_backups_total", result="incomplete") == 1.0
    assert not metric(text, "lifeboat_backup_last_success_timestamp_seconds")
    assert metric(text, "lifeboat_maintenance_total", operation="forget") is None  # no retention
    # the next complete backup is a success again, and only then does retention run
    secret.chmod(0o644)
    again = worker.backup()
    assert again.result == "success", again.message
    text = sidecar.metrics.render().decode()
    assert metric(text, "lifeboat_backup_last_success_timestamp_seconds")
    assert metric(text, "lifeboat_maintenance_total", operation="forget", result="success") == 1.0
    assert len(snapshots(seaweed, "data")) == 1


def test_an_unreadable_lost_and_found_alone_does_not_make_a_backup_incomplete(
    seaweed: Store, tmp_path: Path, shared: Path
) -> None:
    path = readable_volume(shared)
    worker = make(seaweed, tmp_path, VolumeSpec("data", path, pvc_uid="uid-1"), "fresh").workers[0]
    as_nobody(worker, shared)
    result = worker.backup()
    assert result.result == "success", result.message
    assert result.succeeded and result.unreadable == 0
    listing = restic(seaweed, "data", "ls", "latest", "--no-lock").stdout
    assert "/dir0" in listing and "lost+found" not in listing  # excluded, so it hides nothing


def test_a_lost_and_found_deeper_in_the_volume_is_backed_up(seaweed: Store, tmp_path: Path) -> None:
    path = fill(tmp_path / "vol")
    (path / "dir0" / "lost+found").mkdir()
    (path / "dir0" / "lost+found" / "kept").write_text("the app's own")
    worker = make(seaweed, tmp_path, VolumeSpec("data", path, pvc_uid="uid-1"), "fresh").workers[0]
    assert worker.backup().result == "success"
    listing = restic(seaweed, "data", "ls", "latest", "--no-lock").stdout.splitlines()
    assert "/dir0/lost+found/kept" in listing
    assert "/lost+found" not in listing

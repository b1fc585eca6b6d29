"""The restore contract, row by row, on real restic and real S3 (SeaweedFS and rclone).

Each test is one row of the table in docs/restore.md: what the volume holds, what the store says,
and what `lifeboat restore` must do and exit with.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devtools.devstore import free_port
from devtools.devtree import describe, make_volume, top_level
from sidecar.edges.restic import parse_time
from tests.conftest import Store
from tests.support.lifeboat_cli import lifeboat, restic, snapshots
from tests.support.restores import restore_empty_volume

pytestmark = pytest.mark.s3


def _backed_up(store: Store, tmp_path: Path, pvc: str = "data", seed: int = 0) -> Path:
    """A source volume with content, backed up once by `lifeboat backup`; returns the source."""
    source = tmp_path / f"source-{seed}"
    make_volume(source, seed=seed)
    run = lifeboat("backup", store, {pvc: source}, tmp_path / f"backup-{seed}")
    assert run.code == 0, run.stderr
    return source


def test_volume_with_data_is_skipped_without_asking_the_store(s3: Store, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "PG_VERSION").write_text("16\n")
    before = describe(volume)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: asking the store would fail
    run = lifeboat("restore", s3, {"data": volume}, tmp_path, env={"LIFEBOAT_S3_ENDPOINT": dead})
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "skipped"
    assert describe(volume) == before
    assert "data: skipped" in run.termination


def test_empty_volume_with_no_repository_starts_fresh(s3: Store, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    (volume / "lost+found").mkdir(parents=True)
    run = lifeboat("restore", s3, {"data": volume}, tmp_path)
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "fresh"
    assert top_level(volume) == ["lost+found"]
    assert s3.keys("lifeboat/") == [], "the restore path must never create a repository"
    assert run.handover()["volumes"]["data"]["outcome"] == "fresh"


def test_empty_volume_with_an_empty_repository_starts_fresh(s3: Store, tmp_path: Path) -> None:
    restic(s3, s3.repository("data"), "init")
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", s3, {"data": volume}, tmp_path)
    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "fresh"
    assert top_level(volume) == []


def test_empty_volume_with_snapshot_is_restored(s3: Store, tmp_path: Path) -> None:
    source = _backed_up(s3, tmp_path)
    volume = tmp_path / "vol"
    (volume / "lost+found").mkdir(parents=True)
    run = lifeboat("restore", s3, {"data": volume}, tmp_path)
    assert run.code == 0, run.stderr
    outcome = run.outcome("data")
    assert outcome["outcome"] == "restored"
    assert describe(volume) == describe(source)
    assert ".lifeboat-restore" not in top_level(volume)
    assert run.termination.startswith(f"data: restored {outcome['snapshot'][:8]}")
    assert run.handover()["volumes"]["data"]["snapshot"] == outcome["snapshot"]


def test_the_latest_of_several_snapshots_is_restored(seaweed: Store, tmp_path: Path) -> None:
    _backed_up(seaweed, tmp_path, seed=1)
    newest = _backed_up(seaweed, tmp_path, seed=2)
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path)
    assert run.code == 0, run.stderr
    assert describe(volume) == describe(newest)


def test_a_pinned_snapshot_id_is_restored_instead_of_the_latest(seaweed: Store, tmp_path: Path) -> None:
    older = _backed_up(seaweed, tmp_path, seed=1)
    _backed_up(seaweed, tmp_path, seed=2)
    first = snapshots(seaweed, seaweed.repository("data"))[0]
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, "--snapshot", f"data={first['short_id']}")
    assert run.code == 0, run.stderr
    assert run.outcome("data")["snapshot"] == first["id"]
    assert describe(volume) == describe(older)


def test_a_pinned_time_restores_the_latest_snapshot_at_or_before_it(seaweed: Store, tmp_path: Path) -> None:
    older = _backed_up(seaweed, tmp_path, seed=1)
    time.sleep(1.1)
    _backed_up(seaweed, tmp_path, seed=2)
    first, second = snapshots(seaweed, seaweed.repository("data"))
    t1, t2 = parse_time(first["time"]), parse_time(second["time"])
    between = (t1 + (t2 - t1) / 2).isoformat()
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, env={"LIFEBOAT_RESTORE_SNAPSHOT": between})
    assert run.code == 0, run.stderr
    assert run.outcome("data")["snapshot"] == first["id"]
    assert describe(volume) == describe(older)


def test_a_pin_that_matches_nothing_fails_with_a_config_error_and_never_starts_fresh(
    seaweed: Store, tmp_path: Path
) -> None:
    _backed_up(seaweed, tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, "--snapshot", "data=deadbeef")
    assert run.code == 78
    assert "lifeboat.dev/restore-snapshot" in run.termination
    assert top_level(volume) == []


def test_unreachable_store_is_retried_until_the_deadline_then_exits_75(s3: Store, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    volume, run = restore_empty_volume(s3, tmp_path, LIFEBOAT_S3_ENDPOINT=dead, LIFEBOAT_RESTORE_DEADLINE="6")
    assert run.code == 75
    assert len(run.events("restore.retry")) >= 2
    assert top_level(volume) == []
    assert not (run.state_dir / "restore.json").exists(), "no outcome may be handed over"


def test_missing_bucket_is_retried_like_an_outage_never_fresh(s3: Store, tmp_path: Path) -> None:
    volume, run = restore_empty_volume(
        s3, tmp_path, LIFEBOAT_S3_BUCKET="no-such-bucket", LIFEBOAT_RESTORE_DEADLINE="2"
    )
    assert run.code == 75
    assert top_level(volume) == []
    assert "bucket no-such-bucket does not exist: create it" in run.events("restore.retry")[0]["reason"]


def test_refused_credentials_exit_77(s3: Store, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", s3, {"data": volume}, tmp_path, env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert run.code == 77
    assert "not-the-secret" not in run.stderr + run.termination


def test_wrong_restic_password_exits_77_and_leaves_the_volume_empty(s3: Store, tmp_path: Path) -> None:
    _backed_up(s3, tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", s3, {"data": volume}, tmp_path, env={"RESTIC_PASSWORD": "wrong-password-1"})
    assert run.code == 77
    assert "password" in run.termination
    assert "wrong-password-1" not in run.stderr + run.termination
    assert top_level(volume) == []


def test_objects_without_a_repository_config_are_not_taken_as_no_repository(
    seaweed: Store, tmp_path: Path
) -> None:
    seaweed.server.client().put_object(  # type: ignore[attr-defined]
        Bucket=seaweed.bucket, Key="lifeboat/apps/data/keys/0123", Body=b"half an init"
    )
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, env={"LIFEBOAT_RESTORE_DEADLINE": "1"})
    assert run.code == 75
    assert "inconsistent" in run.events("restore.retry")[0]["reason"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LIFEBOAT_S3_ENDPOINT", "ftp://example", "LIFEBOAT_S3_ENDPOINT"),
        ("LIFEBOAT_S3_BUCKET", "", "LIFEBOAT_S3_BUCKET"),
        ("LIFEBOAT_NAMESPACE", "Not_A_Namespace", "LIFEBOAT_NAMESPACE"),
        ("LIFEBOAT_RESTORE_DEADLINE", "soon", "LIFEBOAT_RESTORE_DEADLINE"),
        ("RESTIC_PASSWORD", "", "RESTIC_PASSWORD"),
    ],
)
def test_invalid_configuration_exits_78_naming_the_variable(
    seaweed: Store, tmp_path: Path, variable: str, value: str, named: str
) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path, env={variable: value})
    assert run.code == 78, run.stderr
    assert named in run.termination
    assert named in run.events("config.invalid")[0]["error"]


def test_missing_configuration_names_the_variable_and_the_fix(seaweed: Store, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    env = seaweed.env(LIFEBOAT_TERMINATION_MESSAGE_PATH=str(tmp_path / "term"))
    del env["LIFEBOAT_NAMESPACE"]
    import subprocess
    import sys

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lifeboat"), "restore", "--volume", f"data={volume}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 78
    assert "LIFEBOAT_NAMESPACE" in proc.stderr and "downward API" in proc.stderr


def test_bad_volume_arguments_exit_78(seaweed: Store, tmp_path: Path) -> None:
    run = lifeboat("restore", seaweed, {}, tmp_path, "--volume", "data")
    assert run.code == 78
    assert "PVC=VALUE" in run.events("config.invalid")[0]["error"]


def test_each_volume_of_a_pod_gets_its_own_row(seaweed: Store, tmp_path: Path) -> None:
    source = _backed_up(seaweed, tmp_path, pvc="db")
    db, cache, used = tmp_path / "db", tmp_path / "cache", tmp_path / "used"
    for path in (db, cache, used):
        path.mkdir()
    (used / "file").write_text("x")
    run = lifeboat("restore", seaweed, {"db": db, "cache": cache, "used": used}, tmp_path)
    assert run.code == 0, run.stderr
    assert [run.outcome(p)["outcome"] for p in ("db", "cache", "used")] == ["restored", "fresh", "skipped"]
    assert describe(db) == describe(source)
    assert run.termination.count(";") == 2


def test_a_secret_never_appears_in_logs_or_the_termination_message(seaweed: Store, tmp_path: Path) -> None:
    _backed_up(seaweed, tmp_path)
    volume = tmp_path / "vol"
    volume.mkdir()
    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path)
    env = seaweed.env()
    for secret in (env["AWS_SECRET_ACCESS_KEY"], env["RESTIC_PASSWORD"], env["AWS_ACCESS_KEY_ID"]):
        assert secret not in run.stderr + run.stdout + run.termination
    assert os.listdir(volume)

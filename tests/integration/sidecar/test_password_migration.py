"""The master-password newline trap (issue 14 item 2), on real restic and real S3.

Lifeboat 0.1.0 derived namespace passwords from the source Secret's bytes as they were, so a master
created with `--from-file` (trailing newline) gave other passwords than the same master typed with
`--from-literal`. The master is now read one way everywhere (`canonical_master`); repositories
created the old way still open: the pod tries the legacy passwords its Secret carries, and the one
that opens the repository adds the canonical password as a restic key.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools.devtree import describe, make_volume, top_level
from injector.credentials import canonical_master, mirrored_data, namespace_password
from tests.conftest import RESTIC, Store
from tests.support.lifeboat_cli import lifeboat

pytestmark = pytest.mark.s3

MASTER_FROM_FILE = "correct horse battery staple\n"  # what `--from-file` of an editor's file holds
MASTER_FROM_LITERAL = "correct horse battery staple"  # the same master, recreated by hand


def _secret(store: Store, raw_master: str) -> dict[str, str]:
    """The env a pod in namespace `apps` gets from the mirrored Secret the injector writes today."""
    source = {
        "LIFEBOAT_S3_ENDPOINT": store.server.endpoint,
        "LIFEBOAT_S3_BUCKET": store.bucket,
        "LIFEBOAT_S3_PREFIX": "lifeboat",
        "AWS_ACCESS_KEY_ID": store.env()["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": store.env()["AWS_SECRET_ACCESS_KEY"],
        "RESTIC_MASTER_PASSWORD": raw_master,
    }
    return mirrored_data(source, "apps")


def _restic(
    store: Store, password: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**store.restic_env(store.repository("data")), "RESTIC_PASSWORD": password}
    return subprocess.run([RESTIC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _legacy_repository(store: Store, tmp_path: Path) -> Path:
    """A repository with one snapshot, created with the password 0.1.0 derived from a --from-file master."""
    legacy = namespace_password(MASTER_FROM_FILE, "apps")
    assert _restic(store, legacy, "init").returncode == 0
    source = tmp_path / "source"
    make_volume(source, seed=3)
    backup = _restic(store, legacy, "backup", ".", "--host", "legacy", cwd=source)
    assert backup.returncode == 0, backup.stderr
    return source


def _key_count(store: Store, password: str) -> int:
    listing = _restic(store, password, "key", "list", "--json", "--no-lock")
    assert listing.returncode == 0, listing.stderr
    return len(json.loads(listing.stdout))


def test_the_master_is_read_the_same_from_a_file_and_from_a_literal() -> None:
    for raw in (MASTER_FROM_FILE, MASTER_FROM_LITERAL, MASTER_FROM_LITERAL + "\r\n"):
        assert canonical_master(raw) == MASTER_FROM_LITERAL
    assert canonical_master("pw\n\n") == "pw\n", "exactly one line end is taken off"


@pytest.mark.parametrize("recreated_as", [MASTER_FROM_FILE, MASTER_FROM_LITERAL])
def test_a_repository_created_with_the_legacy_password_is_restored_and_migrated(
    seaweed: Store, tmp_path: Path, recreated_as: str
) -> None:
    source = _legacy_repository(seaweed, tmp_path)
    secret = _secret(seaweed, recreated_as)  # the Secret as it is after a rebuild, either way
    canonical = secret["RESTIC_PASSWORD"]
    assert canonical == namespace_password(MASTER_FROM_LITERAL, "apps")
    assert _restic(seaweed, canonical, "snapshots", "--no-lock").returncode == 12, "precondition"
    volume = tmp_path / "vol"
    volume.mkdir()

    run = lifeboat("restore", seaweed, {"data": volume}, tmp_path / "restore", env=secret)

    assert run.code == 0, run.stderr
    assert run.outcome("data")["outcome"] == "restored"
    assert describe(volume) == describe(source)
    assert len(run.events("repository.password_migrated")) == 1
    assert _key_count(seaweed, canonical) == 2, "the canonical password now opens it, the old key stays"
    leaked = [p for p in (canonical, *secret["LIFEBOAT_LEGACY_PASSWORDS"].split(",")) if p in run.stderr]
    assert leaked == []
    assert recreated_as.strip() not in run.stderr + run.termination


def test_a_migrated_repository_opens_without_the_legacy_passwords_and_is_not_migrated_twice(
    seaweed: Store, tmp_path: Path
) -> None:
    _legacy_repository(seaweed, tmp_path)
    secret = _secret(seaweed, MASTER_FROM_LITERAL)
    first = lifeboat("backup", seaweed, {"data": tmp_path / "source"}, tmp_path / "b1", env=secret)
    assert first.code == 0, first.stderr
    assert len(first.events("repository.password_migrated")) == 1
    without_legacy = {**secret, "LIFEBOAT_LEGACY_PASSWORDS": ""}
    second = lifeboat("backup", seaweed, {"data": tmp_path / "source"}, tmp_path / "b2", env=without_legacy)
    assert second.code == 0, second.stderr
    assert second.events("repository.password_migrated") == []
    assert _key_count(seaweed, secret["RESTIC_PASSWORD"]) == 2


def test_a_wrong_master_still_exits_77_adds_no_key_and_never_starts_fresh(
    seaweed: Store, tmp_path: Path
) -> None:
    _legacy_repository(seaweed, tmp_path)
    secret = _secret(seaweed, "another master\n")
    volume = tmp_path / "vol"
    volume.mkdir()

    restore = lifeboat("restore", seaweed, {"data": volume}, tmp_path / "restore", env=secret)
    backup_source = tmp_path / "app-data"
    make_volume(backup_source, seed=9)
    backup = lifeboat("backup", seaweed, {"data": backup_source}, tmp_path / "backup", env=secret)

    assert restore.code == 77, restore.stderr
    assert top_level(volume) == []
    assert restore.events("repository.password_migrated") == []
    assert backup.code == 77, backup.stderr
    legacy = namespace_password(MASTER_FROM_FILE, "apps")
    assert _key_count(seaweed, legacy) == 1, "no key was added"
    listing = _restic(seaweed, legacy, "snapshots", "--json", "--no-lock")
    assert [s["hostname"] for s in json.loads(listing.stdout)] == ["legacy"], "nothing new was written"


def test_the_legacy_passwords_never_reach_restic_argv_or_env(seaweed: Store, tmp_path: Path) -> None:
    """restic is given the legacy password only as RESTIC_PASSWORD of the one `key add` call."""
    _legacy_repository(seaweed, tmp_path)
    secret = _secret(seaweed, MASTER_FROM_LITERAL)
    spy = tmp_path / "restic-spy"
    seen = tmp_path / "seen"
    spy.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "ARGV $*" >> {seen}\n'
        f"env | grep -c LIFEBOAT_LEGACY_PASSWORDS >> {seen}\n"
        f'exec {RESTIC} "$@"\n'
    )
    spy.chmod(0o755)
    (tmp_path / "vol").mkdir()
    run = lifeboat(
        "restore",
        seaweed,
        {"data": tmp_path / "vol"},
        tmp_path / "r",
        env={**secret, "LIFEBOAT_RESTIC_BINARY": str(spy)},
    )
    assert run.code == 0, run.stderr
    text = seen.read_text()
    assert "ARGV key --json" in text and "--new-password-file /dev/stdin" in text
    for password in (secret["RESTIC_PASSWORD"], *secret["LIFEBOAT_LEGACY_PASSWORDS"].split(",")):
        assert password not in text
    assert set(line for line in text.splitlines() if not line.startswith("ARGV")) == {"0"}
    assert os.environ.get("LIFEBOAT_LEGACY_PASSWORDS") is None

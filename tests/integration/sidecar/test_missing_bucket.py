"""A missing bucket is visible where a user looks (issue 14 item 12): the restore container's log
and its termination message (`kubectl describe pod`) say "bucket X does not exist: create it".

It waits like any store error (never fresh, rule 2), but after a few attempts it exits 75 so the
kubelet records the message and starts the container again: pods no longer sit in `Init:0/2`
with nothing in `describe`. Real `lifeboat restore`, real S3.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Store
from tests.support.restores import FAST_RETRIES, restore_empty_volume


def test_a_missing_bucket_is_named_in_the_log_and_the_termination_message(s3: Store, tmp_path: Path) -> None:
    volume, run = restore_empty_volume(s3, tmp_path, LIFEBOAT_S3_BUCKET="not-created-yet", **FAST_RETRIES)
    assert run.code == 75  # no deadline set: it stops only to make the reason visible
    assert len(run.events("restore.retry")) == 3
    assert run.events("restore.bucket_missing")[0]["pvcs"] == ["data"]
    assert "data: waiting (exit 75): bucket not-created-yet does not exist: create it" in run.termination
    assert list(volume.iterdir()) == []  # nothing written, nothing handed over as fresh
    assert not (run.state_dir / "restore.json").exists()


def test_other_store_errors_keep_waiting_inside_the_container(s3: Store, tmp_path: Path) -> None:
    volume, run = restore_empty_volume(
        s3, tmp_path, LIFEBOAT_S3_ENDPOINT="http://127.0.0.1:9", LIFEBOAT_RESTORE_DEADLINE="4", **FAST_RETRIES
    )
    assert run.code == 75
    assert list(volume.iterdir()) == []
    assert not run.events("restore.bucket_missing")
    assert "gave up after 4s" in run.termination

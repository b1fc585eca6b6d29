"""`lifeboat backup` exit codes: only a complete snapshot is a success (README, exit codes)."""

from __future__ import annotations

import pytest

from lifeboat.exitcodes import EX_DATAERR, EX_NOINPUT, EX_NOPERM, EX_OK, EX_TEMPFAIL
from sidecar.backup.guarded import GuardedBackup
from sidecar.backup.oneshot import exit_code
from sidecar.edges.restic import Failure


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (GuardedBackup("data", "success"), EX_OK),
        (GuardedBackup("data", "incomplete"), EX_NOINPUT),
        (GuardedBackup("data", "blocked"), EX_DATAERR),
        (GuardedBackup("data", "failed", failure=Failure.FATAL, store_code=EX_NOPERM), EX_NOPERM),
        (GuardedBackup("data", "failed", failure=Failure.WRONG_PASSWORD), EX_NOPERM),
        (GuardedBackup("data", "locked", failure=Failure.LOCKED), EX_TEMPFAIL),
        (GuardedBackup("data", "cancelled", failure=Failure.INTERRUPTED), EX_TEMPFAIL),
    ],
)
def test_each_backup_result_has_its_exit_code(result: GuardedBackup, expected: int) -> None:
    assert exit_code(result) == expected

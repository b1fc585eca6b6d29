"""`lifeboat restore` of one empty volume with some variables changed: the set-up of every test of
a store that cannot answer yet (a missing bucket, a dead endpoint), in one place."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Store
from tests.support.lifeboat_cli import Run, lifeboat

# the restore's own retries, short: a test sees several attempts within a second
FAST_RETRIES = {"LIFEBOAT_RETRY_INITIAL": "0.1", "LIFEBOAT_RETRY_MAX": "0.2"}


def restore_empty_volume(store: Store, tmp_path: Path, pvc: str = "data", **env: str) -> tuple[Path, Run]:
    """The real `lifeboat restore` of a new, empty volume for `pvc` on `store`, with `env` set;
    returns the volume (to check nothing was written to it) and the run."""
    volume = tmp_path / "vol"
    volume.mkdir()
    return volume, lifeboat("restore", store, {pvc: volume}, tmp_path, env=env, timeout=120)

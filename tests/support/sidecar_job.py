"""Runs one sidecar job in a process of its own, so a test can kill -9 it at any instant.

    python -m tests.support.sidecar_job backup|prune PVC=PATH [UID]

Configuration comes from the environment, as in the sidecar container. For `prune` the process
adopts every snapshot as its own (it stands for the sidecar that wrote them) so the leader rule lets
it prune.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lifeboat.logs import configure
from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec, load_sidecar_settings


def run(job: str, volume_arg: str, uid: str | None) -> int:
    configure()
    pvc, _, path = volume_arg.partition("=")
    sidecar = Sidecar.from_settings([VolumeSpec(pvc, Path(path), pvc_uid=uid)], load_sidecar_settings())
    worker = sidecar.workers[0]
    if job == "backup":
        return 0 if worker.backup().succeeded else 1
    worker.own_snapshots.update(s.id for s in worker.restic.snapshots())
    return 0 if worker.prune().result == "success" else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))

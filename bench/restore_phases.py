"""Where `lifeboat restore`'s time goes: one run, each phase's seconds (bench/restore.py --profile).

Run as `python bench/restore_phases.py restore --volume data=DIR` with the restore's environment:
it times the edges the restore loop calls (the S3 probe, each restic process, the durability
flush, the move-in) by wrapping them, runs `lifeboat.cli.main` in this process, and prints one
JSON object of phase -> seconds on stdout's last line. Measurement only: nothing is changed.
The speculative `restic restore latest` runs in a thread beside the probe and `restic snapshots`,
so phases overlap: "restic restore" is then that thread's whole run, not time on the critical path.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STARTED = time.monotonic()
PHASES: dict[str, float] = defaultdict(float)


def timed(owner: Any, name: str, label: str) -> None:
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return inner(*args, **kwargs)
        finally:
            PHASES[label] += time.monotonic() - started

    setattr(owner, name, wrapper)


def main() -> int:
    from lifeboat import cli
    from sidecar.edges import restic, store, volume
    from sidecar.restore import run

    PHASES["python start + imports"] = time.monotonic() - STARTED
    # the speculative restore runs in a thread beside the probe and the listing: phases overlap
    timed(run, "ask_store", "ask the store (probe | restic snapshots)")
    timed(run, "settle", "speculation: wait for it + proof")
    timed(restic.Restic, "snapshot_files", "S3 list of snapshots/ (stdlib, each)")
    timed(store.StoreProbe, "probe", "S3 probe")
    timed(restic.Restic, "_run", "restic processes (all)")
    for name in ("snapshots", "restore", "open"):
        if hasattr(restic.Restic, name):
            timed(restic.Restic, name, f"restic {name}")
    timed(volume, "prepare", "volume prepare")
    for name in ("sync_volume", "flush"):
        if hasattr(volume, name):
            timed(volume, name, "durability flush")
    if not hasattr(volume, "sync_volume"):
        timed(os, "sync", "durability flush")
    timed(volume, "commit", "commit (flush + record)")
    timed(volume, "move_in", "move-in")
    started = time.monotonic()
    code = cli.main(sys.argv[1:])
    PHASES["lifeboat.cli.main"] = time.monotonic() - started
    PHASES["total in process"] = time.monotonic() - STARTED
    print(json.dumps({k: round(v, 3) for k, v in PHASES.items()}))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

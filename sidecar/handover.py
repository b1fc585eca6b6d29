"""The restore init container's handover to the sidecar: how each volume started.

The init container writes `<LIFEBOAT_STATE_DIR>/restore.json` atomically:
`{"version": 1, "volumes": {"<pvc>": {"outcome": "restored"|"fresh"|"skipped", "snapshot": ...,
"finished_at": ...}}}`. The guard rails need the outcome (a fresh or restored volume continues the
history; a skipped one must prove it is the same volume instance). A missing or unreadable file is
not an error: the outcome is then unknown, which the guard treats like `skipped`, the cautious side.

Each volume's outcome is recorded as soon as it is decided (`record_outcomes`), merged into what
earlier attempts of the init container in the same pod recorded (the state directory is an
emptyDir: it survives init-container restarts, not the pod). So when one volume of a pod restores
and another fails, the rerun that finds the first volume full keeps its `restored` instead of
turning it into `skipped`: the restored history is still claimed for this volume instance.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from lifeboat.logs import event

log = logging.getLogger(__name__)

FILENAME = "restore.json"
OUTCOMES = ("restored", "fresh", "skipped")


@dataclass(frozen=True)
class Handover:
    outcome: str
    snapshot: str | None
    finished_at: str | None


def read_handover(state_dir: Path) -> dict[str, Handover]:
    """Outcomes by PVC name; {} when the file is missing or unreadable (logged, never raised)."""
    path = state_dir / FILENAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        event(log, "handover.unreadable", logging.WARNING, path=str(path), error=str(exc))
        return {}
    volumes = raw.get("volumes") if isinstance(raw, dict) else None
    if not isinstance(volumes, dict):
        event(log, "handover.unreadable", logging.WARNING, path=str(path), error="no volumes object")
        return {}
    found: dict[str, Handover] = {}
    for pvc, item in volumes.items():
        if isinstance(item, dict) and item.get("outcome") in OUTCOMES:
            found[str(pvc)] = Handover(
                outcome=str(item["outcome"]),
                snapshot=item.get("snapshot"),
                finished_at=item.get("finished_at"),
            )
    return found


def write_handover(state_dir: Path, volumes: Mapping[str, Handover]) -> None:
    """Writes the outcomes atomically (temp file, fsync, rename): the sidecar reads all or nothing."""
    state_dir.mkdir(parents=True, exist_ok=True)
    record = {"version": 1, "volumes": {pvc: asdict(item) for pvc, item in volumes.items()}}
    path = state_dir / FILENAME
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the rename itself must survive a crash too
    finally:
        os.close(fd)


# what a rerun may not overwrite with `skipped`: it found data that an earlier attempt in this
# pod put there (restored), or that the app could only have written after a fresh start
_DECIDED_HERE = ("restored", "fresh")


def merge(earlier: Mapping[str, Handover], now: Mapping[str, Handover]) -> dict[str, Handover]:
    """`now` over `earlier`, except that `skipped` never replaces an earlier restored or fresh."""
    merged = dict(earlier)
    for pvc, item in now.items():
        before = merged.get(pvc)
        if item.outcome == "skipped" and before is not None and before.outcome in _DECIDED_HERE:
            continue
        merged[pvc] = item
    return merged


def record_outcomes(state_dir: Path, volumes: Mapping[str, Handover]) -> dict[str, Handover]:
    """Merges these outcomes into the handover file (atomically) and returns what it now says."""
    merged = merge(read_handover(state_dir), volumes)
    write_handover(state_dir, merged)
    return merged

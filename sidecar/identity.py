"""The identity every Lifeboat snapshot carries, shared by the one-shot and scheduled backups.

Host `lifeboat` (not the pod name, which changes on every restart) and tags for namespace, PVC and,
when known, the PVC's UID: restarts continue one history, a rebuilt cluster finds it by name, and
the guard tells this volume instance from another one by the UID tag.
"""

from __future__ import annotations

SNAPSHOT_HOST = "lifeboat"


def tags_for(namespace: str, pvc: str, pvc_uid: str | None) -> list[str]:
    """Snapshot tags (restic tags may not contain commas, and these never do)."""
    tags = ["lifeboat", f"namespace={namespace}", f"pvc={pvc}"]
    if pvc_uid:
        tags.append(f"pvc-uid={pvc_uid}")
    return tags

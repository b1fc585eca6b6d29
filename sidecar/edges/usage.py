"""What is on a volume, measured the way restic will see it: regular files and their bytes.

The guard compares these numbers with the newest snapshot's summary (`total_files_processed`,
`total_bytes_processed`), so they are counted like restic counts them: regular files, apparent size,
one file system, `lost+found` at the root ignored (a freshly formatted volume has it and is empty).
`filesystem_used_bytes()` is the other number: what the file system reports, for the metric.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from sidecar.backup.guard import VolumeFacts

IGNORED_AT_ROOT = frozenset({"lost+found"})


def measure(root: Path) -> VolumeFacts:
    """Counts regular files and bytes under `root` without following symlinks or mounts."""
    files = size = 0
    root_dev = os.lstat(root).st_dev
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue  # vanished or unreadable: restic will report it, the guard need not
        with entries:
            for entry in entries:
                if directory == str(root) and entry.name in IGNORED_AT_ROOT:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if info.st_dev == root_dev:
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    size += info.st_size
    return VolumeFacts(files=files, bytes=size)


def filesystem_used_bytes(root: Path) -> int | None:
    """Bytes used on the file system holding `root` (psutil), None if it cannot be asked."""
    try:
        return int(psutil.disk_usage(str(root)).used)
    except OSError:
        return None

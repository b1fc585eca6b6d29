"""Which processes on this machine are a test's own: the suite runs in parallel (pytest-xdist),
so a test that asks "is anything still running?" must ask about the paths only it uses."""

from __future__ import annotations

from pathlib import Path

import psutil


def naming(path: Path) -> list[list[str]]:
    """The command lines of live processes (zombies left out) with an argument naming `path`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(str(path) in arg for arg in cmdline):
            found.append(list(cmdline))
    return found

"""`lifeboat demo` (`make demo`): the whole promise, on this machine, in under a minute.

Starts a SeaweedFS on loopback, builds a volume with awkward content (nested dirs, a SQLite
database, symlinks, hard links, files owned by other uids), then plays what a pod's life does:
the restore init container on a new volume (fresh), a backup, the volume lost, the restore init
container again (restored), and an exact comparison. The real `lifeboat` commands run as child
processes, as they would in a pod. Exit 0 only when the data came back identical.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools import devstore
from devtools.devtree import describe, make_volume


def _lifeboat(command: str, volume: Path, env: dict[str, str]) -> tuple[int, float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lifeboat.cli", command, "--volume", f"data={volume}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, time.monotonic() - started, proc.stderr


def _restic_binary() -> str:
    beside = Path(sys.executable).parent / "restic"
    return str(beside) if beside.exists() else (shutil.which("restic") or "restic")


def run_demo(keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="lifeboat-demo-"))
    access, secret = "demo-" + secrets.token_hex(4), secrets.token_hex(16)
    server = devstore.seaweedfs(work / "seaweedfs", access, secret, bucket="lifeboat-demo")
    volume = work / "volume"
    timings: dict[str, float] = {}
    print(f"lifeboat demo: working in {work}")
    try:
        started = time.monotonic()
        server.start()
        timings["start SeaweedFS"] = time.monotonic() - started
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(work)),
            "LIFEBOAT_S3_ENDPOINT": server.endpoint,
            "LIFEBOAT_S3_BUCKET": "lifeboat-demo",
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "RESTIC_PASSWORD": secrets.token_hex(16),
            "LIFEBOAT_NAMESPACE": "demo",
            "LIFEBOAT_RESTIC_BINARY": _restic_binary(),
            "LIFEBOAT_STATE_DIR": str(work / "state"),
            "LIFEBOAT_TERMINATION_MESSAGE_PATH": str(work / "termination-log"),
            "RESTIC_CACHE_DIR": str(work / "restic-cache"),
            "LIFEBOAT_RESTORE_DEADLINE": "60",
        }
        volume.mkdir()
        code, seconds, log = _lifeboat("restore", volume, env)
        timings["restore (new volume)"] = seconds
        message = (work / "termination-log").read_text().strip()
        print(f"  {'restore (new volume)':<28} {message}  [{seconds:.2f}s]")
        if code != 0 or message != "data: fresh":
            print(log, file=sys.stderr)
            return 1

        make_volume(volume, files=200, size=8192)
        with open(volume / "app" / "blob.bin", "wb") as handle:
            handle.write(os.urandom(8 * 1024 * 1024))
        expected = describe(volume)
        files = sum(1 for entry in expected.values() if entry.get("sha256"))

        code, seconds, log = _lifeboat("backup", volume, env)
        timings["backup"] = seconds
        print(f"  {'backup':<28} {files} files  [{seconds:.2f}s]")
        if code != 0:
            print(log, file=sys.stderr)
            return 1

        shutil.rmtree(volume)
        volume.mkdir()
        (volume / "lost+found").mkdir()
        print(f"  {'volume lost':<28} (only lost+found left)")

        code, seconds, log = _lifeboat("restore", volume, env)
        timings["restore (volume lost)"] = seconds
        message = (work / "termination-log").read_text().strip()
        print(f"  {'restore (volume lost)':<28} {message}  [{seconds:.2f}s]")
        if code != 0:
            print(log, file=sys.stderr)
            return 1

        restored = describe(volume)
        rows = sqlite3.connect(volume / "app" / "app.sqlite").execute("select count(*) from kv").fetchone()[0]
        same = restored == expected
        mismatched = sorted(k for k in set(expected) | set(restored) if expected.get(k) != restored.get(k))
        handover = json.loads((work / "state" / "restore.json").read_text())
        verdict = "identical" if same else "DIFFERENT: " + ", ".join(mismatched[:5])
        outcome = handover["volumes"]["data"]["outcome"]
        print(f"  {'verify':<28} {verdict} ({len(expected)} entries; SQLite rows {rows}; handover {outcome})")
        total = sum(timings.values())
        print(
            f"lifeboat demo: {'data came back' if same else 'FAILED'} in {total:.1f}s "
            f"(backup {timings['backup']:.2f}s, restore {timings['restore (volume lost)']:.2f}s)"
        )
        return 0 if same else 1
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

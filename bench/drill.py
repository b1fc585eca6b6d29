"""A restore drill of a small volume: wall time, peak scratch use, the drill's largest process.

Starts SeaweedFS (loopback), fills a volume (`--files` files of `--size` bytes in a few
directories plus one SQLite database of `--db-rows` rows), backs it up with `lifeboat backup`, then
runs drills exactly as the sidecar does (sidecar.daemon.main's VolumeWorker.drill: the child
process `python -m sidecar.drill.run`, restic restore --no-lock into scratch, counts,
integrity_check) `--runs` times, full and then sampled under `--sample-budget` bytes. Prints wall
time, the peak bytes on scratch (st_blocks of the restored tree), and the largest resident set of
any process of the drill (the Python child or its restic, sampled every 20 ms).

    .venv/bin/python bench/drill.py --files 200 --size 65536 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore
from sidecar.daemon.main import Sidecar
from sidecar.settings import VolumeSpec, load_sidecar_settings

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
BIN = Path(sys.executable).parent


class Watcher(threading.Thread):
    """The largest RSS of a drill process (the child or its restic), sampled every 20 ms until stop()."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.wait(0.02):
            for child in me.children():  # the drill's child and its restic; not SeaweedFS
                with contextlib.suppress(psutil.Error):
                    if "sidecar.drill.run" not in child.cmdline():
                        continue
                    for process in (child, *child.children(recursive=True)):
                        self.peak = max(self.peak, process.memory_info().rss)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--db-rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample-budget", type=int, default=8 * 1024 * 1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        volume = root / "volume"
        for i in range(args.files):
            sub = volume / f"dir{i % 8}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"file{i}.bin").write_bytes(os.urandom(args.size))
        (volume / "app").mkdir()
        db = sqlite3.connect(volume / "app" / "app.db")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 200,) for _ in range(args.db_rows)])
        db.commit()
        db.close()
        total = sum(p.stat().st_size for p in volume.rglob("*") if p.is_file())
        server = devstore.seaweedfs(root / "weed", ACCESS, SECRET)
        with devstore.running(server):
            server.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            env = {
                "LIFEBOAT_S3_ENDPOINT": server.endpoint,
                "LIFEBOAT_S3_BUCKET": "bench",
                "AWS_ACCESS_KEY_ID": ACCESS,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "RESTIC_PASSWORD": PASSWORD,
                "LIFEBOAT_NAMESPACE": "bench",
                "LIFEBOAT_RESTIC_BINARY": str(BIN / "restic"),
                "LIFEBOAT_STATE_DIR": str(root / "state"),
                "LIFEBOAT_METRICS_PORT": "0",
                "RESTIC_CACHE_DIR": str(root / "cache"),
                "LIFEBOAT_SCRATCH_DIR": str(root / "scratch"),
                "LIFEBOAT_FIRST_BACKUP_DELAY": "0",
            }
            (root / "state").mkdir()
            subprocess.run(
                [str(BIN / "lifeboat"), "backup", "--volume", f"data={volume}"],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
            for label, budget in (("full", 2**40), ("sampled", args.sample_budget)):
                settings = load_sidecar_settings({**env, "LIFEBOAT_DRILL_SCRATCH_BUDGET": str(budget)})
                (worker,) = Sidecar.from_settings([VolumeSpec("data", volume)], settings).workers
                walls = []
                watcher = Watcher()
                watcher.start()
                for _ in range(args.runs):
                    started = time.monotonic()
                    report = worker.drill()
                    walls.append(time.monotonic() - started)
                    assert report.result == "success", report
                largest = watcher.stop() / 2**20
                print(
                    f"{label}: volume {args.files + 1} files, {total / 2**20:.1f} MiB; "
                    f"checked {report.files_checked} files, {report.bytes_checked / 2**20:.1f} MiB, "
                    f"{report.databases} database(s); wall median {statistics.median(walls):.2f} s "
                    f"(runs: {', '.join(f'{w:.2f}' for w in walls)}); peak scratch "
                    f"{report.peak_scratch_bytes / 2**20:.1f} MiB; largest drill process "
                    f"{largest:.0f} MiB RSS"
                )


if __name__ == "__main__":
    main()

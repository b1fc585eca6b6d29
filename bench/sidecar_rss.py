"""Idle footprint of `lifeboat sidecar`: resident memory and CPU of the long-running process.

Starts SeaweedFS (loopback), takes one backup so the repository exists (as it does after the
first hour), then starts `lifeboat sidecar` for `--volumes` volumes exactly as the container does
(validation, then re-exec into the slim process), lets it settle, and samples the process over
`--seconds`: RSS (VmRSS) and CPU time consumed while idle, including /metrics being scraped
every 15 s like Prometheus would.

    .venv/bin/python bench/sidecar_rss.py --volumes 3 --seconds 60
    .venv/bin/python bench/sidecar_rss.py --volumes 3 --seconds 30 --new-repositories

`--new-repositories` skips that first backup: the sidecar then creates each repository itself
(the store probe, the init claim, `restic init`) and backs the volumes up before it is sampled,
so the figure includes whatever creating a repository left in the process's memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument(
        "--new-repositories", action="store_true", help="let the sidecar create the repositories"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = devstore.seaweedfs(root / "weed", ACCESS, SECRET)
        with devstore.running(server):
            server.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            port = devstore.free_port()
            env = {
                **os.environ,
                "LIFEBOAT_S3_ENDPOINT": server.endpoint,
                "LIFEBOAT_S3_BUCKET": "bench",
                "AWS_ACCESS_KEY_ID": ACCESS,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "RESTIC_PASSWORD": PASSWORD,
                "LIFEBOAT_NAMESPACE": "bench",
                "LIFEBOAT_RESTIC_BINARY": str(BIN / "restic"),
                "LIFEBOAT_STATE_DIR": str(root / "state"),
                "LIFEBOAT_METRICS_PORT": str(port),
                "LIFEBOAT_METRICS_ADDRESS": "127.0.0.1",
                "LIFEBOAT_FINAL_BACKUP_TIMEOUT": "0",
                "RESTIC_CACHE_DIR": str(root / "cache"),
            }
            (root / "state").mkdir()
            volumes = []
            for i in range(args.volumes):
                path = root / f"vol{i}"
                path.mkdir()
                (path / "data.bin").write_bytes(os.urandom(1024 * 1024))
                volumes += ["--volume", f"pvc-{i}={path}"]
            one_shot = [str(BIN / "lifeboat"), "backup", *volumes]
            if not args.new_repositories:
                subprocess.run(one_shot, env=env, check=True, capture_output=True)
            proc = psutil.Popen(
                [str(BIN / "lifeboat"), "sidecar", *volumes], env=env, stderr=subprocess.DEVNULL
            )
            time.sleep(5)  # validation, re-exec, scheduler and HTTP server up
            if args.new_repositories:  # until the sidecar's own first backups have landed
                client = server.client()  # type: ignore[attr-defined]
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    keys = [
                        item["Key"]
                        for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench")
                        for item in page.get("Contents", [])
                    ]
                    if sum("/snapshots/" in key for key in keys) >= args.volumes:
                        break
                    time.sleep(1)
                else:
                    raise SystemExit("the sidecar did not back the volumes up within 300 s")
                time.sleep(3)
            cpu0 = sum(proc.cpu_times()[:2])
            peak = 0
            samples = []
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                if int(time.monotonic() - started) % 15 == 0:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        r.read()
                rss = proc.memory_info().rss
                samples.append(rss)
                peak = max(peak, rss)
                time.sleep(1)
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            cmdline = " ".join(proc.cmdline()[1:])
            proc.terminate()
            proc.wait(timeout=30)
    mib = 1024 * 1024
    print(f"process: {cmdline}")
    made = "created by the sidecar" if args.new_repositories else "created beforehand"
    print(f"volumes: {args.volumes} (repositories {made}), idle for {args.seconds} s, /metrics every 15 s")
    median = sorted(samples)[len(samples) // 2]
    print(
        f"RSS median {median / mib:.1f} MiB ({median // 1024} KiB),"
        f" peak {peak / mib:.1f} MiB ({peak // 1024} KiB)"
    )
    print(f"CPU {cpu:.2f} s over {args.seconds} s ({100 * cpu / args.seconds:.2f}% of one core)")


if __name__ == "__main__":
    main()

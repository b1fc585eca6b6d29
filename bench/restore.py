"""Restore wall time: `lifeboat restore` (the init container) against a raw `restic restore`.

Same data, same SeaweedFS (weed mini on loopback, started here), same restic binary, one run.
Lifeboat's figure is the whole init container as a pod runs it: process start, configuration,
the volume's lock and emptiness check, the S3 probe (boto3), `restic snapshots`, `restic restore`
into the work directory, fsync, commit record, renames into place, handover and termination
message. Raw is `restic restore latest --target DIR` alone, into an empty directory.

    .venv/bin/python bench/restore.py --mib 200 --small-files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore
from devtools.devtree import describe

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-restore-"))
    server = devstore.seaweedfs(work / "s3", ACCESS, SECRET, bucket="bench")
    try:
        server.start()
        source = work / "source"
        (source / "small").mkdir(parents=True)
        for i in range(max(1, args.mib // 50)):
            (source / f"blob{i}.bin").write_bytes(os.urandom(min(50, args.mib) * 1024 * 1024))
        for i in range(args.small_files):
            (source / "small" / f"f{i}.txt").write_bytes(os.urandom(2048))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "LIFEBOAT_S3_ENDPOINT": server.endpoint,
            "LIFEBOAT_S3_BUCKET": "bench",
            "AWS_ACCESS_KEY_ID": ACCESS,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "RESTIC_PASSWORD": PASSWORD,
            "LIFEBOAT_NAMESPACE": "bench",
            "LIFEBOAT_RESTIC_BINARY": str(BIN / "restic"),
            "LIFEBOAT_STATE_DIR": str(work / "state"),
            "LIFEBOAT_TERMINATION_MESSAGE_PATH": str(work / "term"),
            "RESTIC_CACHE_DIR": str(work / "cache"),
        }
        subprocess.run(
            [BIN / "lifeboat", "backup", "--volume", f"data={source}"],
            env=env,
            check=True,
            capture_output=True,
        )
        raw_env = {**env, "RESTIC_REPOSITORY": f"s3:{server.endpoint}/bench/lifeboat/bench/data"}
        expected = describe(source)
        raw_times, lifeboat_times = [], []
        for round_no in range(args.rounds):
            target = work / f"raw-{round_no}"
            started = time.monotonic()
            subprocess.run(
                [BIN / "restic", "restore", "latest", "--target", str(target)],
                env=raw_env,
                check=True,
                capture_output=True,
            )
            raw_times.append(time.monotonic() - started)
            shutil.rmtree(target)

            volume = work / f"vol-{round_no}"
            volume.mkdir()
            started = time.monotonic()
            subprocess.run(
                [BIN / "lifeboat", "restore", "--volume", f"data={volume}"],
                env=env,
                check=True,
                capture_output=True,
            )
            lifeboat_times.append(time.monotonic() - started)
            assert describe(volume) == expected, "restored tree differs"
            shutil.rmtree(volume)
        raw, ours = statistics.median(raw_times), statistics.median(lifeboat_times)
        print(f"dataset: {args.mib} MiB in {max(1, args.mib // 50)} files + {args.small_files} x 2 KiB files")
        print(f"raw restic restore   median {raw:.2f}s  {[round(t, 2) for t in raw_times]}")
        print(f"lifeboat restore     median {ours:.2f}s  {[round(t, 2) for t in lifeboat_times]}")
        print(f"ratio lifeboat/raw   {ours / raw:.2f}  (+{ours - raw:.2f}s)")
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

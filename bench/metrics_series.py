"""Series and scrape size of one `lifeboat sidecar`'s /metrics, for 1 and N volumes.

The setup of bench/sidecar_rss.py: SeaweedFS on loopback, one `lifeboat backup` so the
repositories exist, then `lifeboat sidecar` exactly as the container runs it; waits for its
first scheduled backup (LIFEBOAT_FIRST_BACKUP_DELAY=1) so every per-PVC series is populated,
scrapes /metrics and counts samples (non-comment lines) and bytes, and checks the text with
prometheus_client's parser.

    .venv/bin/python bench/metrics_series.py --volumes 1 3
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from devtools import devstore

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
BIN = Path(sys.executable).parent


def measure(server: devstore.S3Server, root: Path, volumes: int) -> tuple[int, int, int, dict[str, int]]:
    port = devstore.free_port()
    env = {
        **os.environ,
        "LIFEBOAT_S3_ENDPOINT": server.endpoint,
        "LIFEBOAT_S3_BUCKET": "bench",
        "LIFEBOAT_S3_PREFIX": f"series-{volumes}",
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "RESTIC_PASSWORD": PASSWORD,
        "LIFEBOAT_NAMESPACE": "bench",
        "LIFEBOAT_RESTIC_BINARY": str(BIN / "restic"),
        "LIFEBOAT_STATE_DIR": str(root / f"state{volumes}"),
        "LIFEBOAT_METRICS_PORT": str(port),
        "LIFEBOAT_METRICS_ADDRESS": "127.0.0.1",
        "LIFEBOAT_FINAL_BACKUP_TIMEOUT": "0",
        "LIFEBOAT_FIRST_BACKUP_DELAY": "1",
        "RESTIC_CACHE_DIR": str(root / "cache"),
    }
    (root / f"state{volumes}").mkdir()
    args = []
    for i in range(volumes):
        path = root / f"v{volumes}-{i}"
        path.mkdir()
        (path / "data.bin").write_bytes(os.urandom(64 * 1024))
        args += ["--volume", f"pvc-{i}={path}"]
    subprocess.run([str(BIN / "lifeboat"), "backup", *args], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([str(BIN / "lifeboat"), "sidecar", *args], env=env, stderr=subprocess.DEVNULL)
    try:
        text = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                continue
            if text.count("lifeboat_backup_duration_seconds_count{") >= volumes:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    families = {f.name: len(f.samples) for f in text_string_to_metric_families(text)}
    lifeboat = sum(1 for line in samples if line.startswith("lifeboat_"))
    return len(samples), lifeboat, len(text.encode()), families


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = devstore.seaweedfs(root / "weed", ACCESS, SECRET)
        with devstore.running(server):
            server.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            for volumes in args.volumes:
                total, lifeboat, size, families = measure(server, root, volumes)
                print(
                    f"volumes={volumes}: {total} samples ({lifeboat} lifeboat_*), "
                    f"{size} bytes ({size / 1024:.1f} KiB) uncompressed"
                )
                top = sorted(families.items(), key=lambda kv: -kv[1])[:6]
                print("  largest families: " + ", ".join(f"{k} {v}" for k, v in top))


if __name__ == "__main__":
    main()

"""API round trips from the host through the cluster harness's forwarder (cluster/up.sh, api-forward).

A response larger than one TCP segment used to wait ~40 ms for a delayed ACK (Nagle on the
forwarder's sockets); this measures a small (`/version`) and a large (a pod list, well over one
segment) GET, each on one kept-alive HTTPS connection, the way kubectl and the e2e tests talk.

    .venv/bin/python bench/api_forward.py --rounds 50
"""

from __future__ import annotations

import argparse
import base64
import http.client
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

KUBECONFIG = Path(__file__).resolve().parent.parent / ".cache" / "cluster" / "kubeconfig"


def connect(kubeconfig: Path) -> tuple[http.client.HTTPSConnection, tempfile.TemporaryDirectory[str]]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    keep = tempfile.TemporaryDirectory(prefix="lifeboat-bench-api-")
    files = {}
    for name in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        path = Path(keep.name) / name
        path.write_bytes(base64.b64decode(cluster.get(name) or user[name]))
        files[name] = str(path)
    context = ssl.create_default_context(cafile=files["certificate-authority-data"])
    context.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
    where = urlsplit(cluster["server"])
    return http.client.HTTPSConnection(where.hostname or "", where.port, context=context), keep


def measure(connection: http.client.HTTPSConnection, path: str, rounds: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(rounds + 2):
        started = time.perf_counter()
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        size = len(body)
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    return times[2:], size  # the first two warm the connection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--kubeconfig", type=Path, default=KUBECONFIG)
    args = parser.parse_args()
    connection, keep = connect(args.kubeconfig)
    with keep:
        for label, path in (("small", "/version"), ("large", "/api/v1/pods")):
            times, size = measure(connection, path, args.rounds)
            ms = sorted(t * 1000 for t in times)
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(
                f"{label:5} GET {path:14} {size:7d} B  p50 {statistics.median(ms):6.1f} ms  "
                f"p99 {p99:6.1f} ms  (n={len(ms)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

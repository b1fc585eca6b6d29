"""S3 requests per PVC per hour, counted on the wire: a counting reverse proxy in front of SeaweedFS.

The sidecar's jobs of one PVC run through their real code paths (`VolumeWorker.backup` with its
guard and its forget, `VolumeWorker.prune`, `VolumeWorker.check`, `VolumeWorker.drill`), with the
store endpoint pointed at a small HTTP proxy on loopback that forwards every request unchanged
(Host header included, so SigV4 signatures stay valid) to a `weed mini` started here, and counts
each request by kind: GET, LIST (a GET of a bucket with `list-type`/`prefix`), PUT, HEAD, DELETE,
POST. Nothing is estimated: restic, boto3 (only if a repository is created) and the retention
breaker's `Date` probe all talk through the proxy.

The typical hour is one scheduled backup after 1% of the files changed, followed by its forget in
steady state (`LIFEBOAT_RETENTION=last=4` after a warm-up of five backups, so every forget really
removes one snapshot, as an hourly=24 policy does each hour); prune (daily by default), check and
drill (weekly by default) are counted once each and charged at their per-hour share.

    .venv/bin/python bench/s3_requests.py --mib 50 --small-files 2000 --rounds 3

Prints a table and, with `--json PATH`, writes the figures for bench/scale_schedule.py.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sidecar_backup import ACCESS, SECRET, dataset, env_for, touch_one_percent
from devtools import devstore
from sidecar.daemon.main import Sidecar, VolumeWorker
from sidecar.settings import VolumeSpec, load_sidecar_settings

KINDS = ("GET", "LIST", "PUT", "HEAD", "DELETE", "POST")
HOP_BY_HOP = {
    "expect",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
}
LIST_PARAMS = {"list-type", "prefix", "delimiter", "continuation-token", "marker", "max-keys"}


def kind_of(method: str, target: str) -> str:
    """The request's kind for counting: a GET that lists a bucket is a LIST (billed as one)."""
    if method != "GET":
        return method
    parsed = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    path = parsed.path.strip("/")
    if path and "/" not in path and (LIST_PARAMS & query.keys() or not query):
        return "LIST"  # GET /bucket?list-type=2&prefix=... (path-style addressing)
    if not path:
        return "LIST"  # ListBuckets
    return "GET"


RESTIC_DIRS = ("config", "keys", "locks", "snapshots", "index", "data")


def object_of(target: str) -> str:
    """Which part of a restic repository a request touches (`locks`, `index`, ...), for the detail."""
    parsed = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(parsed.query)
    words = parsed.path.strip("/").split("/") + query.get("prefix", [""])[0].strip("/").split("/")
    found = [w for w in words if w in RESTIC_DIRS]
    return found[-1] if found else (parsed.path.strip("/").split("/")[0] or "/") + " (bucket)"


class Counter:
    """Requests per kind since the last `reset()`, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self.detail: collections.Counter[str] = collections.Counter()  # "GET index" etc., since reset

    def add(self, kind: str, what: str) -> None:
        with self._lock:
            self._counts[kind] += 1
            self.detail[f"{kind} {what}"] += 1

    def reset(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self._counts)
            self._counts.clear()
            self.detail.clear()
        return {k: taken.get(k, 0) for k in KINDS} | {k: v for k, v in taken.items() if k not in KINDS}


def proxy(upstream: str, counter: Counter) -> http.server.ThreadingHTTPServer:
    """A loopback HTTP/1.1 reverse proxy to `upstream` that counts every request it forwards."""
    target = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _forward(self) -> None:
            counter.add(kind_of(self.command, self.path), object_of(self.path))
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            finally:
                conn.close()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            # a HEAD's Content-Length is the object's size, not the (empty) payload's
            size = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", size or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(parts)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def counted(counter: Counter, action: Callable[[], Any]) -> tuple[dict[str, int], float, Any]:
    counter.reset()
    started = time.monotonic()
    result = action()
    seconds = time.monotonic() - started
    print(
        f"  {getattr(action, '__name__', action)}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counter.detail.items()))
    )
    return counter.reset(), seconds, result


def total(counts: Mapping[str, float]) -> float:
    return sum(counts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="typical hours counted (median taken)")
    parser.add_argument("--warmup", type=int, default=5, help="backups before counting (steady state)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        dataset(data, args.mib, args.small_files)
        server = devstore.seaweedfs(root / "weed", ACCESS, SECRET)
        with devstore.running(server):
            server.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            front = proxy(server.endpoint, counter)
            endpoint = f"http://127.0.0.1:{front.server_address[1]}"
            state = root / "state"
            (state / "scratch").mkdir(parents=True)
            pvc = "data-app-0"
            (state / "restore.json").write_text(
                json.dumps({"version": 1, "volumes": {pvc: {"outcome": "fresh"}}})
            )
            env = env_for(server, "bench", state) | {
                "LIFEBOAT_S3_ENDPOINT": endpoint,
                "LIFEBOAT_RETENTION": "last=4",
                "LIFEBOAT_SCRATCH_DIR": str(state / "scratch"),
            }
            settings = load_sidecar_settings(env)
            sidecar = Sidecar.from_settings([VolumeSpec(pvc, data, pvc_uid="bench")], settings)
            worker: VolumeWorker = sidecar.workers[0]
            first, first_s, result = counted(counter, worker.backup)
            assert result.succeeded, result
            for _ in range(args.warmup - 1):
                touch_one_percent(data, args.small_files)
                assert worker.backup().succeeded
            hours: list[tuple[dict[str, int], float]] = []
            kept: list[int] = []
            for _ in range(args.rounds):
                touch_one_percent(data, args.small_files)
                counts, seconds, result = counted(counter, worker.backup)
                assert result.succeeded, result
                hours.append((counts, seconds))
                kept.append(len(worker.restic.snapshots()))  # not counted: counted() resets first
            prune_counts, prune_s, prune = counted(counter, worker.prune)
            check_counts, check_s, check = counted(counter, worker.check)
            drill_counts, drill_s, drill = counted(counter, worker.drill)
            front.shutdown()
    hourly = {k: statistics.median(h[0].get(k, 0) for h in hours) for k in KINDS}
    hourly_s = statistics.median(h[1] for h in hours)
    # per-hour shares of the other jobs at their default cadences
    shares = {"prune (daily)": (prune_counts, 1 / 24), "check (weekly)": (check_counts, 1 / 168)}
    shares["drill (weekly)"] = (drill_counts, 1 / 168)
    per_hour = {k: hourly[k] + sum(c.get(k, 0) * s for c, s in shares.values()) for k in KINDS}
    print(
        f"dataset: {args.mib} MiB random + {args.small_files} x 2 KiB; 1% of the small files changed hourly"
    )
    print(f"snapshots after each counted hour (last=4: each forget removed one): {kept}")
    print(f"results: prune={prune.result} check={check.result} drill={drill.result}")
    print(f"{'operation':<34}{'s':>7}" + "".join(f"{k:>8}" for k in KINDS) + f"{'total':>8}")

    def row(label: str, counts: Mapping[str, float], seconds: float | None) -> None:
        secs = f"{seconds:>7.2f}" if seconds is not None else f"{'':>7}"
        print(
            f"{label:<34}{secs}"
            + "".join(f"{counts.get(k, 0):>8.2f}" for k in KINDS)
            + f"{total(counts):>8.2f}"
        )

    row("first backup (not hourly)", first, first_s)
    for i, (counts, seconds) in enumerate(hours):
        row(f"hourly backup+forget, round {i + 1}", counts, seconds)
    row("hourly backup+forget, median", hourly, hourly_s)
    row("prune (once)", prune_counts, prune_s)
    row("check (once)", check_counts, check_s)
    row("drill (once)", drill_counts, drill_s)
    row("per PVC per hour (all jobs)", per_hour, None)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "hourly": hourly,
                    "hourly_seconds": [h[1] for h in hours],
                    "prune": prune_counts,
                    "prune_seconds": prune_s,
                    "check": check_counts,
                    "check_seconds": check_s,
                    "drill": drill_counts,
                    "drill_seconds": drill_s,
                    "per_hour": per_hour,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

"""Admission latency under load: the real WebhookServer over TLS on loopback, served from the cache.

Two processes, so the load generator does not share the server's interpreter:

* ``serve``: the production ``WebhookServer`` with a ``ClusterCache`` filled through its watch
  event handler (what the PVC watch does), TLS from a freshly bootstrapped CA;
* the driver: ``--clients`` keep-alive TLS connections (default 100), each sending realistic
  AdmissionReviews (tests/support/pods/02-multi-volume-projected.yaml: 3 PVCs, 2 labelled) and
  timing each one from the first byte written to the last byte read.

``--rate`` paces the aggregate request rate (open loop, Poisson-free fixed spacing per client);
``--rate 0`` runs closed loop (each client sends as soon as its previous reply arrived), which
measures saturation throughput rather than latency.

    .venv/bin/python bench/admission_load.py --clients 100 --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

ROOT = Path(__file__).resolve().parents[1]
POD_FILE = ROOT / "tests/support/pods/02-multi-volume-projected.yaml"


def review_body(case: dict, uid: str) -> bytes:
    pod = case["pod"]
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod["metadata"]["namespace"],
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:statefulset-controller"},
                "object": pod,
                "dryRun": False,
            },
        }
    ).encode()


def serve(port: int, tls_dir: Path) -> None:
    from injector.cache import CacheMiss, ClusterCache
    from injector.config import InjectorSettings
    from injector.metrics import Metrics
    from injector.server import Lookups, WebhookServer
    from injector.tls import ReloadingContext
    from lifeboat.logs import configure

    configure()  # production logging: one JSON line per injection (to stderr, discarded here)
    case = yaml.safe_load(POD_FILE.read_text())
    namespace = case["pod"]["metadata"]["namespace"]
    metrics = Metrics()
    cache = ClusterCache(core=None, metrics=metrics)
    for name, spec in case["pvcs"].items():
        meta = SimpleNamespace(
            name=name,
            namespace=namespace,
            uid=spec["uid"],
            labels=spec.get("labels"),
            annotations=spec.get("annotations"),
        )
        cache.apply_pvc_event("ADDED", SimpleNamespace(metadata=meta))
    settings = InjectorSettings(listen_host="127.0.0.1", port=port, plain_port_enabled=False)
    server = WebhookServer(
        settings,
        ReloadingContext(tls_dir / "tls.crt", tls_dir / "tls.key"),
        Lookups(fast=cache.cached, slow=cache.lookup, namespace_labels=lambda ns: None, miss=CacheMiss),
        metrics,
        native_sidecars=lambda: True,
        ready=lambda: True,
    )

    async def main() -> None:
        await server.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def client(
    port: int,
    context: ssl.SSLContext,
    bodies: list[bytes],
    interval: float,
    deadline: float,
    latencies: list[float],
    phase: float = 0.0,
) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    errors = 0
    i = 0
    next_send = time.perf_counter() + interval * phase  # spread clients evenly over the interval
    while time.perf_counter() < deadline:
        if interval:
            delay = next_send - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_send += interval
        body = bodies[i % len(bodies)]
        i += 1
        request = (
            b"POST /mutate?timeout=5s HTTP/1.1\r\nHost: lifeboat-injector.lifeboat.svc:443\r\n"
            b"Content-Type: application/json\r\nAccept: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        ) + body
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        payload = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 200") or b'"patch"' not in payload:
            errors += 1
    writer.close()
    return errors


async def drive(port: int, ca: bytes, clients: int, rate: float, seconds: float, warmup: float) -> dict:
    context = ssl.create_default_context(cadata=ca.decode())
    case = yaml.safe_load(POD_FILE.read_text())
    bodies = [review_body(case, f"uid-{n}") for n in range(64)]
    interval = clients / rate if rate else 0.0
    # Warm-up: connections, TLS sessions, first-call paths; discarded.
    scratch: list[float] = []
    await asyncio.gather(
        *(
            client(port, context, bodies, interval, time.perf_counter() + warmup, scratch, n / clients)
            for n in range(clients)
        )
    )
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(
            client(port, context, bodies, interval, started + seconds, latencies, n / clients)
            for n in range(clients)
        )
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {
        "clients": clients,
        "target_rate_per_s": rate or "closed-loop",
        "requests": len(ordered),
        "errors": sum(errors),
        "throughput_per_s": round(len(ordered) / elapsed, 1),
        "p50_ms": round(pct(50), 3),
        "p90_ms": round(pct(90), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "request_bytes": len(bodies[0]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500.0, help="aggregate requests/s; 0 = closed loop")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=18443)
    parser.add_argument("--tls-dir", type=Path)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.tls_dir)
        return 0

    from injector.tls import renew, write_files

    with tempfile.TemporaryDirectory() as tmp:
        bundle = renew(None, ["localhost"], dt.datetime.now(dt.UTC), 30, 1)
        write_files(bundle, Path(tmp))
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", "--port", str(args.port), "--tls-dir", tmp],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                print("server did not start", file=sys.stderr)
                return 1
            result = asyncio.run(
                drive(args.port, bundle.ca_cert, args.clients, args.rate, args.seconds, args.warmup)
            )
        finally:
            server.terminate()
            server.wait(10)
    result["command"] = " ".join(["bench/admission_load.py", *sys.argv[1:]])
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

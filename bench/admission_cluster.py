"""Added pod-CREATE latency of the webhook through the real kube-apiserver (the `make cluster-up` cluster).

Server-side dry-run creates (`dryRun=All`: admitted, mutated, validated, never stored) of the same
pod in two namespaces: one opted in (`lifeboat.dev/inject: enabled`, its PVC labelled
`backup: hourly`, so every create calls the webhook and gets injected) and a plain one (no
webhook call). The creates alternate between the two, so drift in the machine's load hits both
alike; the added latency is the opted-in figure minus the plain one, at p50 and p99,
sequentially and with `--concurrency` clients (each its own kept-alive HTTPS connection).

The apiserver's own counter of webhook calls
(`apiserver_admission_webhook_admission_duration_seconds_count{name="inject.lifeboat.dev"}`)
is read before and after: calls per opted-in create is 1 when nothing changes the pod after the
webhook, 2 when the apiserver had to call it again (`reinvocationPolicy: IfNeeded`).

By default the driver enters the cluster's network namespace (root; `nsenter`) and talks to the
apiserver directly, as a controller in the cluster does; `--via-forwarder` measures from the host
through cluster/up.sh's loopback forwarder instead.

    sudo .venv/bin/python bench/admission_cluster.py --creates 400 --concurrency 16
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBECONFIG = ROOT / ".cache" / "cluster" / "kubeconfig"
NETNS = os.environ.get("LIFEBOAT_NETNS", "lifeboat-e2e")
ON, OFF = "lifeboat-bench-admission-on", "lifeboat-bench-admission-off"
WEBHOOK = "inject.lifeboat.dev"
METRIC = "apiserver_admission_webhook_admission_duration_seconds_count"


class Api:
    """One kept-alive HTTPS connection to the apiserver with the kubeconfig's client certificate."""

    def __init__(self, kubeconfig: Path, server: str | None) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self._files = tempfile.TemporaryDirectory(prefix="lifeboat-bench-admission-")
        paths = {}
        for name in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            path = Path(self._files.name) / name
            path.write_bytes(base64.b64decode(cluster.get(name) or user[name]))
            paths[name] = str(path)
        self.context = ssl.create_default_context(cafile=paths["certificate-authority-data"])
        self.context.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
        where = urlsplit(server or cluster["server"])
        self.host, self.port = where.hostname or "", where.port or 443
        self.connection = self.connect()

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)

    def clone(self) -> Api:
        """Another client: same credentials, its own connection."""
        other = object.__new__(Api)
        other.context, other.host, other.port, other._files = self.context, self.host, self.port, self._files
        other.connection = other.connect()
        return other

    def call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        if response.status not in ok:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:400]!r}")
        if raw[:1] in (b"{", b"["):
            return json.loads(raw)
        return raw.decode()


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }


def set_up(api: Api) -> None:
    """Both namespaces, each with a PVC `data` (labelled for backup only where opted in)."""
    for namespace, labels in ((ON, {"lifeboat.dev/inject": "enabled"}), (OFF, {})):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
        api.call("POST", "/api/v1/namespaces", body, ok=(201, 409))
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "labels": {"backup": "hourly"} if namespace == ON else {}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        }
        api.call("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", claim, ok=(201, 409))
    # the injector sees the PVC through its watch: wait until an opted-in create is injected
    deadline = time.monotonic() + 60
    while True:
        created = create(api, ON, "warm-up")
        if created.get("spec", {}).get("initContainers"):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"pods in {ON} are not injected: is Lifeboat installed (make cluster-up)?")
        time.sleep(1)


def create(api: Api, namespace: str, name: str) -> dict[str, Any]:
    result = api.call("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod(name), ok=(201,))
    return result if isinstance(result, dict) else {}


def webhook_calls(api: Api) -> tuple[float, float]:
    """The apiserver's count of calls to Lifeboat's webhook and their total seconds, every label
    summed (the `_sum` is the webhook's share of the added latency, TLS and network included)."""
    text = api.call("GET", "/metrics")
    total = seconds = 0.0
    for line in str(text).splitlines():
        if f'name="{WEBHOOK}"' not in line:
            continue
        if line.startswith(METRIC + "{"):
            total += float(line.rpartition(" ")[2])
        elif line.startswith(METRIC.replace("_count", "_sum") + "{"):
            seconds += float(line.rpartition(" ")[2])
    return total, seconds


def run(api: Api, creates: int, clients: int) -> tuple[list[float], list[float]]:
    """`creates` per namespace, alternating, spread over `clients` connections; seconds each."""
    on: list[float] = []
    off: list[float] = []
    lock = threading.Lock()
    per_client = creates // clients

    def client(number: int) -> None:
        own = api if clients == 1 else api.clone()
        for i in range(per_client):
            order = (ON, OFF) if (i + number) % 2 == 0 else (OFF, ON)
            for namespace in order:
                started = time.perf_counter()
                create(own, namespace, f"bench-{number}-{i}")
                took = time.perf_counter() - started
                with lock:
                    (on if namespace == ON else off).append(took)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return on, off


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, on: list[float], off: list[float]) -> None:
    ms = 1000.0
    p50_on, p50_off = statistics.median(on) * ms, statistics.median(off) * ms
    p99_on, p99_off = percentile(on, 0.99) * ms, percentile(off, 0.99) * ms
    print(
        f"{label:24} opted-in p50 {p50_on:6.2f} p99 {p99_on:6.2f} ms | plain p50 {p50_off:6.2f} "
        f"p99 {p99_off:6.2f} ms | added p50 {p50_on - p50_off:+6.2f} p99 {p99_on - p99_off:+6.2f} ms"
        f"  (n={len(on)}+{len(off)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=400, help="dry-run creates per namespace per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kubeconfig", type=Path, default=KUBECONFIG)
    parser.add_argument("--via-forwarder", action="store_true", help="from the host, through 127.0.0.1:16443")
    parser.add_argument("--keep", action="store_true", help="keep the two namespaces")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.via_forwarder and not args.in_netns:
        argv = ["nsenter", f"--net=/run/netns/{NETNS}", "--", sys.executable, *sys.argv, "--in-netns"]
        return subprocess.call(argv)
    api = Api(args.kubeconfig, None if args.via_forwarder else "https://127.0.0.1:6443")
    where = "host, through the forwarder" if args.via_forwarder else f"inside netns {NETNS}, direct"
    try:
        set_up(api)
        before, before_s = webhook_calls(api)
        on, off = run(api, args.creates, 1)
        after, after_s = webhook_calls(api)
        calls = after - before
        print(f"apiserver {api.host}:{api.port} ({where}); load average {os.getloadavg()[0]:.2f}")
        report("sequential", on, off)
        print(
            f"{'':24} webhook calls per opted-in create: {calls / len(on):.2f} "
            f"({calls:.0f} calls for {len(on)} creates; {METRIC}); "
            f"mean call as the apiserver timed it {1000 * (after_s - before_s) / max(calls, 1):.2f} ms"
        )
        if args.concurrency > 1:
            before, before_s = webhook_calls(api)
            on, off = run(api, args.creates, args.concurrency)
            after, after_s = webhook_calls(api)
            report(f"{args.concurrency} concurrent clients", on, off)
            print(
                f"{'':24} webhook calls per opted-in create: {(after - before) / len(on):.2f}; mean call "
                f"as the apiserver timed it {1000 * (after_s - before_s) / max(after - before, 1):.2f} ms"
            )
        print(f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            for namespace in (ON, OFF):
                api.call("DELETE", f"/api/v1/namespaces/{namespace}", ok=(200, 202, 404))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Store faults for the reliability bench and tests: a toxiproxy server on loopback and its HTTP API.

Not used in production (the image never ships it). `make setup` builds toxiproxy with Go and caches
it by version (scripts/setup.sh); this module starts `toxiproxy-server` on a free loopback port,
puts one proxy between restic/boto3 and a throwaway S3 server (devtools.devstore), and adds or
removes faults ("toxics") through toxiproxy's own REST API. The API is five calls; the PyPI client
(toxiproxy-python) has not been released since 2019 and targets toxiproxy 1.x, so a few lines of
`urllib` speak to it instead.

The faults the bench uses, by the name it gives them:

| name | toxiproxy | what the client sees |
|---|---|---|
| `latency` | `latency` downstream | every answer late by `latency_ms` |
| `bandwidth` | `bandwidth` both ways | `rate_kb` KB/s each way |
| `reset` | `limit_data` downstream | each connection closed after `bytes` bytes: a reset mid-transfer |
| `timeout` | `timeout` downstream | connections accepted, no answer, closed after `timeout_ms` |
| `cut` | the proxy disabled | open connections dropped, new ones refused |
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.devstore import free_port

FAULTS = ("latency", "bandwidth", "reset", "timeout", "cut")


def binary() -> str:
    here = Path(sys.executable).parent / "toxiproxy-server"
    if here.exists():
        return str(here)
    found = shutil.which("toxiproxy-server")
    if not found:
        raise FileNotFoundError("toxiproxy-server is not installed; run `make setup`")
    return found


@dataclass(frozen=True)
class Fault:
    """One fault and its strength; `toxics` is what toxiproxy is told (empty for a cut)."""

    name: str
    latency_ms: int = 2000
    rate_kb: int = 100
    bytes: int = 64 * 1024
    timeout_ms: int = 5000

    def toxics(self) -> list[dict[str, Any]]:
        if self.name == "latency":
            return [_toxic("latency", "downstream", latency=self.latency_ms, jitter=0)]
        if self.name == "bandwidth":
            return [
                _toxic("bandwidth", "downstream", rate=self.rate_kb),
                _toxic("bandwidth", "upstream", rate=self.rate_kb),
            ]
        if self.name == "reset":
            return [_toxic("limit_data", "downstream", bytes=self.bytes)]
        if self.name == "timeout":
            return [_toxic("timeout", "downstream", timeout=self.timeout_ms)]
        if self.name == "cut":
            return []
        raise ValueError(f"unknown fault {self.name!r}; use one of {', '.join(FAULTS)}")

    def describe(self) -> str:
        return {
            "latency": f"latency {self.latency_ms / 1000:g} s",
            "bandwidth": f"bandwidth {self.rate_kb} KB/s",
            "reset": f"reset after {self.bytes // 1024} KiB",
            "timeout": f"timeout {self.timeout_ms / 1000:g} s",
            "cut": "store cut",
        }[self.name]


def _toxic(kind: str, stream: str, **attributes: int) -> dict[str, Any]:
    return {
        "name": f"{kind}_{stream}",
        "type": kind,
        "stream": stream,
        "toxicity": 1.0,
        "attributes": attributes,
    }


@dataclass
class Toxiproxy:
    """A running toxiproxy-server and one proxy, `name`, in front of `upstream` (host:port)."""

    workdir: Path
    upstream: str
    name: str = "store"
    api_port: int = 0
    listen_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def endpoint(self) -> str:
        """The S3 endpoint clients use instead of the store's own."""
        return f"http://127.0.0.1:{self.listen_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.listen_port = free_port()
        log = (self.workdir / "toxiproxy.log").open("ab")
        self.proc = subprocess.Popen(
            [binary(), "-host", "127.0.0.1", "-port", str(self.api_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/version")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"toxiproxy did not start; see {self.workdir / 'toxiproxy.log'}"
                    ) from None
                time.sleep(0.1)
        self._call(
            "POST",
            "/proxies",
            {
                "name": self.name,
                "listen": f"127.0.0.1:{self.listen_port}",
                "upstream": self.upstream,
                "enabled": True,
            },
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        # self.api is always http://127.0.0.1:PORT (built in start), never a caller's URL
        request = urllib.request.Request(self.api + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"toxiproxy {method} {path}: {exc.code} {exc.read()!r}") from None
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:  # /version answers plain text in 2.5
            return raw.decode(errors="replace")

    # -- faults ----------------------------------------------------------------------------------

    def apply(self, fault: Fault) -> None:
        """Turns `fault` on; a cut drops open connections and refuses new ones."""
        if fault.name == "cut":
            self._call("POST", f"/proxies/{self.name}", {"enabled": False})
            return
        for toxic in fault.toxics():
            self._call("POST", f"/proxies/{self.name}/toxics", toxic)

    def clear(self) -> None:
        """Every fault off: the proxy enabled, no toxics (toxiproxy's own reset)."""
        self._call("POST", "/reset")

    def toxics(self) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/proxies/{self.name}/toxics") or [])

    def enabled(self) -> bool:
        return bool(self._call("GET", f"/proxies/{self.name}")["enabled"])


@contextlib.contextmanager
def running(workdir: Path, upstream_endpoint: str) -> Iterator[Toxiproxy]:
    """A toxiproxy in front of `upstream_endpoint` (http://host:port), stopped on exit."""
    upstream = upstream_endpoint.removeprefix("http://").removeprefix("https://").rstrip("/")
    proxy = Toxiproxy(workdir, upstream)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()

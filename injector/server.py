"""The webhook's HTTPS server: a small asyncio HTTP/1.1 server with keep-alive.

The API server keeps connections to a webhook open and sends one small POST after another;
what matters is latency per request, not features. A stdlib asyncio server answers a cached
admission on the event loop with no thread hop, which is how the p99 target is met (see
docs/BENCHMARKS.md). It checks what it must before reading a body: method, path, content type,
and ``Content-Length`` against ``max_request_bytes``; every error is a small JSON reply.

Endpoints: ``POST /mutate`` (HTTPS only), ``GET /healthz``, ``GET /readyz``, ``GET /metrics``
(on both the HTTPS port and the optional plain port used by probes and Prometheus).

Shutdown (``draining``, then ``close``) loses no admission: while draining, every reply carries
``Connection: close``, so an API server holding a keep-alive connection (pinned to this replica
by conntrack when it reaches webhooks through the Service's ClusterIP) opens its next one to a
live replica; ``close`` stops accepting, waits for requests in flight, then drops idle connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST

from injector.admission import NamespaceLabels, PvcLookup, Reply, review
from injector.config import InjectorSettings
from injector.metrics import Metrics
from injector.tls import ReloadingContext
from lifeboat.logs import event

log = logging.getLogger("lifeboat.injector.server")

HEADER_LIMIT = 64 * 1024
IDLE_TIMEOUT = 120.0
BODY_TIMEOUT = 10.0
CLOSE_GRACE = 5.0  # close(): how long requests in flight may take to finish
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Lookups:
    """How admission reads PVCs: ``fast`` may raise a LookupError subclass meaning "needs I/O"."""

    fast: PvcLookup
    slow: PvcLookup
    namespace_labels: NamespaceLabels
    miss: type[Exception] = LookupError


def _response(status: int, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    )
    return head.encode("latin-1") + body


def _error(status: int, message: str, close: bool = False) -> bytes:
    return _response(status, json.dumps({"error": message}).encode(), close=close)


def _closing(reply: bytes) -> bytes:
    """A keep-alive reply of ``_response`` turned into its last one on the connection."""
    return reply.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


class WebhookServer:
    def __init__(
        self,
        settings: InjectorSettings,
        tls: ReloadingContext,
        lookups: Lookups,
        metrics: Metrics,
        native_sidecars: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.lookups = lookups
        self.metrics = metrics
        self.native_sidecars = native_sidecars
        self.ready = ready
        self.draining = False
        self._servers: list[asyncio.Server] = []
        self._reload_task: asyncio.Task[None] | None = None
        self._idle: set[asyncio.StreamWriter] = set()  # connections waiting for their next request
        self._in_flight = 0

    async def start(self) -> list[int]:
        """Starts listening; returns the bound ports (HTTPS first), useful when asked for port 0."""
        s = self.settings
        secure = await asyncio.start_server(
            lambda r, w: self._connection(r, w, secure=True),
            s.listen_host,
            s.port,
            ssl=self.tls.context,
            limit=HEADER_LIMIT,
            backlog=1024,
        )
        self._servers.append(secure)
        if s.plain_port_enabled:
            plain = await asyncio.start_server(
                lambda r, w: self._connection(r, w, secure=False),
                s.listen_host,
                s.plain_port,
                limit=HEADER_LIMIT,
            )
            self._servers.append(plain)
        self._reload_task = asyncio.create_task(self._reload_loop())
        ports = [srv.sockets[0].getsockname()[1] for srv in self._servers]
        event(log, "server.listening", ports=ports, tls=True)
        return ports

    async def close(self) -> None:
        if self._reload_task:
            self._reload_task.cancel()
        for srv in self._servers:
            srv.close()
        deadline = time.monotonic() + CLOSE_GRACE
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for writer in list(self._idle):
            writer.close()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), CLOSE_GRACE)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tls_reload_seconds)
            if self.tls.maybe_reload():
                event(log, "tls.reloaded", cert=str(self.tls.cert_file))

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secure: bool
    ) -> None:
        try:
            while True:
                self._idle.add(writer)
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
                except asyncio.LimitOverrunError:
                    writer.write(_error(431, "request headers exceed 64 KiB", close=True))
                    break
                finally:
                    self._idle.discard(writer)
                self._in_flight += 1
                try:
                    reply, keep_alive = await self._request(head, reader, secure)
                    if keep_alive and self.draining:
                        reply, keep_alive = _closing(reply), False
                    writer.write(reply)
                    await writer.drain()
                finally:
                    self._in_flight -= 1
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except Exception as exc:  # never let one connection take the server down
            event(log, "server.connection_error", logging.ERROR, error=exc.__class__.__name__)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _request(self, head: bytes, reader: asyncio.StreamReader, secure: bool) -> tuple[bytes, bool]:
        """One request: returns the full response bytes and whether to keep the connection."""
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return _error(400, "malformed request line", close=True), False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]

        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _error(411, "send the body with Content-Length, not chunked", close=True), False
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError
        except ValueError:
            return _error(400, "Content-Length is not a non-negative integer", close=True), False
        if length > self.settings.max_request_bytes:
            # The body is not read, so the connection cannot be reused.
            return _error(
                413, f"request body of {length} bytes exceeds {self.settings.max_request_bytes}", close=True
            ), False
        body = b""
        if length:
            try:
                body = await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT)
            except TimeoutError:
                return _error(408, "request body not received in time", close=True), False

        if path == "/mutate" and secure:
            if method != "POST":
                return _error(405, "use POST for /mutate"), keep_alive
            content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                return _error(415, f"Content-Type must be application/json, not {content_type!r}"), keep_alive
            started = time.perf_counter()
            reply = await self._mutate(body)
            self.metrics.latency.observe(time.perf_counter() - started)
            self.metrics.admissions.labels(reply.outcome).inc()
            return _response(reply.status, reply.body), keep_alive
        if method != "GET" and path in ("/healthz", "/readyz", "/metrics"):
            return _error(405, f"use GET for {path}"), keep_alive
        if path == "/healthz":
            return _response(200, b'{"status":"ok"}'), keep_alive
        if path == "/readyz":
            ok = self.ready() and not self.draining
            return _response(200 if ok else 503, b'{"ready":%s}' % (b"true" if ok else b"false")), keep_alive
        if path == "/metrics":
            return _response(200, self.metrics.render(), CONTENT_TYPE_LATEST), keep_alive
        return _error(404, f"no such endpoint {path!r}"), keep_alive

    async def _mutate(self, body: bytes) -> Reply:
        native = self.native_sidecars()
        lk = self.lookups
        try:
            try:
                return review(body, self.settings, lk.fast, lk.namespace_labels, native)
            except lk.miss:
                return await asyncio.to_thread(
                    review, body, self.settings, lk.slow, lk.namespace_labels, native
                )
        except Exception as exc:  # review() answers bad input itself; this is the last line
            # Without it the connection would close with no reply and one log line; with it the
            # API server gets a 500 (failurePolicy Fail: the pod is refused, never admitted bare).
            event(log, "admission.crashed", logging.ERROR, error=exc.__class__.__name__)
            message = f"Lifeboat injector internal error ({exc.__class__.__name__}); the pod was not admitted"
            return Reply(500, json.dumps({"error": message}).encode(), "denied")

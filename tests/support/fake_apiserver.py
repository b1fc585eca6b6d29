"""A tiny in-memory stand-in for the Kubernetes API, enough for `lifeboat injector serve`.

It speaks the real REST paths and JSON shapes the official Python client uses (list, watch,
get, create, replace, delete), so the end-to-end test exercises the client's (de)serialisation
and the injector's wiring. Watches return no events and end after a moment; the injector then
relists, which is how changes propagate here. It is not an API server: no validation, no auth.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeApi:
    def __init__(self, minor: str = "33") -> None:
        self.lock = threading.Lock()
        self.version = {
            "major": "1",
            "minor": minor,
            "gitVersion": f"v1.{minor}.0",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name)
        self.rv = 1
        self.requests: list[tuple[str, str]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    # Store ---------------------------------------------------------------------------------

    def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("uid", f"uid-{kind}-{meta.get('namespace', '')}-{meta['name']}")
            if kind == "secrets" and "stringData" in obj:
                data = obj.setdefault("data", {}) or {}
                data.update(
                    {k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()}
                )
                obj["data"] = data
            self.objects[(kind, meta.get("namespace", ""), meta["name"])] = obj
            return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (k, ns, _), o in sorted(self.objects.items()) if k == kind and namespace in (None, ns)]

    def start(self) -> FakeApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def kubeconfig(self) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )

    # HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, what: str) -> None:
                self._send(
                    404,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "NotFound",
                        "message": f"{what} not found",
                        "code": 404,
                    },
                )

            def _route(self) -> tuple[str, str, str | None, dict[str, list[str]]]:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                path = url.path
                m = re.fullmatch(
                    r"/apis/admissionregistration\.k8s\.io/v1/mutatingwebhookconfigurations(?:/([^/]+))?",
                    path,
                )
                if m:
                    return "mutatingwebhookconfigurations", "", m.group(1), query
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?", path)
                if m:
                    return m.group(2), m.group(1), m.group(3), query
                m = re.fullmatch(r"/api/v1/([a-z]+)(?:/([^/]+))?", path)
                if m:
                    kind = m.group(1)
                    return kind, "", m.group(2), query
                return "", "", None, query

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length", "0"))
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                if self.path.startswith("/version"):
                    return self._send(200, api.version)
                kind, ns, name, query = self._route()
                if query.get("watch") == ["true"] or query.get("watch") == ["True"]:
                    time.sleep(0.5)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if kind == "namespaces" and name is None and not ns:
                    items = api.of_kind("namespaces")
                    return self._send(
                        200,
                        {
                            "kind": "NamespaceList",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(api.rv)},
                            "items": items,
                        },
                    )
                if kind == "namespaces" and name:
                    obj = api.get("namespaces", "", name)
                    return self._send(200, obj) if obj else self._not_found(name)
                if name is None:
                    items = api.of_kind(kind, ns or None)
                    return self._send(
                        200,
                        {
                            "kind": "List",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(api.rv)},
                            "items": items,
                        },
                    )
                obj = api.get(kind, ns, name)
                return self._send(200, obj) if obj else self._not_found(f"{kind} {ns}/{name}")

            def do_POST(self) -> None:
                api.requests.append(("POST", self.path))
                kind, ns, _, _ = self._route()
                body = self._body()
                body.setdefault("metadata", {})["namespace"] = ns
                if api.get(kind, ns, body["metadata"]["name"]):
                    return self._send(
                        409,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "reason": "AlreadyExists",
                            "code": 409,
                        },
                    )
                return self._send(201, api.put(kind, body))

            def do_PUT(self) -> None:
                api.requests.append(("PUT", self.path))
                kind, ns, name, _ = self._route()
                body = self._body()
                current = api.get(kind, ns, name or "")
                if current is None:
                    return self._not_found(f"{kind} {ns}/{name}")
                sent_rv = (body.get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                    return self._send(
                        409,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "reason": "Conflict",
                            "code": 409,
                        },
                    )
                if ns:
                    body["metadata"]["namespace"] = ns
                return self._send(200, api.put(kind, body))

            def do_DELETE(self) -> None:
                api.requests.append(("DELETE", self.path))
                kind, ns, name, _ = self._route()
                with api.lock:
                    gone = api.objects.pop((kind, ns, name or ""), None)
                return (
                    self._send(200, {"kind": "Status", "status": "Success"})
                    if gone
                    else self._not_found(str(name))
                )

        return Handler

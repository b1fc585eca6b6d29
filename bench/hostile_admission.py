"""Hostile AdmissionReviews against the real webhook server, over TLS on a loopback socket.

A seeded generator (not hypothesis: bodies of 3 MiB, 100 containers or 65,000 ports do not fit
hypothesis's example buffer, and a seed plus an index reproduces any single case exactly) builds
``--count`` requests from the realistic pods in tests/support/pods/, in these families:

* ``valid``: a realistic review, lightly varied (uid, namespace, PVCs, container names);
* ``mutated``: a realistic review with one to three random nodes deleted or replaced by a hostile
  value (null, numbers, strings, lists, objects, deep nesting) at any level of the document;
* ``shapes``: targeted wrong shapes: no request / uid / object / spec / metadata, object or spec
  not an object, volumes not a list, odd volume entries, claimName not a string, empty, unicode;
* ``unicode``: unicode in names, namespaces, claims, annotations and the uid (RTL, emoji,
  combining marks, NUL, lone surrogates), raw UTF-8 or escaped;
* ``many``: 100 containers, 100 init containers, many volumes and ports;
* ``all-ports``: containers declaring every port from 1024 to 65535;
* ``malformed``: truncated JSON, random bytes, trailing garbage, empty and whitespace bodies;
* ``non-utf8``: invalid UTF-8 inside strings, Latin-1, overlong sequences, UTF-16/UTF-32 bodies;
* ``deep``: nesting from 50 to 200,000 levels, at the top or inside the pod;
* ``huge``: bodies exactly at, and just under, ``max_request_bytes``; Content-Lengths just and far
  over it (the headers only: the server answers 413 from them and closes the connection);
* ``envelope``: wrong apiVersion / kind, a top level that is not an object;
* ``request``: wrong operations, resources, subresources, namespaces;
* ``content-type`` and ``method``: wrong or missing Content-Type, methods other than POST.

Every case is sent twice, in two passes over the whole sequence, so the second reply comes after
thousands of other requests. Each reply is checked against an oracle that reads the request the
way the contract says (docs/RELIABILITY.md): HTTP 200 with an AdmissionReview echoing the uid when
the body is an ``admission.k8s.io/v1`` AdmissionReview with a uid, else a 4xx JSON error.

Counted as a crash: a 5xx, a denial with status code 500 (an internal error), no reply (closed
connection or ``--timeout``), an ERROR log record, an asyncio loop exception, a log record that
cannot be rendered, or ``/healthz`` failing afterwards.

    .venv/bin/python bench/hostile_admission.py --count 10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import datetime as dt
import hashlib
import io
import json
import logging
import random
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PODS_DIR = ROOT / "tests/support/pods"
API_VERSION = "admission.k8s.io/v1"
DEFAULT_SEED = 20261126
DEFAULT_MAX_BYTES = 3 * 1024 * 1024  # the injector's default max_request_bytes

# Claims the PVC table answers beyond the realistic ones: a cache miss (the worker-thread path),
# bad annotations (denials naming the annotation), a label that is not backed up (a warning), unicode.
MISS_PREFIX = "miss-"
EXTRA_PVCS: dict[str, dict[str, Any]] = {
    "bad-schedule": {
        "labels": {"backup": "daily"},
        "annotations": {"lifeboat.dev/schedule": "every tuesday"},
    },
    "bad-retention": {"labels": {"backup": "hourly"}, "annotations": {"lifeboat.dev/retention": "forever"}},
    "bad-snapshot": {"labels": {"backup": "daily"}, "annotations": {"lifeboat.dev/restore-snapshot": "yes"}},
    "weekly": {"labels": {"backup": "weekly"}},
    "données-ü": {"labels": {"backup": "hourly"}},
    "数据": {"labels": {"backup": "daily"}, "annotations": {"lifeboat.dev/adopt": "true"}},
    "miss-data": {"labels": {"backup": "daily"}},
}
UNICODE = [
    "données",
    "数据",
    "💾🛟",
    "\u202eevil",
    "e\u0301",
    "\uff44\uff41\uff54\uff41",  # fullwidth "data"
    "zero\u200bwidth",
    "nul\x00byte",
    "\ud800",
    "\udfff\ud800",
    "Ω≈ç√∫",
    "line\nbreak",
    "quote\"'\\",
    "données-ü",
    "数据",
]
HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    2**63,
    -(2**63) - 1,
    "",
    " ",
    "x",
    "\x00",
    "\ud800",
    "💾",
    "a" * 2000,
    [],
    [None],
    [[[]]],
    {},
    {"": ""},
    {"persistentVolumeClaim": {"claimName": "data"}},
    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
]
CONTENT_TYPES = [
    "text/plain",
    "",
    None,
    "application/json-patch+json",
    "application/jsonx",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/yaml",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    " application/json ;charset=latin-1",
    "application/json\x7f",
]
METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "post", "HEAD"]
KINDS: dict[str, float] = {
    "valid": 16,
    "mutated": 22,
    "shapes": 18,
    "unicode": 8,
    "many": 3,
    "all-ports": 0.3,
    "malformed": 8,
    "non-utf8": 5,
    "deep": 3,
    "huge": 1.2,
    "envelope": 4,
    "request": 5,
    "content-type": 4,
    "method": 2.5,
}


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    content_type: str | None = "application/json"
    method: str = "POST"
    declared_length: int | None = None  # sent as Content-Length with no body (over the limit)


def load_pods() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(PODS_DIR.glob("*.yaml"))]


def pvc_specs(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for case in cases:
        for name, spec in (case.get("pvcs") or {}).items():
            specs.setdefault(name, spec)
    for name, spec in EXTRA_PVCS.items():
        specs.setdefault(name, {"uid": f"uid-{name}", **spec})
    return specs


def encode(doc: Any, rng: random.Random) -> bytes:
    """JSON as a client might write it: compact or indented, escaped or raw UTF-8."""
    raw = rng.random() < 0.3
    text = json.dumps(
        doc,
        ensure_ascii=not raw,
        indent=rng.choice([None, None, None, 1, "\t"]),
        separators=rng.choice([None, (",", ":")]),
    )
    return text.encode("utf-8", "surrogatepass") if raw else text.encode()


class Generator:
    """Case ``i`` of seed ``s`` is always the same bytes: ``random.Random(f"{s}:{i}")`` drives it."""

    def __init__(self, seed: int, max_bytes: int) -> None:
        self.seed = seed
        self.max_bytes = max_bytes
        self.pods = load_pods()
        self.claims = sorted(pvc_specs(self.pods))
        self.kinds = list(KINDS)
        self.weights = [KINDS[k] for k in self.kinds]

    def case(self, index: int) -> Case:
        rng = random.Random(f"{self.seed}:{index}")
        kind = rng.choices(self.kinds, self.weights)[0]
        build: Callable[[random.Random], Case] = getattr(self, "_" + kind.replace("-", "_"))
        return build(rng)

    # Building blocks ---------------------------------------------------------------------------

    def review(self, rng: random.Random) -> dict[str, Any]:
        case = rng.choice(self.pods)
        pod = copy.deepcopy(case["pod"])
        namespace = pod.get("metadata", {}).get("namespace") or "default"
        if rng.random() < 0.3:
            extra = rng.sample(self.claims, rng.randint(1, 3))
            pod["spec"].setdefault("volumes", []).extend(
                {"name": f"extra-{i}", "persistentVolumeClaim": {"claimName": claim}}
                for i, claim in enumerate(extra)
            )
        return {
            "apiVersion": API_VERSION,
            "kind": "AdmissionReview",
            "request": {
                "uid": f"{rng.getrandbits(64):016x}-{rng.randint(0, 9999)}",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": None,
                "dryRun": rng.random() < 0.1,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }

    def hostile(self, rng: random.Random) -> Any:
        roll = rng.random()
        if roll < 0.1:
            return rng.choice(UNICODE)
        if roll < 0.15:
            depth = rng.choice([5, 50, 150])  # stacked by up to 3 mutations: under 500
            value: Any = "bottom"
            for _ in range(depth):
                value = [value] if rng.random() < 0.5 else {"a": value}
            return value
        return copy.deepcopy(rng.choice(HOSTILE))

    # Families ----------------------------------------------------------------------------------

    def _valid(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        request = doc["request"]
        pod = request["object"]
        roll = rng.random()
        if roll < 0.15:
            for volume in pod["spec"].get("volumes") or []:
                if "persistentVolumeClaim" in volume:
                    volume["persistentVolumeClaim"]["claimName"] = rng.choice(self.claims)
        elif roll < 0.2:
            request["namespace"] = rng.choice(["kube-system", "lifeboat", "kube-node-lease"])
        elif roll < 0.25:
            pod["metadata"].setdefault("annotations", {})["lifeboat.dev/skip"] = rng.choice(["true", "TRUE"])
        elif roll < 0.3:
            pod["spec"]["containers"][0]["name"] = "lifeboat-backup"
        elif roll < 0.35:
            pod["spec"]["initContainers"] = [{"name": "lifeboat-restore", "image": "x"}]
        elif roll < 0.4:
            pod["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": rng.choice([0, -5, 2**40])}
        elif roll < 0.45:
            pod["spec"]["terminationGracePeriodSeconds"] = rng.choice([-1, 0, 10**15, "30", 1.5, None])
        elif roll < 0.5:
            pod["metadata"].pop("name", None)
            pod["metadata"]["generateName"] = "web-"
        return Case("valid", encode(doc, rng))

    def _mutated(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        for _ in range(rng.randint(1, 3)):
            paths = list(_walk(doc, ()))
            path = rng.choice(paths[1:])  # never the root itself
            parent = _get(doc, path[:-1])
            key = path[-1]
            if rng.random() < 0.4:
                del parent[key]
            else:
                parent[key] = self.hostile(rng)
        return Case("mutated", encode(doc, rng))

    def _shapes(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        request = doc["request"]
        pod = request["object"]
        spec = pod["spec"]
        claim_values: list[Any] = [
            None,
            5,
            "",
            " ",
            [],
            {},
            "données",
            "\ud800",
            "a" * 300,
            "x/../y",
            "data\x00",
        ]
        volume_shapes: list[Any] = [
            None,
            5,
            "data",
            [],
            {},
            {"name": "data"},
            {"persistentVolumeClaim": {"claimName": "data"}},
            {"name": 5, "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "data", "persistentVolumeClaim": None},
            {"name": "data", "persistentVolumeClaim": "data"},
            {"name": "data", "persistentVolumeClaim": []},
            {"name": "data", "persistentVolumeClaim": {}},
            {"name": "data", "persistentVolumeClaim": {"claimName": rng.choice(claim_values)}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": "yes"}},
            {"name": ["data"], "emptyDir": {}},
        ]
        edits: list[Callable[[], None]] = [
            lambda: doc.pop("request"),
            lambda: doc.update(request=rng.choice([None, [], "req", 5, True])),
            lambda: request.pop("uid"),
            lambda: request.update(uid=rng.choice(["", 5, None, ["u"], {"u": 1}, 1.5, True])),
            lambda: request.pop("object"),
            lambda: request.update(object=rng.choice([None, [], "pod", 5, True])),
            lambda: pod.pop("spec"),
            lambda: pod.update(spec=rng.choice([None, [], "spec", 5, {}])),
            lambda: pod.pop("metadata"),
            lambda: pod.update(metadata=rng.choice([None, [], "meta", 5, {}])),
            lambda: pod["metadata"].update(annotations=rng.choice([None, [], "a=b", 5, {"a": 5}])),
            lambda: pod["metadata"].update(
                annotations={"lifeboat.dev/skip": rng.choice([True, 1, None, []])}
            ),
            lambda: pod["metadata"].update(name=rng.choice([5, None, [], {"a": 1}])),
            lambda: pod["metadata"].update(namespace=rng.choice([5, None, [], ""])),
            lambda: spec.update(volumes=rng.choice([None, {}, "data", 5, True, {"data": {}}])),
            lambda: spec.update(volumes=[rng.choice(volume_shapes) for _ in range(rng.randint(1, 4))]),
            lambda: spec.setdefault("volumes", []).append(copy.deepcopy(rng.choice(volume_shapes))),
            lambda: spec.update(containers=rng.choice([None, {}, "app", 5, [None], [5], ["app"], [[]]])),
            lambda: spec.update(initContainers=rng.choice([{}, "init", 5, [None], [{"name": {"a": 1}}]])),
            lambda: spec["containers"][0].update(name=rng.choice([5, None, ["a"], {"a": 1}, ""])),
            lambda: spec["containers"][0].update(
                ports=rng.choice([5, "80", {}, [5], [None], [{"containerPort": "80"}]])
            ),
            lambda: spec.update(securityContext=rng.choice([[], "root", 5, {"runAsUser": "0"}])),
        ]
        for edit in rng.sample(edits, rng.randint(1, 2)):
            # an earlier edit may have removed what this one changes
            with contextlib.suppress(KeyError, TypeError, AttributeError, IndexError):
                edit()
        return Case("shapes", encode(doc, rng))

    def _unicode(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        request = doc["request"]
        pod = request["object"]
        u: Callable[[], str] = lambda: rng.choice(UNICODE)  # noqa: E731
        edits: list[Callable[[], None]] = [
            lambda: pod["metadata"].update(name=u()),
            lambda: request.update(namespace=u()),
            lambda: request.update(uid=u()),
            lambda: pod["metadata"].setdefault("annotations", {}).update({u(): u()}),
            lambda: pod["spec"]["containers"][0].update(name=u()),
            lambda: (
                pod["spec"]
                .setdefault("volumes", [])
                .append({"name": u(), "persistentVolumeClaim": {"claimName": u()}})
            ),
        ]
        for edit in rng.sample(edits, rng.randint(1, len(edits))):
            edit()
        return Case("unicode", encode(doc, rng))

    def _many(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        spec = doc["request"]["object"]["spec"]
        n = rng.choice([100, 100, 250])
        spec["containers"] = [
            {
                "name": f"c{i}",
                "image": "busybox",
                "ports": [{"containerPort": 9090 + i}] if rng.random() < 0.5 else [],
                "volumeMounts": [{"name": "data", "mountPath": f"/d{i}"}],
            }
            for i in range(n)
        ]
        if rng.random() < 0.5:
            spec["initContainers"] = [{"name": f"i{i}", "image": "busybox"} for i in range(100)]
        if rng.random() < 0.5:
            spec["volumes"] = [
                {"name": f"lifeboat-state{'-' + str(i) if i > 1 else ''}", "emptyDir": {}} for i in range(100)
            ]
            spec["volumes"] += [
                {"name": f"v{i}", "persistentVolumeClaim": {"claimName": rng.choice(self.claims)}}
                for i in range(100)
            ]
        return Case("many", encode(doc, rng))

    def _all_ports(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        pod = doc["request"]["object"]
        pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        low = rng.choice([1024, 1, 1025])  # 1025: one port left, so the sidecar still fits
        ports = [{"containerPort": p} for p in range(low, 65536)]
        half = len(ports) // 2
        pod["spec"]["containers"] = [
            {"name": "a", "image": "x", "ports": ports[:half]},
            {"name": "b", "image": "x", "ports": ports[half:]},
        ]
        return Case("all-ports", json.dumps(doc, separators=(",", ":")).encode())

    def _malformed(self, rng: random.Random) -> Case:
        good = encode(self.review(rng), rng)
        options: list[Callable[[], bytes]] = [
            lambda: good[: rng.randint(0, len(good) - 1)],
            lambda: good + rng.choice([b"}", b"garbage", b"\x00", b"{}", b",", b"\n\n{"]),
            lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),
            lambda: rng.choice([b"", b" ", b"\n", b"\t\r\n", b"null", b"{", b"}", b"[", b'"', b"{}{}"]),
            lambda: rng.choice(
                [b"{'apiVersion': 'admission.k8s.io/v1'}", b'{"a":}', b'{"a" 1}', b"[1,]", b'{"a":1,}']
            ),
            lambda: good.replace(b":", b"=", 1),
            lambda: good.replace(b'"', b"", rng.randint(1, 5)),
            lambda: b"\xef\xbb\xbf" + good,  # a UTF-8 byte-order mark: still JSON
            lambda: good.replace(b"true", b"True").replace(b"null", b"None"),
            lambda: good.replace(b'"CREATE"', b'"CRE\\qATE"'),
        ]
        return Case("malformed", rng.choice(options)())

    def _non_utf8(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        good = json.dumps(doc).encode()
        name = doc["request"]["object"]["metadata"].get("name", "web").encode()
        options: list[Callable[[], bytes]] = [
            lambda: good.replace(
                name,
                name + rng.choice([b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]),
                1,
            ),
            lambda: json.dumps(doc, ensure_ascii=False).replace("web", "wéb").encode("latin-1", "replace"),
            lambda: json.dumps(doc, ensure_ascii=False).encode(
                rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-32-be"]), "surrogatepass"
            ),
            lambda: bytes(b ^ 0x80 if rng.random() < 0.01 else b for b in good),
            lambda: good.replace(b'"CREATE"', b'"CREATE\xa0"'),
        ]
        return Case("non-utf8", rng.choice(options)())

    def _deep(self, rng: random.Random) -> Case:
        # Never between 500 and 2000 levels: whether those parse depends on the stack depth.
        depth = rng.choice([50, 300, 500, 2000, 20000, 200000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        nested = opener * depth + "0" + closer * depth
        doc = self.review(rng)
        where = rng.choice(["top", "labels", "annotation", "uid", "apiVersion", "spec", "volumes"])
        if where == "top":
            return Case("deep", nested.encode())
        if where == "labels":
            doc["request"]["object"]["metadata"]["labels"] = "@DEEP@"
        elif where == "annotation":
            doc["request"]["object"]["metadata"]["annotations"] = {"x": "@DEEP@"}
        elif where == "uid":
            doc["request"]["uid"] = "@DEEP@"
        elif where == "apiVersion":
            doc["apiVersion"] = "@DEEP@"
        elif where == "spec":
            doc["request"]["object"]["spec"]["affinity"] = "@DEEP@"
        else:
            doc["request"]["object"]["spec"].setdefault("volumes", []).append("@DEEP@")
        return Case("deep", json.dumps(doc).replace('"@DEEP@"', nested).encode())

    def _huge(self, rng: random.Random) -> Case:
        shape = rng.choice(["at", "under", "under", "over", "far-over", "uid", "volumes"])
        if shape == "over":
            return Case("huge", b"", declared_length=self.max_bytes + rng.choice([1, 2, 1000]))
        if shape == "far-over":
            return Case("huge", b"", declared_length=rng.choice([10**10, 2**63, self.max_bytes * 100]))
        doc = self.review(rng)
        pod = doc["request"]["object"]
        if shape == "volumes":
            # emptyDir volumes up to the limit: the patch's unique-name search walks all of them
            names = ["lifeboat-state", *(f"lifeboat-state-{i}" for i in range(2, 40000))]
            pod["spec"]["volumes"] = [{"name": name, "emptyDir": {}} for name in names]
            body = json.dumps(doc, separators=(",", ":")).encode()
            if len(body) <= self.max_bytes:
                return Case("huge", body)
            pod["spec"]["volumes"] = pod["spec"]["volumes"][: 40000 * self.max_bytes // len(body) - 100]
            return Case("huge", json.dumps(doc, separators=(",", ":")).encode())
        target = self.max_bytes - (0 if shape == "at" else rng.choice([1, 2, 64, 4096]))
        if shape == "uid":
            doc["request"]["uid"] = ""
            pad = target - len(json.dumps(doc).encode())
            doc["request"]["uid"] = "u" * pad
        else:
            pod["metadata"].setdefault("annotations", {})["pad"] = ""
            pad = target - len(json.dumps(doc).encode())
            pod["metadata"]["annotations"]["pad"] = "p" * pad
        body = json.dumps(doc).encode()
        assert len(body) == target, (len(body), target)
        return Case("huge", body)

    def _envelope(self, rng: random.Random) -> Case:
        doc: Any = self.review(rng)
        edits: list[Callable[[], Any]] = [
            lambda: doc.update(
                apiVersion=rng.choice(["admission.k8s.io/v1beta1", "v1", "", None, 1, "ADMISSION.K8S.IO/V1"])
            ),
            lambda: doc.update(kind=rng.choice(["AdmissionRequest", "admissionreview", "", None, [], "Pod"])),
            lambda: doc.pop("apiVersion"),
            lambda: doc.pop("kind"),
            lambda: [doc],
            lambda: rng.choice(["AdmissionReview", 1, None, True, [], 1.5]),
            lambda: {
                "apiVersion": API_VERSION,
                "kind": "AdmissionReview",
                "response": {"uid": "x", "allowed": True},
            },
        ]
        result = rng.choice(edits)()
        return Case("envelope", encode(doc if result is None else result, rng))

    def _request(self, rng: random.Random) -> Case:
        doc = self.review(rng)
        request = doc["request"]
        edits: list[Callable[[], None]] = [
            lambda: request.update(
                operation=rng.choice(["UPDATE", "DELETE", "CONNECT", "", "create", None, 5])
            ),
            lambda: request.update(
                resource=rng.choice([None, [], "pods", {}, {"resource": 5}, {"resource": "deployments"}])
            ),
            lambda: request.update(
                subResource=rng.choice(["status", "ephemeralcontainers", "", None, 5, []])
            ),
            lambda: request.update(namespace=rng.choice(["kube-system", "lifeboat", "", None, 5, []])),
            lambda: request.update(oldObject=request["object"], operation="UPDATE"),
            lambda: request.update(object=None, operation="DELETE"),
            lambda: request.update(dryRun="yes", userInfo=None, kind=None, options=[]),
        ]
        for edit in rng.sample(edits, rng.randint(1, 2)):
            edit()
        return Case("request", encode(doc, rng))

    def _content_type(self, rng: random.Random) -> Case:
        return Case("content-type", encode(self.review(rng), rng), content_type=rng.choice(CONTENT_TYPES))

    def _method(self, rng: random.Random) -> Case:
        return Case("method", encode(self.review(rng), rng), method=rng.choice(METHODS))


def _walk(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


# The oracle -----------------------------------------------------------------------------------


def expected(case: Case, max_bytes: int) -> tuple[int, str | None]:
    """(HTTP status, uid to echo or None) that the documented contract gives ``case``."""
    if case.declared_length is not None and case.declared_length > max_bytes:
        return 413, None
    if case.method != "POST":
        return 405, None
    if (case.content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        return 415, None
    try:
        doc = json.loads(case.body)
    except (ValueError, RecursionError):
        return 400, None
    if (
        not isinstance(doc, dict)
        or doc.get("apiVersion") != API_VERSION
        or doc.get("kind") != "AdmissionReview"
    ):
        return 400, None
    request = doc.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    if not isinstance(uid, str) or not uid:
        return 400, None
    return 200, uid


def problems(
    case: Case, status: int, headers: dict[str, str], body: bytes, max_bytes: int
) -> tuple[str, str]:
    """("crash" | "malformed" | "", why) for one reply."""
    if status >= 500:
        return "crash", f"HTTP {status}: {body[:200]!r}"
    if headers.get("content-type") != "application/json":
        return "malformed", f"Content-Type {headers.get('content-type')!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return "malformed", f"reply is not JSON: {body[:200]!r}"
    want_status, want_uid = expected(case, max_bytes)
    if status != want_status:
        return "malformed", f"HTTP {status}, expected {want_status}: {body[:300]!r}"
    if want_uid is None:
        ok = (
            isinstance(doc, dict) and set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"]
        )
        return ("", "") if ok else ("malformed", f"not a JSON error: {body[:200]!r}")
    if not isinstance(doc, dict) or set(doc) != {"apiVersion", "kind", "response"}:
        return "malformed", f"not an AdmissionReview: {body[:200]!r}"
    response = doc["response"]
    if doc["apiVersion"] != API_VERSION or doc["kind"] != "AdmissionReview" or not isinstance(response, dict):
        return "malformed", f"wrong apiVersion/kind: {body[:200]!r}"
    if response.get("uid") != want_uid:
        return "malformed", "response.uid does not echo request.uid"
    if not isinstance(response.get("allowed"), bool) or not set(response) <= {
        "uid",
        "allowed",
        "status",
        "patchType",
        "patch",
        "warnings",
    }:
        return "malformed", f"bad response fields: {sorted(response)}"
    if not response["allowed"]:
        result = response.get("status")
        if not (isinstance(result, dict) and isinstance(result.get("message"), str) and result["message"]):
            return "malformed", "a denial without a message"
        if result.get("code") not in (400, 403):
            return "crash", f"denied with code {result.get('code')}: {result['message'][:200]}"
        if "patch" in response:
            return "malformed", "a denial with a patch"
    if "patch" in response:
        try:
            ops = json.loads(base64.b64decode(response["patch"], validate=True))
        except ValueError:
            return "malformed", "patch is not base64 JSON"
        if response.get("patchType") != "JSONPatch" or not isinstance(ops, list) or not ops:
            return "malformed", "patch is not a JSONPatch list"
        for op in ops:
            if not (
                isinstance(op, dict) and op.get("op") == "add" and str(op.get("path", "")).startswith("/")
            ):
                return "malformed", f"bad patch operation {str(op)[:200]}"
    warnings = response.get("warnings", [])
    if not (isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        return "malformed", "warnings is not a list of strings"
    return "", ""


def outcome(status: int, body: bytes) -> str:
    if status != 200:
        return f"http-{status}"
    response = json.loads(body)["response"]
    if not response["allowed"]:
        return f"denied-{response['status']['code']}"
    return "injected" if "patch" in response else "admitted"


# The server and the client ---------------------------------------------------------------------


class LogWatch(logging.Handler):
    """Renders every record the way production does (JSON, strict UTF-8) and keeps the errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        from lifeboat.logs import JsonFormatter

        self.formatter_ = JsonFormatter()
        self.errors: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.formatter_.format(record)
            line.encode("utf-8")  # what a strict UTF-8 stderr would do with it
        except Exception as exc:
            self.errors.append(f"log record {record.getMessage()!r} cannot be rendered: {exc!r}")
            return
        self.records += 1
        if record.levelno >= logging.ERROR:
            self.errors.append(line[:500])


@contextmanager
def watched_logs() -> Iterator[LogWatch]:
    watch = LogWatch()
    root = logging.getLogger()
    ours = logging.getLogger("lifeboat")
    saved = ours.level, ours.propagate
    root.addHandler(watch)
    ours.addHandler(watch)
    ours.setLevel(logging.INFO)  # so admission.injected and friends are rendered too
    ours.propagate = False  # thousands of records need not reach other handlers (pytest's)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        ours.removeHandler(watch)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]


class Served:
    """The production WebhookServer on its own event-loop thread, on 127.0.0.1 port 0, TLS."""

    def __init__(self, tls_dir: Path, max_bytes: int) -> None:
        from injector.cache import CacheMiss
        from injector.config import InjectorSettings
        from injector.decision import PvcInfo, PvcUnavailable
        from injector.metrics import Metrics
        from injector.server import Lookups, WebhookServer
        from injector.tls import ReloadingContext

        table = {
            name: PvcInfo(name, spec.get("uid", ""), spec.get("labels") or {}, spec.get("annotations") or {})
            for name, spec in pvc_specs(load_pods()).items()
        }

        def slow(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
            return table.get(name) or PvcUnavailable(name, "it does not exist")

        def fast(namespace: str, name: str) -> PvcInfo | PvcUnavailable:
            if name.startswith(MISS_PREFIX):
                raise CacheMiss(name)  # answered again on a worker thread with ``slow``
            return slow(namespace, name)

        settings = InjectorSettings(
            listen_host="127.0.0.1", port=0, plain_port_enabled=False, max_request_bytes=max_bytes
        )
        self.server = WebhookServer(
            settings,
            ReloadingContext(tls_dir / "tls.crt", tls_dir / "tls.key"),
            Lookups(fast=fast, slow=slow, namespace_labels=lambda ns: None, miss=CacheMiss),
            Metrics(),
            native_sidecars=lambda: True,
            ready=lambda: True,
        )
        self.loop_errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: self.loop_errors.append(str(ctx.get("message"))))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        (self.port,) = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    def stop(self) -> bool:
        """False when the loop is stuck (the thread is a daemon and dies with the process)."""
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        except TimeoutError:
            return False
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        return True


class StopRun(Exception):
    """The server no longer answers; the remaining cases would each wait for the timeout."""


class NoReply(Exception):
    """The server closed the connection or did not answer in time."""


class Client:
    """One keep-alive TLS connection, reopened whenever the server closes it."""

    def __init__(self, port: int, ca: bytes, timeout: float) -> None:
        self.port = port
        self.context = ssl.create_default_context(cadata=ca.decode())
        self.timeout = timeout
        self.sock: ssl.SSLSocket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise NoReply("connection closed before the reply was complete")
        return chunk

    def send(self, case: Case, path: str = "/mutate?timeout=10s") -> tuple[int, dict[str, str], bytes]:
        length = case.declared_length if case.declared_length is not None else len(case.body)
        head = f"{case.method} {path} HTTP/1.1\r\nHost: lifeboat-injector.lifeboat.svc:443\r\n"
        if case.content_type is not None:
            head += f"Content-Type: {case.content_type}\r\n"
        head += f"Accept: application/json\r\nContent-Length: {length}\r\n\r\n"
        try:
            if self.sock is None:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                self.sock = self.context.wrap_socket(raw, server_hostname="localhost")
            self.sock.sendall(
                head.encode("latin-1") + (b"" if case.declared_length is not None else case.body)
            )
            while b"\r\n\r\n" not in self.buffer:
                self.buffer += self._recv()
            raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
            }
            size = int(headers["content-length"])
            while len(self.buffer) < size:
                self.buffer += self._recv()
            body, self.buffer = self.buffer[:size], self.buffer[size:]
        except (OSError, NoReply) as exc:  # TimeoutError is an OSError
            self.close()
            raise NoReply(f"{exc.__class__.__name__}: {exc}") from None
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def healthy(self) -> bool:
        try:
            status, _, _ = self.send(Case("health", b"", content_type=None, method="GET"), "/healthz")
        except NoReply:
            return False
        return status == 200


# The run ----------------------------------------------------------------------------------------


@dataclass
class Report:
    count: int
    seed: int
    max_request_bytes: int
    timeout_s: float
    requests: int = 0
    crashes: int = 0
    malformed: int = 0
    nondeterministic: int = 0
    timeouts: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    log_records: int = 0
    healthy_after: bool = False

    def fail(self, what: str, index: int, case: Case, why: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{what} case {index} ({case.kind}): {why}")

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return (
                round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 3)
                if ordered
                else 0.0
            )

        return {
            "reviews": self.count,
            "requests": self.requests,
            "crashes": self.crashes,
            "malformed": self.malformed,
            "nondeterministic": self.nondeterministic,
            "timeouts": self.timeouts,
            "healthy_after": self.healthy_after,
            "p50_ms": pct(50),
            "p99_ms": pct(99),
            "max_ms": round(ordered[-1] * 1000, 3) if ordered else 0.0,
            "elapsed_s": round(self.elapsed_s, 1),
            "seed": self.seed,
            "max_request_bytes": self.max_request_bytes,
            "timeout_s": self.timeout_s,
            "log_records": self.log_records,
            "kinds": dict(sorted(self.kinds.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "failures": self.failures,
        }


def run(
    count: int, seed: int = DEFAULT_SEED, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 10.0
) -> Report:
    """Sends ``count`` generated cases twice (two passes) to a fresh server; counts what went wrong."""
    from injector.tls import renew, write_files

    report = Report(count=count, seed=seed, max_request_bytes=max_bytes, timeout_s=timeout)
    generator = Generator(seed, max_bytes)
    with tempfile.TemporaryDirectory() as tmp, watched_logs() as logs:
        bundle = renew(None, ["localhost"], dt.datetime.now(dt.UTC), 30, 1)
        write_files(bundle, Path(tmp))
        served = Served(Path(tmp), max_bytes)
        client = Client(served.port, bundle.ca_cert, timeout)
        first: dict[int, tuple[int, str]] = {}
        started = time.perf_counter()
        try:
            for rerun in (False, True):
                for index in range(count):
                    case = generator.case(index)
                    if not rerun:
                        report.kinds[case.kind] += 1
                    report.requests += 1
                    sent = time.perf_counter()
                    try:
                        status, headers, body = client.send(case)
                    except NoReply as exc:
                        report.latencies.append(time.perf_counter() - sent)
                        report.crashes += 1
                        report.timeouts += "Timeout" in str(exc)
                        report.fail("no reply", index, case, str(exc))
                        if not client.healthy():
                            report.failures.append(f"the server stopped serving at case {index}: run aborted")
                            raise StopRun from None
                        continue
                    report.latencies.append(time.perf_counter() - sent)
                    digest = (status, hashlib.sha256(body).hexdigest())
                    if rerun:
                        if index in first and first[index] != digest:
                            report.nondeterministic += 1
                            report.fail("nondeterministic", index, case, f"{first[index]} then {digest}")
                        continue
                    first[index] = digest
                    verdict, why = problems(case, status, headers, body, max_bytes)
                    if verdict == "crash":
                        report.crashes += 1
                    elif verdict == "malformed":
                        report.malformed += 1
                    if verdict:
                        report.fail(verdict, index, case, why)
                    else:
                        report.outcomes[outcome(status, body)] += 1
            report.healthy_after = client.healthy() and served.thread.is_alive()
        except StopRun:
            pass
        finally:
            report.elapsed_s = time.perf_counter() - started
            client.close()
            if not served.stop():
                report.failures.append("the server's event loop is stuck: it did not close within 10 s")
        for error in [*logs.errors, *served.loop_errors]:
            report.crashes += 1
            if len(report.failures) < 50:
                report.failures.append(f"logged: {error}")
        report.log_records = logs.records
    if not report.healthy_after:
        report.crashes += 1
        report.failures.append("the server did not answer /healthz after the run")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=10000, help="generated AdmissionReviews (each sent twice)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a reply may take")
    args = parser.parse_args()
    logging.basicConfig(stream=io.StringIO())  # nothing to the terminal; LogWatch sees every record
    report = run(args.count, args.seed, args.max_request_bytes, args.timeout)
    result = {"command": " ".join(["bench/hostile_admission.py", *sys.argv[1:]]), **report.figures()}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if not (report.crashes or report.malformed or report.nondeterministic) else 1


if __name__ == "__main__":
    sys.exit(main())

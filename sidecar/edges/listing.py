"""Which snapshot files the repository holds, as the store lists them: signed S3 `ListObjectsV2`.

A scheduled backup needs the repository's newest snapshot (the guard, sidecar.backup.guard) and,
afterwards, whether retention could drop anything. `restic snapshots` answers both, but every
restic start costs a key derivation (scrypt, ~0.5 s of CPU) and a repository open. The sidecar
therefore keeps the snapshot list it last saw and, before trusting it, asks the store which
snapshot files exist: restic stores each snapshot as `<prefix>/snapshots/<id>`, the id being the
SHA-256 of the file's content, and a snapshot file is never rewritten (a tag change or a forget
removes the old file and, for a tag, writes a new one under a new id). So "the store lists exactly
the ids I know" means the repository's snapshots are exactly the ones known, byte for byte.

One GET per 1000 snapshots, signed with AWS Signature V4 from the standard library (no process
of the runtime imports boto3), path-style; `request` also serves the store probe
(sidecar.edges.store) and the lock removal in sidecar.edges.restic. Any failure of a listing raises
ListingUnavailable; callers then ask restic, as before.
The restore's speculation (sidecar.restore.run) compares these listings around its restic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from lifeboat.contract import ConfigError, parse_repository


class ListingUnavailable(Exception):
    """The store could not be listed (not S3, refused, unreachable, unreadable answer)."""


@dataclass(frozen=True)
class Reply:
    """An S3 answer: status, headers (names in lower case) and the first bytes of the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def request(
    method: str,
    endpoint: str,
    bucket: str,
    key: str | None,
    env: Mapping[str, str],
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    region: str | None = None,
    timeout: float,
    limit: int = 2_000_000,
) -> Reply:
    """One path-style S3 request (`key` None: the bucket itself), signed with AWS Signature V4 from
    the standard library for `region` (default: `AWS_DEFAULT_REGION` in `env`, else us-east-1).
    `env` holds the keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and
    the CA bundle for https (`SSL_CERT_FILE`; the system's otherwise). No retries, no redirects
    followed. Raises OSError or http.client.HTTPException when the store cannot be reached.
    Every S3 request Lifeboat makes itself goes through here: these listings, the store probe
    (sidecar.edges.store) and sidecar.edges.restic's `remove_lock`."""
    parts = urlsplit(endpoint)
    path = "/" + quote(bucket, safe="")
    if key is not None:
        path += "/" + quote(key, safe="/")
    canonical_query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted((query or {}).items())
    )
    now = dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    region = region or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    if env.get("AWS_SESSION_TOKEN"):
        headers["x-amz-security-token"] = env["AWS_SESSION_TOKEN"]
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [method, path, canonical_query, *(f"{n}:{headers[n].strip()}" for n in names), "", signed, payload]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    secret = ("AWS4" + env.get("AWS_SECRET_ACCESS_KEY", "")).encode()
    for part in (day, region, "s3", "aws4_request"):
        secret = hmac.new(secret, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(secret, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={env.get('AWS_ACCESS_KEY_ID', '')}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    if body or method in ("PUT", "POST"):
        headers["content-length"] = str(len(body))
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=env.get("SSL_CERT_FILE") or None)
        connection = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        target = f"{path}?{canonical_query}" if canonical_query else path
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, answer, response.read(limit))
    finally:
        connection.close()


def document(body: bytes) -> tuple[ET.Element, str]:
    """An S3 XML answer's root and its namespace prefix (`{...}` or empty). Raises ET.ParseError."""
    root = ET.fromstring(body)  # noqa: S314 - the configured store; expat >= 2.4 caps entity expansion
    return root, root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def keys(repository: str, env: Mapping[str, str], under: str, *, timeout: float = 10.0) -> frozenset[str]:
    """The names of the repository's objects whose name starts with `under` (e.g. `snapshots/`),
    relative to the repository's prefix. Raises ListingUnavailable."""
    try:
        where = parse_repository(repository)
    except ConfigError as exc:
        raise ListingUnavailable(f"not an S3 repository: {exc}") from None
    stripped = where.key_prefix.strip("/")
    base = f"{stripped}/" if stripped else ""
    found: set[str] = set()
    token = ""
    for _ in range(1000):  # 1000 pages of 1000 snapshots: far beyond any retention
        query = {"list-type": "2", "prefix": base + under}
        if token:
            query["continuation-token"] = token
        try:
            reply = request("GET", where.endpoint, where.bucket, None, env, query=query, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise ListingUnavailable(f"{type(exc).__name__}: {exc}") from None
        if reply.status != 200:
            raise ListingUnavailable(f"S3 answered {reply.status}")
        try:
            root, ns = document(reply.body)
        except ET.ParseError as exc:
            raise ListingUnavailable(f"unreadable listing: {exc}") from None
        for item in root.iter(f"{ns}Contents"):
            key = item.findtext(f"{ns}Key") or ""
            if key.startswith(base):
                found.add(key[len(base) :])
        truncated = (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true"
        token = root.findtext(f"{ns}NextContinuationToken") or ""
        if not truncated:
            return frozenset(found)
        if not token:
            raise ListingUnavailable("truncated listing without a continuation token")
    raise ListingUnavailable("listing did not end")


def snapshot_ids(repository: str, env: Mapping[str, str], *, timeout: float = 10.0) -> frozenset[str]:
    """The ids of the snapshot files in the repository. Raises ListingUnavailable."""
    prefix = "snapshots/"
    return frozenset(name[len(prefix) :] for name in keys(repository, env, prefix, timeout=timeout))


def has_config(repository: str, env: Mapping[str, str], *, timeout: float = 10.0) -> bool:
    """Whether the repository's `config` object exists (restic's mark of a repository)."""
    return "config" in keys(repository, env, "config", timeout=timeout)

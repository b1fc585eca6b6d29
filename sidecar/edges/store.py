"""The store probe: what S3 positively says about a repository, before restic is asked.

restic alone cannot tell "no repository here" from "the bucket is missing" (both are errors, and a
missing bucket exits 1, not 10) and it retries a dead endpoint for many minutes. The restore path
must only ever start fresh on a positive "no repository" (rule 2), so this probe asks S3 directly,
once, with short timeouts and no retries of its own, and classifies the answer.

It also tells a *half-finished init* apart: restic 0.19's `init` writes `keys/<id>` first and
`config` last, so an init killed in between leaves keys and nothing else. A prefix holding only
`keys/`, `locks/` and Lifeboat's init claim (`.lifeboat-init`), every object older than
`half_init_age` (10 minutes: a concurrent init in progress is never mistaken for one), holds no
snapshot and no data: HALF_INITIALISED. Anything younger is INCONSISTENT (an init may be running);
anything besides those (`snapshots/`, `data/`, `index/`) is INCONSISTENT whatever its age.

The few writes Lifeboat itself makes outside restic (the backup path's init claim, and removing what
an abandoned init left) live here too, beside the listing they depend on. The restore path only reads.

Region: when none is configured the probe signs for `us-east-1`; when S3 answers with the bucket's
region instead (`x-amz-bucket-region` on a 301, 307 or 400, or `Region` in the error body), the
probe signs for that one and asks once more, and remembers it for the bucket, as botocore's region
redirector does. So AWS buckets outside us-east-1 work without configuration
(tests/unit/sidecar/test_region.py pins it).

The requests are signed by the standard library (sidecar.edges.listing), not boto3: boto3's import
and client cost about half a CPU-second, which the restore paid beside `restic restore` on every
start, and a sidecar that once probed kept boto3 in its memory for good. The CA bundle for https is
`AWS_CA_BUNDLE` (what docs/stores.md has always said to set), else `SSL_CERT_FILE`, else the
system's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from sidecar.edges import listing
from sidecar.repository import Repository

if TYPE_CHECKING:
    from sidecar.settings import Settings

# Lifeboat's claim on a repository's creation, beside restic's own files (restic ignores it).
INIT_CLAIM = ".lifeboat-init"
# The directories an init (and a lock of a command run against a half-made repository) leaves.
_INIT_DIRS = ("keys/", "locks/")
# How old an init's leftovers must be before they count as abandoned. restic's init takes seconds.
HALF_INIT_AGE = 600.0
DEFAULT_SIGNING_REGION = "us-east-1"


class StoreState(Enum):
    REPOSITORY = "repository"  # a restic `config` object exists at the prefix
    NO_REPOSITORY = "no_repository"  # bucket reachable and empty at this prefix: a positive answer
    # only keys/, locks/ and the init claim, all older than the bound: an init that died between
    # its key and its config. Positively no snapshot and no data.
    HALF_INITIALISED = "half_initialised"
    INCONSISTENT = "inconsistent"  # other objects at the prefix but no `config`: not a positive "none"
    BUCKET_MISSING = "bucket_missing"
    DENIED = "denied"  # credentials refused (403 family)
    UNREACHABLE = "unreachable"  # connection refused, timeout, 5xx, anything unexpected


@dataclass(frozen=True)
class Leftover:
    """One object an init (or Lifeboat's claim) left, and its age by the store's clock."""

    key: str  # the full object key
    name: str  # relative to the repository's prefix: `keys/<id>`, `locks/<id>` or INIT_CLAIM
    age: float  # seconds


@dataclass(frozen=True)
class Survey:
    """What the store holds at a repository's prefix, with enough detail to create it safely."""

    state: StoreState
    text: str
    # when the prefix holds nothing but an init's leftovers (HALF_INITIALISED, or INCONSISTENT
    # because they are younger than the bound): those objects; empty otherwise
    leftovers: tuple[Leftover, ...] = ()
    claim: str | None = None  # the init claim's token, when asked for and present


class StoreError(Exception):
    """A write or read of Lifeboat's own objects failed; `state` says how (DENIED, UNREACHABLE...)."""

    def __init__(self, state: StoreState, text: str) -> None:
        super().__init__(text)
        self.state = state
        self.text = text


_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "403",
    "401",
}


class StoreProbe:
    """Asks one S3 endpoint about repositories. Build once; `probe()` per question.

    `region` empty or None: sign for us-east-1 and follow the region S3 names for the bucket.
    `half_init_age`: how old an init's leftovers must be to count as abandoned (tests shorten it).
    """

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        region: str | None = None,
        timeout: float = 10.0,
        half_init_age: float = HALF_INIT_AGE,
        ca_bundle: str | None = None,
    ) -> None:
        self._env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
        if ca_bundle:
            self._env["SSL_CERT_FILE"] = ca_bundle
        self._region = (region or "").strip() or None
        self._timeout = timeout
        self.half_init_age = half_init_age
        # the region each bucket named when asked with another one (botocore's redirector's cache)
        self._regions: dict[tuple[str, str], str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> StoreProbe:
        environ = os.environ if environ is None else environ
        return cls(
            settings.aws_access_key_id.get_secret_value(),
            settings.aws_secret_access_key.get_secret_value(),
            region=settings.s3_region,
            timeout=settings.probe_timeout,
            ca_bundle=environ.get("AWS_CA_BUNDLE") or environ.get("SSL_CERT_FILE") or None,
        )

    def _call(
        self,
        endpoint: str,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> listing.Reply:
        """One request; a 2xx answer is returned, any other raises _Refused (the store said no) or
        _Unreachable. A redirect to the bucket's own region is followed once and remembered."""
        where = (endpoint, bucket)
        region = self._regions.get(where) or self._region or DEFAULT_SIGNING_REGION
        for _ in range(2):
            try:
                reply = listing.request(
                    method,
                    endpoint,
                    bucket,
                    key,
                    self._env,
                    query=query,
                    body=body,
                    region=region,
                    timeout=self._timeout,
                )
            except (OSError, http.client.HTTPException) as exc:
                raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
            if 200 <= reply.status < 300:
                return reply
            error = _error(reply)
            named = _bucket_region(reply, error)
            if reply.status in (301, 307, 400) and named and named != region:
                self._regions[where] = region = named
                continue
            raise _Refused(error)
        raise _Refused(error)

    def _list(self, endpoint: str, bucket: str, **query: str) -> dict[str, Any]:
        """ListObjectsV2 as a dict shaped like botocore's answer (Contents, CommonPrefixes, ...)."""
        reply = self._call(endpoint, "GET", bucket, query={"list-type": "2", **query})
        return _parse_listing(reply)

    def probe(self, repository: Repository) -> tuple[StoreState, str]:
        """Classifies the store's answer for `repository`; the text explains it (secret-free)."""
        survey = self.survey(repository)
        return survey.state, survey.text

    def survey(self, repository: Repository, *, read_claim: bool = False) -> Survey:
        """The probe's answer with an init's leftovers (and, if asked, the claim's token)."""
        try:
            return self._survey(repository, read_claim=read_claim)
        except _Refused as exc:
            return Survey(classify_client_error(exc.response), _describe(exc.response))
        except _Unreachable as exc:
            return Survey(StoreState.UNREACHABLE, exc.text)

    def _survey(self, repository: Repository, *, read_claim: bool) -> Survey:
        endpoint, bucket = repository.endpoint, repository.bucket
        prefix = _prefix(repository)
        exists = Survey(StoreState.REPOSITORY, f"repository found at {repository.url}")
        # `config` is asked for by name first: the top listing below can be truncated, and a prefix
        # with many other objects sorting before it would otherwise hide a real repository
        config = self._list(endpoint, bucket, prefix=prefix + "config", **{"max-keys": "10"})
        if _holds_config(config, prefix):
            return exists
        top = self._list(endpoint, bucket, prefix=prefix, delimiter="/", **{"max-keys": "1000"})
        if _holds_config(top, prefix):  # written between the two listings: a racing init just finished
            return exists
        dirs = {str(p.get("Prefix", ""))[len(prefix) :] for p in top.get("CommonPrefixes", [])}
        files = {str(item.get("Key", ""))[len(prefix) :]: item for item in top.get("Contents", [])}
        if not dirs and not files:
            return Survey(StoreState.NO_REPOSITORY, f"bucket reachable, no repository at {repository.url}")
        damaged = Survey(
            StoreState.INCONSISTENT,
            f"objects exist under {repository.url} ({', '.join(sorted(dirs | set(files)))[:200]}) "
            "but no restic config: a damaged repository; not treated as empty",
        )
        if top.get("IsTruncated") or not dirs <= set(_INIT_DIRS) or not set(files) <= {INIT_CLAIM}:
            return damaged
        now = _store_time(top)
        found = [(prefix + name, name, item["LastModified"]) for name, item in files.items()]
        for directory in sorted(dirs):
            listed = self._list(endpoint, bucket, prefix=prefix + directory, **{"max-keys": "1000"})
            if listed.get("IsTruncated"):
                return damaged
            now = max(now, _store_time(listed))
            found += [
                (str(item["Key"]), str(item["Key"])[len(prefix) :], item["LastModified"])
                for item in listed.get("Contents", [])
            ]
        leftovers = tuple(
            Leftover(key, name, max(0.0, (now - _aware(modified)).total_seconds()))
            for key, name, modified in found
        )
        claim = self._read_claim(repository) if read_claim and INIT_CLAIM in files else None
        youngest = min((item.age for item in leftovers), default=0.0)
        names = ", ".join(sorted({item.name.split("/")[0] for item in leftovers}))
        if youngest < self.half_init_age:
            return Survey(
                StoreState.INCONSISTENT,
                f"only an init's objects ({names}) under {repository.url}, the newest {youngest:.0f}s old: "
                f"an init in progress, or one abandoned less than {self.half_init_age:.0f}s ago",
                leftovers,
                claim,
            )
        return Survey(
            StoreState.HALF_INITIALISED,
            f"only an abandoned init's objects ({names}) under {repository.url}, the newest "
            f"{youngest:.0f}s old: no config, no snapshot, no data",
            leftovers,
            claim,
        )

    # -- Lifeboat's own writes: the backup path only ------------------------------------------

    def _read_claim(self, repository: Repository) -> str | None:
        try:
            body = self._call(
                repository.endpoint, "GET", repository.bucket, _prefix(repository) + INIT_CLAIM
            ).body
        except _Refused as exc:
            if str((exc.response.get("Error") or {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return str(json.loads(body)["token"])
        except (ValueError, KeyError, TypeError):
            return ""  # someone's claim, not ours

    def put_claim(self, repository: Repository, token: str) -> None:
        """Writes (or overwrites) the init claim. Raises StoreError."""
        body = json.dumps({"token": token, "host": socket.gethostname()}).encode()
        self._write(repository, "PUT", _prefix(repository) + INIT_CLAIM, body)

    def release_claim(self, repository: Repository) -> None:
        """Deletes the init claim (its holder does, once `init` has run). Raises StoreError."""
        self.remove(repository, [_prefix(repository) + INIT_CLAIM])

    def remove(self, repository: Repository, keys: list[str]) -> None:
        """Deletes these objects (full keys under the repository's prefix). Raises StoreError."""
        prefix = _prefix(repository)
        for key in keys:
            if not key.startswith(prefix):  # pragma: no cover - a programming error, never data
                raise ValueError(f"{key} is not under {prefix}")
            self._write(repository, "DELETE", key)

    def _write(self, repository: Repository, method: str, key: str, body: bytes = b"") -> None:
        try:
            self._call(repository.endpoint, method, repository.bucket, key, body=body)
        except _Refused as exc:
            raise StoreError(classify_client_error(exc.response), _describe(exc.response)) from None
        except _Unreachable as exc:
            raise StoreError(StoreState.UNREACHABLE, exc.text) from None


class _Refused(Exception):
    """The store answered with an error; `response` is shaped like botocore's error response."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(_describe(response))
        self.response = response


class _Unreachable(Exception):
    """No answer: refused connection, timeout, TLS failure, a broken reply."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _xml(body: bytes) -> tuple[ET.Element, str] | None:
    """The document's root and its namespace prefix; None when the body is not XML."""
    try:
        return listing.document(body)
    except ET.ParseError:
        return None


def _error(reply: listing.Reply) -> dict[str, Any]:
    """An error answer as botocore shapes it: Error.Code/Message (the status when no XML body,
    as for a HEAD or a proxy's page), ResponseMetadata.HTTPStatusCode and HTTPHeaders."""
    code, message, region = str(reply.status), "", ""
    parsed = _xml(reply.body)
    if parsed is not None:
        root, ns = parsed
        code = (root.findtext(f"{ns}Code") or code).strip()
        message = (root.findtext(f"{ns}Message") or "").strip()
        region = (root.findtext(f"{ns}Region") or "").strip()
    error = {"Code": code, "Message": message[:300]}
    if region:
        error["Region"] = region
    return {
        "Error": error,
        "ResponseMetadata": {"HTTPStatusCode": reply.status, "HTTPHeaders": dict(reply.headers)},
    }


def _bucket_region(reply: listing.Reply, error: dict[str, Any]) -> str:
    """The region S3 names for the bucket in a redirect or a wrong-region answer, if any."""
    return str(reply.headers.get("x-amz-bucket-region") or error["Error"].get("Region") or "").strip()


def _parse_listing(reply: listing.Reply) -> dict[str, Any]:
    """A ListObjectsV2 answer as botocore returns it (the fields the probe reads); a 2xx that is
    not a listing is the store answering wrongly: unreachable, never "empty"."""
    parsed = _xml(reply.body)
    if parsed is None or not parsed[0].tag.endswith("ListBucketResult"):
        raise _Unreachable(f"S3 answered {reply.status} with something that is not a listing")
    root, ns = parsed
    contents = [
        {"Key": item.findtext(f"{ns}Key") or "", "LastModified": item.findtext(f"{ns}LastModified") or ""}
        for item in root.iter(f"{ns}Contents")
    ]
    prefixes = [{"Prefix": item.findtext(f"{ns}Prefix") or ""} for item in root.iter(f"{ns}CommonPrefixes")]
    answer: dict[str, Any] = {
        "IsTruncated": (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true",
        "ResponseMetadata": {"HTTPStatusCode": reply.status, "HTTPHeaders": dict(reply.headers)},
    }
    if contents:
        answer["Contents"] = contents
    if prefixes:
        answer["CommonPrefixes"] = prefixes
    return answer


def _prefix(repository: Repository) -> str:
    return repository.key_prefix.strip("/") + "/"


def _holds_config(listing: dict[str, Any], prefix: str) -> bool:
    """A ListObjectsV2 answer names the repository's `config` object."""
    return any(item.get("Key") == prefix + "config" for item in listing.get("Contents", []))


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value))


def _store_time(response: dict[str, Any]) -> dt.datetime:
    """The store's clock (its Date header), so ages do not depend on this node's clock."""
    headers = (response.get("ResponseMetadata", {}) or {}).get("HTTPHeaders", {}) or {}
    try:
        return _aware(email.utils.parsedate_to_datetime(headers["date"]))
    except (KeyError, TypeError, ValueError):
        return dt.datetime.now(dt.UTC)


def classify_client_error(response: dict[str, Any]) -> StoreState:
    """Maps an S3 error response to a state. Pure: tested against each S3 implementation's codes."""
    error = response.get("Error", {}) or {}
    code = str(error.get("Code", ""))
    status = int((response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket":
        return StoreState.BUCKET_MISSING
    if code in _DENIED_CODES or status in (401, 403):
        return StoreState.DENIED
    return StoreState.UNREACHABLE


def _describe(response: dict[str, Any]) -> str:
    error = response.get("Error", {}) or {}
    status = (response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode", "?")
    return f"S3 answered {status} {error.get('Code', '')}: {error.get('Message', '')}".strip()

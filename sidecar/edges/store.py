"""The store probe: what S3 positively says about a repository, before restic is asked.

restic alone cannot tell "no repository here" from "the bucket is missing" (both are errors, and a
missing bucket exits 1, not 10) and it retries a dead endpoint for many minutes. The restore path
must only ever start fresh on a positive "no repository" (rule 2), so this probe asks S3 directly,
once, with short timeouts and no retries of its own, and classifies the answer.

boto3 is imported lazily: the long-running sidecar stays small unless it needs to probe.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from sidecar.repository import Repository

if TYPE_CHECKING:
    from sidecar.settings import Settings


class StoreState(Enum):
    REPOSITORY = "repository"  # a restic `config` object exists at the prefix
    NO_REPOSITORY = "no_repository"  # bucket reachable and empty at this prefix: a positive answer
    INCONSISTENT = "inconsistent"  # objects at the prefix but no `config`: not a positive "none"
    BUCKET_MISSING = "bucket_missing"
    DENIED = "denied"  # credentials refused (403 family)
    UNREACHABLE = "unreachable"  # connection refused, timeout, 5xx, anything unexpected


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
    """Asks one S3 endpoint about repositories. Build once; `probe()` per question."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        region: str = "us-east-1",
        timeout: float = 10.0,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._timeout = timeout
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreProbe:
        return cls(
            settings.aws_access_key_id.get_secret_value(),
            settings.aws_secret_access_key.get_secret_value(),
            region=settings.s3_region,
            timeout=settings.probe_timeout,
        )

    def _client(self, endpoint: str) -> Any:
        if endpoint not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[endpoint] = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                region_name=self._region,
                config=Config(
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",
                ),
            )
        return self._clients[endpoint]

    def probe(self, repository: Repository) -> tuple[StoreState, str]:
        """Classifies the store's answer for `repository`; the text explains it (secret-free)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(repository.endpoint)
        prefix = repository.key_prefix.strip("/") + "/"
        try:
            config = client.list_objects_v2(Bucket=repository.bucket, Prefix=prefix + "config", MaxKeys=10)
            if any(item.get("Key") == prefix + "config" for item in config.get("Contents", [])):
                return StoreState.REPOSITORY, f"repository found at {repository.url}"
            anything = client.list_objects_v2(Bucket=repository.bucket, Prefix=prefix, MaxKeys=1)
            if anything.get("Contents"):
                return (
                    StoreState.INCONSISTENT,
                    f"objects exist under {repository.url} but no restic config: "
                    "an interrupted init or a damaged repository; not treated as empty",
                )
            return StoreState.NO_REPOSITORY, f"bucket reachable, no repository at {repository.url}"
        except ClientError as exc:
            response = dict(exc.response)
            return classify_client_error(response), _describe(response)
        except BotoCoreError as exc:
            return StoreState.UNREACHABLE, f"{type(exc).__name__}: {exc}"
        except OSError as exc:  # pragma: no cover - botocore wraps these, but be sure
            return StoreState.UNREACHABLE, f"{type(exc).__name__}: {exc}"


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

"""Where a PVC's restic repository lives.

A repository is named by namespace + PVC name only (rule 5): the same manifests applied to a
rebuilt cluster find the same repository, because neither name changes while UIDs do. A user can
point a volume at an existing repository instead (`--repository PVC=s3:...`), e.g. one written by
VolSync, so history is never stranded.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.config import ConfigError, Settings


@dataclass(frozen=True)
class Repository:
    """A restic S3 repository: the restic URL and the same place in S3 terms, for the probe."""

    endpoint: str
    bucket: str
    key_prefix: str

    @property
    def url(self) -> str:
        """The restic repository string, `s3:<endpoint>/<bucket>/<prefix>`."""
        return f"s3:{self.endpoint}/{self.bucket}/{self.key_prefix}"


def for_volume(settings: Settings, pvc: str, override: str | None = None) -> Repository:
    """The repository of `pvc`: the override if given, else `<prefix>/<namespace>/<pvc>`."""
    if override:
        return parse_override(override, pvc)
    return Repository(
        endpoint=settings.s3_endpoint,
        bucket=settings.s3_bucket,
        key_prefix=f"{settings.s3_prefix}/{settings.namespace}/{pvc}",
    )


def parse_override(value: str, pvc: str) -> Repository:
    """Parses `s3:http(s)://host[:port]/bucket/path` into a Repository, or says what is wrong."""
    hint = f"--repository {pvc}=s3:http://host:port/bucket/path (annotation lifeboat.dev/repository)"
    if not value.startswith("s3:"):
        raise ConfigError(f"--repository {pvc}: only S3 repositories are supported; expected {hint}")
    parts = urlsplit(value[3:])
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.hostname or len(segments) < 2:
        raise ConfigError(f"--repository {pvc}: {value!r} is not of the form {hint}")
    if parts.username or parts.password or parts.query:
        raise ConfigError(f"--repository {pvc}: credentials or query strings do not belong in the URL")
    return Repository(
        endpoint=f"{parts.scheme}://{parts.netloc}",
        bucket=segments[0],
        key_prefix="/".join(segments[1:]),
    )

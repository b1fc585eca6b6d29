"""Where a PVC's restic repository lives.

A repository is named by namespace + PVC name only (rule 5): the same manifests applied to a
rebuilt cluster find the same repository, because neither name changes while UIDs do. A user can
point a volume at an existing repository instead (`--repository PVC=s3:...`), e.g. one written by
VolSync, so history is never stranded. The override's grammar is the contract's
(lifeboat.contract.parse_repository), shared with the webhook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifeboat.contract import REPOSITORY_ANNOTATION, ConfigError, Repository, parse_repository

if TYPE_CHECKING:
    from sidecar.settings import Settings

__all__ = ["Repository", "for_volume", "parse_override"]


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
    """Parses a `--repository PVC=...` value, or says what is wrong (naming the option and annotation)."""
    try:
        return parse_repository(value)
    except ConfigError as exc:
        raise ConfigError(f"--repository {pvc} (annotation {REPOSITORY_ANNOTATION}): {exc}") from None

"""Retention defaults: what `restic forget` keeps when a PVC names no policy. Pure.

The grammar (`hourly=24,daily=7`) is the contract's (lifeboat.contract.parse_retention), shared with
the webhook. Defaults follow the schedule so a user who only writes `backup: daily` still gets a
sensible history; an empty policy is impossible by construction (restic would keep nothing).
"""

from __future__ import annotations

from collections.abc import Mapping

from lifeboat.contract import RETENTION_RULES, parse_retention, render_retention

__all__ = ["DEFAULTS", "RETENTION_RULES", "default_retention", "parse_retention", "render"]

DEFAULTS: Mapping[str, Mapping[str, int]] = {
    "hourly": {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6},
    "daily": {"daily": 7, "weekly": 4, "monthly": 6},
    "cron": {"last": 24, "daily": 7, "weekly": 4, "monthly": 6},
}


def default_retention(schedule_kind: str) -> dict[str, int]:
    """The policy used when LIFEBOAT_RETENTION is unset, by schedule kind (hourly, daily, cron)."""
    return dict(DEFAULTS.get(schedule_kind, DEFAULTS["cron"]))


render = render_retention

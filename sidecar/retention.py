"""Retention policy: what `restic forget` keeps, parsed and defaulted in one pure place.

A policy is a handful of `--keep-*` counts. It is parsed at start (a typo such as `hourly=2x` stops
the sidecar with exit 78 instead of silently keeping nothing), and defaults follow the schedule so a
user who only writes `backup: daily` still gets a sensible history. An empty policy is impossible by
construction: restic would keep nothing at all.
"""

from __future__ import annotations

from collections.abc import Mapping

# restic's --keep-<rule> counts, in the order restic documents them.
RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")

DEFAULTS: Mapping[str, Mapping[str, int]] = {
    "hourly": {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 6},
    "daily": {"daily": 7, "weekly": 4, "monthly": 6},
    "cron": {"last": 24, "daily": 7, "weekly": 4, "monthly": 6},
}


def parse_retention(text: str) -> dict[str, int]:
    """Parses `hourly=24,daily=7` into {"hourly": 24, "daily": 7}; raises ValueError, worded for users."""
    policy: dict[str, int] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        rule, sep, count = item.partition("=")
        rule = rule.strip().lower().removeprefix("keep-")
        if not sep or rule not in RULES:
            raise ValueError(f"{item!r} is not RULE=COUNT with RULE one of {', '.join(RULES)}")
        if rule in policy:
            raise ValueError(f"{rule!r} is given twice")
        try:
            value = int(count.strip())
        except ValueError:
            raise ValueError(f"{item!r}: the count must be a whole number") from None
        if value < 1:
            raise ValueError(f"{item!r}: the count must be at least 1 (leave the rule out instead)")
        policy[rule] = value
    if not policy:
        raise ValueError("needs at least one rule, e.g. hourly=24,daily=7,weekly=4,monthly=6")
    return {rule: policy[rule] for rule in RULES if rule in policy}


def default_retention(schedule_kind: str) -> dict[str, int]:
    """The policy used when LIFEBOAT_RETENTION is unset, by schedule kind (hourly, daily, cron)."""
    return dict(DEFAULTS.get(schedule_kind, DEFAULTS["cron"]))


def render(policy: Mapping[str, int]) -> str:
    """The policy in its configuration syntax, for logs and docs."""
    return ",".join(f"{rule}={count}" for rule, count in policy.items())

"""The user-facing contract: every name and grammar a user writes, parsed in exactly one place.

A value the webhook admits must be a value the runtime runs, or the app starts unprotected while
the sidecar crash-loops on a schedule the webhook let through. So the webhook (injector.decision)
and the runtime (sidecar.settings, sidecar.restore) call these same functions, and a table test
(tests/unit/lifeboat/test_contract.py) holds them to it. Everything here is pure.

What a user writes:

| where                                   | grammar                                             |
|-----------------------------------------|-----------------------------------------------------|
| namespace label `lifeboat.dev/inject`   | `enabled`                                           |
| PVC label `backup`                      | `hourly` or `daily`                                 |
| `lifeboat.dev/schedule`, LIFEBOAT_SCHEDULE | `hourly`, `daily` or 5-field crontab (UTC)       |
| `lifeboat.dev/retention`, LIFEBOAT_RETENTION | `RULE=COUNT,...` (last hourly daily weekly monthly yearly) |
| `lifeboat.dev/restore-snapshot`, --snapshot | `latest`, a snapshot id (8-64 hex), RFC 3339 time with zone |
| `lifeboat.dev/repository`, --repository | `s3:http(s)://host[:port]/bucket/path`, no credentials |
| `lifeboat.dev/adopt`, LIFEBOAT_ADOPT    | `true` or `false`                                   |
| `lifeboat.dev/skip` (pod)               | `true`                                              |
| `lifeboat.dev/retention-ack`, LIFEBOAT_RETENTION_ACK | RFC 3339 time with zone, when it was written |
| `lifeboat.dev/drill`, LIFEBOAT_DRILL   | `weekly`, `daily`, 5-field crontab (UTC), or `off`/`false` |

Cron expressions follow standard crontab (cron(8), crontab(5)): minute 0-59, hour 0-23, day of
month 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat (0 and 7 are Sunday, `1-5` is Monday
to Friday); `*`, `a-b`, `*/n`, `a-b/n` and lists. When both day fields are restricted (neither
starts with `*`) a day matches either, as cron does. APScheduler's `from_crontab` numbers days
from Monday, so it is not used: next runs are computed here, from the parsed fields.

Error messages name what is wrong and the fix, and never repeat credentials.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# --- names --------------------------------------------------------------------------------------

INJECT_NAMESPACE_LABEL = "lifeboat.dev/inject"
INJECT_NAMESPACE_VALUE = "enabled"
BACKUP_LABEL = "backup"
BACKUP_VALUES = ("hourly", "daily")
SKIP_ANNOTATION = "lifeboat.dev/skip"
INJECTED_ANNOTATION = "lifeboat.dev/injected"
SCHEDULE_ANNOTATION = "lifeboat.dev/schedule"
RETENTION_ANNOTATION = "lifeboat.dev/retention"
SNAPSHOT_ANNOTATION = "lifeboat.dev/restore-snapshot"
ADOPT_ANNOTATION = "lifeboat.dev/adopt"
REPOSITORY_ANNOTATION = "lifeboat.dev/repository"
RETENTION_ACK_ANNOTATION = "lifeboat.dev/retention-ack"
DRILL_ANNOTATION = "lifeboat.dev/drill"
# The memory limit of the injected containers (a Kubernetes quantity, e.g. 1Gi); the largest of a
# pod's labelled PVCs wins (one restore and one backup container serve all of them).
MEMORY_LIMIT_ANNOTATION = "lifeboat.dev/memory-limit"
# ... and their memory request, the same way (a limit below it is raised to it).
MEMORY_REQUEST_ANNOTATION = "lifeboat.dev/memory-request"

# Environment variables the injector sets on the injected containers (sidecar.settings declares
# each with its default and constraint; a drift test checks both sides use these names).
ENV_NAMESPACE = "LIFEBOAT_NAMESPACE"
ENV_POD_NAME = "LIFEBOAT_POD_NAME"
ENV_STATE_DIR = "LIFEBOAT_STATE_DIR"
ENV_CACHE_DIR = "RESTIC_CACHE_DIR"
ENV_RESTORE_DEADLINE = "LIFEBOAT_RESTORE_DEADLINE"
ENV_SCHEDULE = "LIFEBOAT_SCHEDULE"
ENV_RETENTION = "LIFEBOAT_RETENTION"
ENV_ADOPT = "LIFEBOAT_ADOPT"
ENV_METRICS_PORT = "LIFEBOAT_METRICS_PORT"
ENV_FINAL_BACKUP_TIMEOUT = "LIFEBOAT_FINAL_BACKUP_TIMEOUT"
# set by the injector on Job pods: the final backup at exit is followed by `forget` (docs/backup.md)
ENV_FORGET_AT_EXIT = "LIFEBOAT_FORGET_AT_EXIT"
ENV_RETENTION_ACK = "LIFEBOAT_RETENTION_ACK"
ENV_DRILL = "LIFEBOAT_DRILL"
# The keys of the per-namespace Secret; each is also the env variable name in the injected containers.
CREDENTIAL_KEYS = (
    "LIFEBOAT_S3_ENDPOINT",
    "LIFEBOAT_S3_BUCKET",
    "LIFEBOAT_S3_PREFIX",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RESTIC_PASSWORD",
)
# The key prefix when the credentials Secret names none (the injector adds a cluster name to it).
DEFAULT_S3_PREFIX = "lifeboat"
# Keys the per-namespace Secret carries only when the source Secret has them; the injected
# containers reference them with `optional: true`, so a Secret without them still starts pods.
ENV_S3_REGION = "LIFEBOAT_S3_REGION"
# Passwords derived from the master as Lifeboat 0.1.0 read it (its bytes as they are, trailing
# newline included), comma-separated: a repository that only opens with one gets the current
# password added as a key (sidecar.edges.restic). Computed by the injector, never user-written.
ENV_LEGACY_PASSWORDS = "LIFEBOAT_LEGACY_PASSWORDS"
OPTIONAL_CREDENTIAL_KEYS = (ENV_S3_REGION, ENV_LEGACY_PASSWORDS)


class ConfigError(ValueError):
    """A value a user wrote that Lifeboat cannot act on, worded as what is wrong and the fix."""


# --- schedules ----------------------------------------------------------------------------------

_ALIASES = {
    "hourly": ("hourly", "0 * * * *"),
    "@hourly": ("hourly", "0 * * * *"),
    "daily": ("daily", "0 0 * * *"),
    "@daily": ("daily", "0 0 * * *"),
    "nightly": ("daily", "0 0 * * *"),
}
_WEEKLY = {"weekly": ("weekly", "0 0 * * 0"), "@weekly": ("weekly", "0 0 * * 0")}
SCHEDULE_HINT = (
    "use hourly, daily or a 5-field crontab expression in UTC such as '30 2 * * *' "
    "(minute hour day-of-month month day-of-week)"
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: its kind (hourly, daily, weekly, cron) and a 5-field crontab expression."""

    kind: str
    cron: str


@dataclass(frozen=True)
class Cron:
    """A crontab expression expanded into the values each field allows."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: dt.date) -> bool:
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays  # crontab(5): either day field may match
        return in_days and in_weekdays

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first run strictly after `moment` (UTC, second precision dropped)."""
        t = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = moment + dt.timedelta(days=366 * 28)  # weekdays repeat on dates every 28 years
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif not self.day_matches(t.date()):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise ConfigError("never fires (no date matches its day and month fields)")


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, symbolic names (index + offset = value)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], int], ...] = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day of month", 1, 31, (), 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _WEEKDAYS, 0),
)
_ELEMENT = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def _value(token: str, field: str, low: int, high: int, names: tuple[str, ...], offset: int) -> int:
    if token in names:
        return names.index(token) + offset
    if not token.isdigit():
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ConfigError(f"{field} {token!r} is not a number ({allowed})")
    value = int(token)
    if not low <= value <= high:
        raise ConfigError(f"{field} {value} is out of range {low}-{high}")
    return value


def _field(text: str, spec: tuple[str, int, int, tuple[str, ...], int]) -> frozenset[int]:
    field, low, high, names, offset = spec
    values: set[int] = set()
    for element in text.lower().split(","):
        match = _ELEMENT.match(element)
        if not match:
            raise ConfigError(f"{field} {element!r} is not *, N, N-M, */S or N-M/S")
        base, step_text = match.group(1), match.group(2)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start = _value(a, field, low, high, names, offset)
            end = _value(b, field, low, high, names, offset)
            if start > end:
                raise ConfigError(f"{field} range {element!r} runs backwards; write the lower bound first")
        else:
            if step_text is not None:
                raise ConfigError(f"{field} {element!r}: a step needs a range or *, e.g. */15 or 0-30/15")
            start = end = _value(base, field, low, high, names, offset)
        step = 1
        if step_text is not None:
            step = int(step_text)
            if step < 1:
                raise ConfigError(f"{field} {element!r}: the step must be at least 1")
        values.update(range(start, end + 1, step))
    if field == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)  # 0 and 7 are both Sunday
    return frozenset(values)


@functools.lru_cache(maxsize=256)  # pure and immutable: the webhook sees the same few values
def parse_cron(text: str) -> Cron:
    """A 5-field crontab expression (standard semantics, see the module docstring); raises ConfigError."""
    parts = text.split()
    if len(parts) != 5:
        raise ConfigError(f"{text!r} has {len(parts)} fields, not 5; {SCHEDULE_HINT}")
    try:
        sets = [_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    except ConfigError as exc:
        raise ConfigError(f"{text!r} is not a valid crontab expression: {exc}; {SCHEDULE_HINT}") from None
    minutes, hours, days, months, weekdays = sets
    cron = Cron(
        minutes,
        hours,
        days,
        months,
        weekdays,
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    try:
        cron.next_after(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    except ConfigError as exc:
        raise ConfigError(f"{text!r} {exc}; {SCHEDULE_HINT}") from None
    return cron


def parse_schedule(text: str, *, weekly: bool = False) -> Schedule:
    """`hourly`, `daily` or a 5-field crontab expression (UTC); `weekly` too for prune and check."""
    value = " ".join(text.strip().split())
    aliases = {**_ALIASES, **(_WEEKLY if weekly else {})}
    if value.lower() in aliases:
        return Schedule(*aliases[value.lower()])
    if not value:
        raise ConfigError(f"is empty; {SCHEDULE_HINT}")
    if len(value.split(" ")) != 5:
        raise ConfigError(f"{text!r} is not hourly, daily or a 5-field crontab expression; {SCHEDULE_HINT}")
    parse_cron(value)
    return Schedule("cron", value)


def next_run(cron: str, after: dt.datetime) -> dt.datetime:
    """The first run of `cron` strictly after `after` (an aware datetime; returned in UTC)."""
    return parse_cron(cron).next_after(after.astimezone(dt.UTC))


# --- restore drills -----------------------------------------------------------------------------

DRILL_OFF = ("off", "false")
DRILL_HINT = (
    "use weekly, daily, a 5-field crontab expression in UTC such as '30 3 * * 6', or off; "
    f"e.g. {DRILL_ANNOTATION}: weekly"
)


def parse_drill(text: str) -> Schedule | None:
    """When restore drills run: `weekly` (the default), `daily`, a 5-field crontab expression
    (UTC), or `off`/`false` (None). Raises ConfigError naming the fix."""
    value = " ".join(text.strip().split())
    if value.lower() in DRILL_OFF:
        return None
    if value.lower() in ("hourly", "@hourly"):
        raise ConfigError(f"{text!r}: hourly drills would restore the volume every hour; {DRILL_HINT}")
    if not value:
        raise ConfigError(f"is empty; {DRILL_HINT}")
    aliases = ("weekly", "@weekly", "daily", "@daily", "nightly")
    if value.lower() not in aliases and len(value.split(" ")) != 5:
        raise ConfigError(f"{text!r} is not weekly, daily, off or a 5-field crontab expression; {DRILL_HINT}")
    try:
        return parse_schedule(value, weekly=True)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(SCHEDULE_HINT, DRILL_HINT)) from None


# --- retention ----------------------------------------------------------------------------------

# restic's --keep-<rule> counts, in the order restic documents them.
RETENTION_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
RETENTION_HINT = "use comma-separated RULE=COUNT, e.g. 'hourly=24,daily=7,weekly=4,monthly=6'"


def parse_retention(text: str) -> dict[str, int]:
    """`hourly=24,daily=7` -> {"hourly": 24, "daily": 7}, in restic's rule order; raises ConfigError."""
    return dict(_retention_rules(text))


@functools.lru_cache(maxsize=256)  # pure; the webhook parses the same few values on every pod
def _retention_rules(text: str) -> tuple[tuple[str, int], ...]:
    policy: dict[str, int] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        rule, sep, count = item.partition("=")
        rule = rule.strip().lower().removeprefix("keep-")
        if not sep or rule not in RETENTION_RULES:
            raise ConfigError(
                f"{item!r} is not RULE=COUNT with RULE one of {', '.join(RETENTION_RULES)}; {RETENTION_HINT}"
            )
        if rule in policy:
            raise ConfigError(f"{rule!r} is given twice; {RETENTION_HINT}")
        if not count.strip().isdigit():
            raise ConfigError(f"{item!r}: the count must be a whole number; {RETENTION_HINT}")
        value = int(count.strip())
        if value < 1:
            raise ConfigError(f"{item!r}: the count must be at least 1 (leave the rule out instead)")
        policy[rule] = value
    if not policy:
        raise ConfigError(f"needs at least one rule; {RETENTION_HINT}")
    return tuple((rule, policy[rule]) for rule in RETENTION_RULES if rule in policy)


def render_retention(policy: Mapping[str, int]) -> str:
    """A policy in its configuration syntax (the inverse of parse_retention)."""
    return ",".join(f"{rule}={count}" for rule, count in policy.items())


# --- snapshot pins ------------------------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Pin:
    """A user's choice of snapshot: an id (prefix) or a time ("latest at or before")."""

    snapshot_id: str | None = None
    at_or_before: dt.datetime | None = None

    def __str__(self) -> str:
        return self.snapshot_id or (self.at_or_before.isoformat() if self.at_or_before else "latest")


@functools.lru_cache(maxsize=256)
def parse_pin(value: str | None) -> Pin | None:
    """`latest` (or nothing): None; a snapshot id (8-64 hex); an RFC 3339 time with a zone."""
    if value is None or not value.strip() or value.strip() == "latest":
        return None
    value = value.strip()
    if _HEX.fullmatch(value):
        return Pin(snapshot_id=value)
    hint = "write a snapshot id (8-64 hex digits), latest, or an RFC 3339 time such as 2026-01-31T23:00:00Z"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?", value):
        raise ConfigError(f"{value!r} is neither a snapshot id nor a time; {hint}")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{value!r} is not a valid time; {hint}") from None
    if when.tzinfo is None:
        raise ConfigError(f"{value!r} has no time zone; add Z or an offset such as +01:00")
    return Pin(at_or_before=when)


# --- retention acknowledgement ------------------------------------------------------------------

RETENTION_ACK_HINT = (
    "write the RFC 3339 time the acknowledgement was given, e.g. "
    '"$(date -u +%Y-%m-%dT%H:%M:%SZ)" (2026-01-31T23:00:00Z); it counts for one day'
)


def parse_retention_ack(value: str) -> dt.datetime:
    """The time a large retention change was acknowledged: an RFC 3339 time with a zone (the pin's
    time grammar). Whether it is still recent is the runtime's call, with its own `now`."""
    try:
        pin = parse_pin(value)
    except ConfigError:
        pin = None
    if pin is None or pin.at_or_before is None:
        raise ConfigError(f"{value.strip()!r} is not a time with a zone; {RETENTION_ACK_HINT}")
    return pin.at_or_before.astimezone(dt.UTC)


# --- repository override ------------------------------------------------------------------------

REPOSITORY_HINT = "write s3:https://host[:port]/bucket/path (keys come from the Secret, not the URL)"


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


def redact_url(value: str) -> str:
    """`value` with any `user:password@` taken out, for messages (rule 6)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", value)


def parse_repository(value: str) -> Repository:
    """`s3:http(s)://host[:port]/bucket/path` into a Repository; raises ConfigError without secrets."""
    text = value.strip()
    shown = redact_url(text)
    if not text.startswith("s3:"):
        raise ConfigError(f"{shown!r}: only S3 repositories are supported; {REPOSITORY_HINT}")
    parts = urlsplit(text[3:])
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigError(f"{shown!r}: credentials do not belong in the URL; {REPOSITORY_HINT}")
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.hostname or len(segments) < 2:
        raise ConfigError(f"{shown!r} is not of the form s3:http(s)://host/bucket/path; {REPOSITORY_HINT}")
    if parts.query or parts.fragment or any(c.isspace() for c in text):
        raise ConfigError(f"{shown!r}: query strings and spaces do not belong in the URL; {REPOSITORY_HINT}")
    return Repository(
        endpoint=f"{parts.scheme}://{parts.netloc}", bucket=segments[0], key_prefix="/".join(segments[1:])
    )


# --- flags --------------------------------------------------------------------------------------


def parse_bool(value: str) -> bool:
    """`true` or `false` (any case); raises ConfigError."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigError(f"{value!r} must be true or false")

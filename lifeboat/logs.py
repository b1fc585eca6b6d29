"""JSON-lines logging: one event per line, machine-readable, secret-free.

Every component logs through `event()`, which names the event (``backup.finished``,
``restore.outcome``) and carries plain fields. A redactor removes every secret value the process
knows of from the rendered line, so even a secret echoed back by restic or boto3 inside an error
text never reaches the log (rule 6).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

_REDACTED = "***"
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_LEVEL_HINT = "use one of debug, info, warning, error"


def parse_level(value: str) -> int:
    """``debug|info|warning|error`` (any case) as a :mod:`logging` level; ValueError names the choices."""
    level = LOG_LEVELS.get(str(value).strip().lower())
    if level is None:
        raise ValueError(f"{value!r} is not a log level; {LOG_LEVEL_HINT}")
    return level


class Redactor:
    """Replaces known secret values in text. Built from the validated configuration."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON object: time, level, logger, event, fields."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            payload.update(fields)
        elif payload["event"] != record.getMessage():
            payload["message"] = record.getMessage()
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return self.redactor(json.dumps(payload, default=str, sort_keys=False))


def configure(redactor: Redactor | None = None, level: int | str = logging.INFO) -> Redactor:
    """Sends every log record to stderr as JSON lines; returns the redactor in force.

    ``level`` is a :mod:`logging` level or its name (``LIFEBOAT_LOG_LEVEL``,
    ``LIFEBOAT_INJECTOR_LOG_LEVEL``: debug, info, warning, error)."""
    if isinstance(level, str):
        level = parse_level(level)
    redactor = redactor or Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "apscheduler", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one named event with its fields: ``event(log, "backup.finished", pvc="data", bytes=12)``."""
    logger.log(level, name, extra={"event": name, "fields": fields})

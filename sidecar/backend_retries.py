"""restic's retries of store requests, read from its stderr, counted and reported at a bounded rate.

restic retries a failing store request on its own, for up to 15 minutes, and says so only on its
stderr, once per retry (restic 0.19.1 `internal/global/global.go` `wrapBackend`, the messages of
`internal/backend/retry`), for example

    Save(<data/956b9ced99>) returned error, retrying after 357.131936ms: <the store's error>

An outage it rides out is otherwise invisible: the job just takes longer (docs/RELIABILITY.md,
gap 1). This module recognises those lines and decides when one report is due: the first retry
of a restic process at once, then at most one every `interval` seconds with the retries counted
since the previous report, and one last report when the process ends with retries not yet reported.
Pure: the caller passes each line and the time; the restic edge logs the reports and counts them.

The store's error text can name its URL: user information and query strings are cut from every URL
in it (the caller's redactor runs as well), so no credential reaches a log line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# the five retried backend calls, as restic names them, and the label each one gets
OPERATIONS = {"Save": "save", "Load": "load", "Stat": "stat", "Remove": "remove", "List": "list"}
_RETRY = re.compile(
    r"^(?P<op>Save|Load|Stat|Remove|List)\((?P<handle>.*?)\) returned error, "
    r"retrying after (?P<after>[0-9.]+[a-zµ]+): (?P<error>.*)$"
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s\"'@]*@")
_QUERY = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'?]*)\?[^\s\"']*")
ERROR_CHARS = 300


@dataclass(frozen=True)
class Retry:
    """One retry restic announced: which backend call, and the store's error (scrubbed)."""

    operation: str  # save | load | stat | remove | list
    error: str


@dataclass(frozen=True)
class RetryReport:
    """What one `restic.retry` event says: retries since the previous report, by backend call."""

    retries: int
    requests: dict[str, int]
    error: str  # the newest retry's error
    final: bool  # the restic process has ended


def scrub(text: str) -> str:
    """`text` without user information or query strings in its URLs, at most ERROR_CHARS long."""
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _QUERY.sub(r"\g<url>", text)
    return text[:ERROR_CHARS]


def parse_retry(line: str) -> Retry | None:
    """The retry a line of restic's stderr announces, or None for any other line."""
    match = _RETRY.match(line.strip())
    if match is None:
        return None
    return Retry(OPERATIONS[match["op"]], scrub(match["error"]))


@dataclass
class RetryTally:
    """The retries of one restic process, and when the next report is due."""

    interval: float = 60.0
    total: int = 0
    _pending: Counter[str] = field(default_factory=Counter)
    _error: str = ""
    _reported_at: float | None = None

    def note(self, retry: Retry, now: float) -> RetryReport | None:
        """Counts one retry; returns a report when one is due (the first at once)."""
        self.total += 1
        self._pending[retry.operation] += 1
        self._error = retry.error
        if self._reported_at is not None and now - self._reported_at < self.interval:
            return None
        self._reported_at = now
        return self._take(final=False)

    def finish(self) -> RetryReport | None:
        """The process ended: the retries not reported yet, if any."""
        return self._take(final=True) if self._pending else None

    def _take(self, *, final: bool) -> RetryReport:
        report = RetryReport(
            sum(self._pending.values()), dict(sorted(self._pending.items())), self._error, final
        )
        self._pending.clear()
        return report

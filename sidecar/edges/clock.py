"""The store's clock: the `Date` header of one HTTP response from the S3 endpoint.

Retention is judged against `now`, so a sidecar whose clock is far off must not forget or prune
(sidecar.daemon.breaker). Every HTTP response carries `Date` (RFC 9110), a 403 to an unsigned
request included, so one unauthenticated HEAD of the endpoint is enough: no credentials are sent,
no bucket is touched. Standard library only (the slim daemon imports no boto3); proxies and CA
files come from the environment, as restic's do.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import urllib.error
import urllib.request
from collections.abc import Callable

from lifeboat.contract import ConfigError, parse_repository


class StoreTimeUnavailable(Exception):
    """The store did not answer, or answered without a usable `Date`; the message says which."""


def endpoint_of(repository: str) -> str:
    """`s3:http://host:9000/bucket/prefix` -> `http://host:9000/` (no credentials by contract)."""
    try:
        return parse_repository(repository).endpoint + "/"
    except ConfigError as exc:
        raise StoreTimeUnavailable(f"not an S3 repository: {exc}") from None


def store_time(endpoint: str, *, timeout: float = 5.0) -> dt.datetime:
    """The `Date` of a HEAD of `endpoint` (any status); raises StoreTimeUnavailable."""
    request = urllib.request.Request(endpoint, method="HEAD")  # noqa: S310 - the configured http(s) endpoint
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            date = response.headers.get("Date")
    except urllib.error.HTTPError as exc:  # 403, 404, 5xx: still the store's answer, with its Date
        date = exc.headers.get("Date") if exc.headers is not None else None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreTimeUnavailable(f"{endpoint} did not answer: {reason}") from None
    if not date:
        raise StoreTimeUnavailable(f"{endpoint} answered without a Date header")
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise StoreTimeUnavailable(f"{endpoint} sent an unreadable Date header {date!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


StoreClock = Callable[[str], dt.datetime]  # repository URL -> the store's time


def repository_time(repository: str, *, timeout: float = 5.0) -> dt.datetime:
    """The time of the store holding `repository`."""
    return store_time(endpoint_of(repository), timeout=timeout)

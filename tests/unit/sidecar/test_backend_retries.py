"""restic's retry lines: recognised, scrubbed of credentials, reported at a bounded rate. Pure.

The lines are restic 0.19.1's own (internal/global/global.go `wrapBackend`), as it printed them
against a refused endpoint."""

from __future__ import annotations

from sidecar.backend_retries import Retry, RetryTally, parse_retry, scrub

REFUSED = (
    'Stat(<config/>) returned error, retrying after 568.886597ms: Stat: Get "http://127.0.0.1:1/bucket/'
    '?location=": dial tcp 127.0.0.1:1: connect: connection refused\n'
)
SAVE = "Save(<data/956b9ced99>) returned error, retrying after 2.621308167s: unexpected EOF"


def test_a_retry_line_names_the_backend_call_and_the_stores_error() -> None:
    assert parse_retry(REFUSED) == Retry(
        "stat", 'Stat: Get "http://127.0.0.1:1/bucket/": dial tcp 127.0.0.1:1: connect: connection refused'
    )
    assert parse_retry(SAVE) == Retry("save", "unexpected EOF")
    assert parse_retry("Load(<key/1234567812>, 0, 0) returned error, retrying after 1s: EOF") == Retry(
        "load", "EOF"
    )


def test_other_stderr_lines_are_not_retries() -> None:
    assert parse_retry("Save(<data/956b9ced99>) operation successful after 3 retries") is None
    assert parse_retry('{"message_type":"exit_error","code":1,"message":"Fatal: x"}') is None
    assert parse_retry("List(data) failed: context canceled") is None


def test_user_information_and_query_strings_never_survive_the_scrub() -> None:
    text = scrub('Get "https://AKIA:s3cr3t@s3.example:9000/b/?X-Amz-Signature=abc&x=1": EOF')
    assert "s3cr3t" not in text and "AKIA" not in text and "Signature" not in text
    assert text == 'Get "https://s3.example:9000/b/": EOF'


def test_the_first_retry_is_reported_at_once_then_at_most_once_per_interval() -> None:
    tally = RetryTally(interval=60.0)
    first = tally.note(Retry("stat", "refused"), now=100.0)
    assert first is not None and (first.retries, first.requests, first.final) == (1, {"stat": 1}, False)
    assert tally.note(Retry("stat", "refused"), now=101.0) is None
    assert tally.note(Retry("save", "reset"), now=159.9) is None
    later = tally.note(Retry("save", "reset"), now=160.0)
    assert later is not None
    assert (later.retries, later.requests, later.error) == (3, {"save": 2, "stat": 1}, "reset")


def test_retries_not_reported_yet_are_reported_when_restic_ends_and_none_otherwise() -> None:
    tally = RetryTally(interval=60.0)
    assert tally.finish() is None
    tally.note(Retry("list", "refused"), now=0.0)
    tally.note(Retry("list", "refused"), now=1.0)
    tally.note(Retry("load", "refused"), now=2.0)
    last = tally.finish()
    assert last is not None and (last.retries, last.requests, last.final) == (2, {"list": 1, "load": 1}, True)
    assert tally.total == 3
    assert tally.finish() is None

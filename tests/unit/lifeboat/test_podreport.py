"""The termination-message grammar: what the restore writes, the controller reads back."""

from __future__ import annotations

from lifeboat.podreport import ALL_VOLUMES, Segment, format_report, parse_report
from sidecar.restore.run import Outcome, summary_line


def test_the_restore_summary_parses_back_into_its_volumes() -> None:
    line = summary_line(
        [
            Outcome("data", "restored", "", snapshot="1a2b3c4d5e6f", files=12, bytes=3 * 2**20, seconds=2.0),
            Outcome("cache", "fresh", ""),
            Outcome("logs", "failed", "the store refused the credentials: AccessDenied; retry", exit_code=77),
        ]
    )
    data, cache, logs = parse_report(line)
    assert (data.pvc, data.outcome, data.details) == (
        "data",
        "restored",
        "1a2b3c4d (12 files, 3.0 MiB, 2.0s)",
    )
    assert (cache.pvc, cache.outcome, cache.exit_code) == ("cache", "fresh", None)
    assert (logs.outcome, logs.exit_code) == ("failed", 77)
    assert logs.reason == "the store refused the credentials: AccessDenied; retry"


def test_a_report_round_trips_through_its_text() -> None:
    segments = [
        Segment("data", "drill-failed", exit_code=65, reason="restored 11 of 12 files"),
        Segment("media", "drill-passed", details="(412 files)"),
    ]
    assert parse_report(format_report(segments)) == segments


def test_the_configuration_error_line_covers_every_volume() -> None:
    (segment,) = parse_report("lifeboat restore: invalid configuration: LIFEBOAT_S3_BUCKET is missing\n")
    assert (segment.pvc, segment.outcome) == (ALL_VOLUMES, "invalid-configuration")
    assert "LIFEBOAT_S3_BUCKET" in segment.reason


def test_a_log_tail_is_unreported_and_never_repeated() -> None:
    (segment,) = parse_report('{"level": "error", "event": "boom", "detail": "anything"}')
    assert (segment.pvc, segment.outcome, segment.reason) == (ALL_VOLUMES, "unreported", "")


def test_an_empty_message_is_no_report() -> None:
    assert parse_report("  \n") == []

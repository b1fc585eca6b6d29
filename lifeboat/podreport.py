"""The one-line report a Lifeboat container leaves in its termination message, and its reading.

The pod's containers get no Kubernetes credentials, so they cannot write Events. What they can
do is leave a line in their termination-message file, which the kubelet copies into the pod's
status (``state.terminated.message`` / ``lastState.terminated.message``); the injector's controller
reads it from there and turns it into an Event on the pod. This module is that line's grammar,
shared by the writers (the restore init container today, a restore drill later) and the reader.

A report is ``; ``-separated segments, one per volume::

    <pvc>: <outcome>[ <details>][ (exit <code>)][: <reason>]

    data: restored 1a2b3c4d (12 files, 3.4 MiB, 2.0s)
    data: fresh
    data: failed (exit 77): the store refused the credentials: AccessDenied
    data: drill-failed (exit 65): restored 11 of 12 files

``outcome`` is one lowercase word (hyphens allowed). A line that does not start with a PVC name
(``lifeboat restore: invalid configuration: ...``) is one segment for every volume, outcome
``invalid-configuration``; any other text (the log tail the kubelet falls back to after a crash)
is ``unreported`` and is not repeated. Lines are never longer than :data:`MAX_BYTES` and carry no secret: the
writers build them from redacted, user-facing texts only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 3500  # the kubelet keeps at most 4096 bytes of a termination message
ALL_VOLUMES = "*"

_SEGMENT = re.compile(
    r"^(?P<pvc>[a-z0-9]([a-z0-9.-]*[a-z0-9])?): (?P<outcome>[a-z]+(-[a-z]+)*)"
    r"(?P<details>(?: (?!\(exit )[^:]*?)?)(?: \(exit (?P<exit>\d+)\))?(?:: (?P<reason>.*))?$",
    re.DOTALL,
)
_CONFIG_ERROR = re.compile(r"^lifeboat [a-z-]+: invalid configuration: ")


@dataclass(frozen=True)
class Segment:
    """One volume's part of a report."""

    pvc: str
    outcome: str
    details: str = ""
    exit_code: int | None = None
    reason: str = ""

    @property
    def text(self) -> str:
        return format_segment(self.pvc, self.outcome, self.details, self.exit_code, self.reason)


def format_segment(
    pvc: str, outcome: str, details: str = "", exit_code: int | None = None, reason: str = ""
) -> str:
    """``<pvc>: <outcome>[ <details>][ (exit N)][: <reason>]``."""
    text = f"{pvc}: {outcome}"
    if details:
        text += f" {details}"
    if exit_code is not None:
        text += f" (exit {exit_code})"
    if reason:
        text += f": {reason}"
    return text


def format_report(segments: list[Segment]) -> str:
    return "; ".join(s.text for s in segments)[:MAX_BYTES]


def parse_report(text: str) -> list[Segment]:
    """The segments of a termination message; a line that is not one is a configuration error."""
    text = text.strip()
    if not text:
        return []
    parts = _split(text)
    segments = [_SEGMENT.match(part) for part in parts]
    if not all(segments):
        if _CONFIG_ERROR.match(text):
            return [Segment(ALL_VOLUMES, "invalid-configuration", reason=text[:MAX_BYTES])]
        # e.g. the log tail the kubelet falls back to: never echoed (it is not a report)
        return [Segment(ALL_VOLUMES, "unreported")]
    return [
        Segment(
            m["pvc"],
            m["outcome"],
            (m["details"] or "").strip(),
            int(m["exit"]) if m["exit"] else None,
            (m["reason"] or "").strip(),
        )
        for m in segments
        if m is not None
    ]


def _split(text: str) -> list[str]:
    """Splits on ``; `` only where a new ``<pvc>: <word>`` segment starts (reasons may hold ``;``)."""
    pieces = text.split("; ")
    parts: list[str] = [pieces[0]]
    for piece in pieces[1:]:
        if _SEGMENT.match(piece):
            parts.append(piece)
        else:
            parts[-1] += "; " + piece
    return parts

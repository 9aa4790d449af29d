"""What happened to one request: filled in by whoever answers it, read by the observer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.errors import NO_SLUG

if TYPE_CHECKING:
    from edge.timing import Timings

#: Between a refusal's outcome and its reason in ``Record.outcome``.
_MARK = ":"
#: ``Record.referer`` until someone reads the request's headers for the access log: compared
#: by identity, so no header's value (a different object, even if equal) is taken for it.
UNREAD = b"(the request's headers are not read yet)"
#: Each (outcome, reason) pair's one string: a few dozen at most (slugs are the code's).
_refusals: dict[tuple[str, str], str] = {}


class Record:
    """One request's facts. ``started`` comes from the observer's clock.

    ``outcome`` names the kind of answer; a refusal's also carries its reason
    (:func:`with_reason`: ``signature_invalid:kid_unknown``), so the access log writes it
    and the log's memo of lines keeps refusals of different reasons apart, while any other
    request carries no reason at all: a cached hit pays nothing for them.
    """

    __slots__ = (
        "agent",
        "cache",
        "outcome",
        "referer",
        "request_id",
        "sent",
        "started",
        "status",
        "timing",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.status = 0
        self.sent = 0
        self.outcome = "other"
        self.cache = "-"
        #: Set by the app (edge.requestid) before the request is answered.
        self.request_id = b"-"
        #: The raw ``Referer`` and ``User-Agent`` (None: absent) for the access log, when the
        #: image parser's one scan of the headers read them; UNREAD: the observer scans.
        self.referer: bytes | None = UNREAD
        self.agent: bytes | None = None
        #: Durations for Server-Timing (edge.timing.Timings), only when EDGE_SERVER_TIMING is on.
        self.timing: Timings | None = None


def with_reason(outcome: str, slug: str) -> str:
    """A refused request's ``Record.outcome``: its outcome and its reason (the error's
    ``slug``), or the outcome alone for a cause with no slug."""
    if slug == NO_SLUG:
        return outcome
    found = _refusals.get((outcome, slug))
    if found is None:
        found = _refusals[outcome, slug] = f"{outcome}{_MARK}{slug}"
    return found


def outcome_and_reason(outcome: str) -> tuple[str, str]:
    """A ``Record.outcome`` taken apart: the outcome, and the reason (``-`` for none)."""
    kind, _, reason = outcome.partition(_MARK)
    return kind, reason or NO_SLUG

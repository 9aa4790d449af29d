"""What happened to one request: filled in by whoever answers it, read by the observer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.timing import Timings


class Record:
    """One request's facts. ``started`` comes from the observer's clock."""

    __slots__ = ("cache", "outcome", "request_id", "sent", "started", "status", "timing")

    def __init__(self, started: float) -> None:
        self.started = started
        self.status = 0
        self.sent = 0
        self.outcome = "other"
        self.cache = "-"
        #: Set by the app (edge.requestid) before the request is answered.
        self.request_id = b"-"
        #: Durations for Server-Timing (edge.timing.Timings), only when EDGE_SERVER_TIMING is on.
        self.timing: Timings | None = None

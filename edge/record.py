"""What happened to one request: filled in by whoever answers it, read by the observer."""

from __future__ import annotations


class Record:
    """One request's facts. ``started`` comes from the observer's clock."""

    __slots__ = ("cache", "outcome", "sent", "started", "status")

    def __init__(self, started: float) -> None:
        self.started = started
        self.status = 0
        self.sent = 0
        self.outcome = "other"
        self.cache = "-"

"""A clock in the test's hands, for code that takes its clock as an argument."""

from __future__ import annotations


class Clock:
    """Says it is ``now``, whatever the test set it to (or moved it by)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

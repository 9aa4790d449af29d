"""What a row of the failure table is (:class:`Row`, its :class:`Retry` rule) and the
errors raised from one (:class:`Fault`, :class:`Silence`, :class:`Unconfirmed`).

Kept apart from the table itself (:mod:`edge.storage.failures`, which re-exports
these names), so that file is the rows and little else: reading it tells the whole
truth about what each failure becomes.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Self

from edge.errors import EdgeError, NotFound, RangeNotSatisfiable, StorageError, StorageTimeout


class Retry(enum.Enum):
    """What the S3 client does after a failure (the folder retries nothing)."""

    #: Again after a short jittered backoff, up to EDGE_S3_MAX_ATTEMPTS attempts in all:
    #: an image request is better failed fast than held for seconds.
    BACKOFF = "yes, with backoff"
    #: Again at once on another connection, not counted: nothing was lost but a connection.
    AT_ONCE = "at once, uncounted"
    #: Once, signed for the region S3's answer names (edge/storage/region.py), uncounted.
    REGION = "once, in the region S3 names"
    #: Again once, asked otherwise (a wrong part: as the explicit range), 2 attempts in all.
    ONCE = "once, otherwise asked"
    NO = "no"


@dataclass(frozen=True, slots=True, eq=False)
class Row:
    """One failure and its rule. ``log`` names facts in braces, filled where it happens."""

    failure: str  # what happened, for the docs
    retry: Retry
    error: type[EdgeError] | None  # what the client is answered; None: not a failure
    log: str  # the reason in the log (never sent to a client)
    statuses: Collection[int] = ()  # the S3 statuses this row is the answer to...
    codes: frozenset[str] = frozenset()  # ...with one of these error codes (empty: any)
    body: bool = False  # happens mid-body: a download already streaming is cut instead
    instead: str = ""  # what edge does instead, when no error reaches the client

    def reason(self, **facts: object) -> str:
        """The log line's reason; a fact not known yet stays a ``{placeholder}``."""
        text = self.log.format_map(_Facts(facts))
        attempts = facts.get("attempts")
        if isinstance(attempts, int) and attempts > 1:
            text += f" ({attempts} attempts)"
        return text

    def exception(self, **facts: object) -> EdgeError:
        """The error this row raises (a 416's ``size`` fact is the object's size)."""
        if self.error is StorageError:
            return Fault(self, **facts)
        if self.error is StorageTimeout:
            return Silence(self, **facts)
        if self.error is RangeNotSatisfiable:
            size = facts.get("size")
            return RangeNotSatisfiable(
                self.reason(**facts), size=size if isinstance(size, int) else -1
            )
        if self.error is None:
            raise TypeError(f"not a failure: {self.failure}")
        return self.error(self.reason(**facts))


class _Facts(dict[str, object]):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


class Unconfirmed(NotFound):
    """A ``404`` that did not say ``NoSuchKey`` (a HEAD's has no document): the S3 client
    checks that the bucket answers before it stands (:class:`edge.storage.probe.BucketWatch`)."""


class Fault(StorageError):
    """A storage error raised from its row: the caller reads there whether to try again."""

    def __init__(self, row: Row, **facts: object) -> None:
        super().__init__(row.reason(**facts))
        self.row, self.facts = row, facts

    def again(self, **facts: object) -> Self:
        """The same failure, with more facts (the key, the attempts made)."""
        return type(self)(self.row, **{**self.facts, **facts})


class Silence(StorageTimeout):
    """A storage timeout raised from its row (see :class:`Fault`)."""

    def __init__(self, row: Row, **facts: object) -> None:
        super().__init__(row.reason(**facts))
        self.row, self.facts = row, facts

    def again(self, **facts: object) -> Self:
        return type(self)(self.row, **{**self.facts, **facts})

"""An S3 answer's part checked against the range edge asked, and cut to it when a store
sends more than asked.

S3 sends exactly the bytes a ``Range`` asks; other S3-compatible stores do not always.
s3rver 3.7 answers ``bytes=0-0`` with the whole object (``206``, ``bytes 0-9/10``) and a
suffix ``bytes=-5`` with the first six bytes (``bytes 0-5/10``), and a store may ignore the
``Range`` altogether (``200``, the whole object, which HTTP allows). Edge never passes such
an answer on: its client gets exactly the bytes it asked, with the ``Content-Range`` the
folder storage would give. What edge does with a wrong part:

- a part that holds the asked bytes (the whole object, a wider range): the asked bytes
  are cut out of it (:class:`Slice`), the bytes before them read and dropped, the
  connection closed after the last one;
- a part that misses some of them: asked again once, as the explicit range
  ``bytes=first-last`` (s3rver gets that right where it got the suffix wrong); a second
  wrong part is ``WRONG_PART`` (``502 STORAGE_ERROR``).
"""

from __future__ import annotations

from edge.storage.base import Body

Span = tuple[int, int]  # first and last byte, inclusive


def cut(answered: Span, asked: Span) -> tuple[int, int] | None:
    """Where the ``asked`` bytes lie in an answer holding the bytes ``answered``: the
    bytes to drop before them and how many to keep; None when it does not hold them all."""
    first, last = answered
    start, end = asked
    if first <= start and end <= last:
        return start - first, end - start + 1
    return None


class Slice:
    """``take`` bytes of a body after its first ``skip``: the asked part of a wider one.
    Closing it closes the wider body (its unread rest is never read)."""

    def __init__(self, body: Body, skip: int, take: int) -> None:
        self._body, self._chunks = body, aiter(body)
        self._skip, self._left = skip, take

    def __aiter__(self) -> Slice:
        return self

    async def __anext__(self) -> bytes:
        while self._left > 0:
            chunk = await anext(self._chunks)  # a short body raises there (BODY_CUT)
            if self._skip >= len(chunk):
                self._skip -= len(chunk)
                continue
            chunk = chunk[self._skip : self._skip + self._left]
            self._skip = 0
            self._left -= len(chunk)
            return chunk
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self._body.aclose()

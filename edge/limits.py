"""A bound on concurrent storage reads: beyond it, wait briefly, then refuse with 503.

Queueing without limit turns a storage slowdown into unbounded latency and
memory; a quick ``503 OVERLOADED`` with ``Retry-After`` lets clients and load
balancers back off or go elsewhere.

A slot bounds storage work, not a client's reading speed: a download holds its
slot through a :class:`Lease`, which it gives back while its client is not
reading (see ``ImageHandler._stream``) and takes again to read on.
"""

from __future__ import annotations

import asyncio

from edge.errors import Overloaded


class ReadSlots:
    def __init__(self, limit: int, *, wait: float, retry_after: int = 1) -> None:
        self.limit = limit
        self.wait = wait
        self.retry_after = retry_after
        self._free = asyncio.Semaphore(limit)

    async def acquire(self) -> None:
        if not self._free.locked():  # the common case: no timer to arm
            await self._free.acquire()
            return
        try:
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
        except TimeoutError:
            raise Overloaded(
                f"all {self.limit} storage read slots busy for {self.wait}s",
                retry_after=self.retry_after,
            ) from None

    def release(self) -> None:
        self._free.release()


class Lease:
    """One request's hold on a slot: taken, given back and taken again at most once each
    time, and always given back in the end (``give_back`` is idempotent)."""

    __slots__ = ("held", "slots")

    def __init__(self, slots: ReadSlots) -> None:
        self.slots = slots
        self.held = False

    async def take(self) -> None:
        await self.slots.acquire()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()

"""A bound on concurrent storage reads: beyond it, wait briefly, then refuse with 503.

Queueing without limit turns a storage slowdown into unbounded latency and
memory; a quick ``503 OVERLOADED`` with ``Retry-After`` lets clients and load
balancers back off or go elsewhere.
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

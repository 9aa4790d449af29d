"""At most ``EDGE_TRANSFORM_WORKERS`` transforms at once; others wait briefly, then 503.

A transform is seconds of CPU at worst and up to a few hundred MiB of pixels; run without
a bound, a burst of them would starve the event loop's thread of CPU and the process of
memory. Here each runs in one of ``workers`` threads (libvips releases the GIL, so they
use that many cores), a request waits at most ``wait`` seconds for a free one, then gets
``503 OVERLOADED`` with ``Retry-After``, as a storage read does (edge.limits).

A slot is given back when its transform ends, not when the request that waited for it
goes away: a cancelled request's transform still runs to its end in its thread, and the
count of running transforms never exceeds ``workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from edge.errors import Overloaded
from edge.transform import libvips

if TYPE_CHECKING:
    from edge.settings import Settings

T = TypeVar("T")


class TransformPool:
    def __init__(self, workers: int, *, wait: float, retry_after: int = 1) -> None:
        self.workers = workers
        self.wait = wait
        self.retry_after = retry_after
        self._free = asyncio.Semaphore(workers)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="edge-transform")
        #: libvips threads per transform: cores / workers, at least 1.
        self.threads_each = libvips.set_threads(workers)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformPool:
        wait = settings.transform_queue_timeout
        return cls(
            settings.transform_workers, wait=settings.queue_timeout if wait is None else wait
        )

    async def run(
        self,
        work: Callable[..., T],
        /,
        *args: object,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        """``work(*args)`` in a worker thread, once one is free within ``wait`` seconds.

        With ``prepare``, ``work(await prepare(), *args)``: ``prepare`` (reading the source)
        runs once the slot is taken, so the bytes a transform needs are held only by the
        requests a worker is free for, never by those that wait (memory stays within
        ``workers`` sources, whatever the queue)."""
        try:
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
        except TimeoutError:
            raise Overloaded(
                f"all {self.workers} transform workers busy for {self.wait}s",
                retry_after=self.retry_after,
            ) from None
        loop = asyncio.get_running_loop()
        try:
            if prepare is not None:
                args = (await prepare(), *args)
            done: Future[T] = self._threads.submit(work, *args)
        except BaseException:
            self._free.release()
            raise
        done.add_done_callback(lambda _: _call_soon(loop, self._free.release))
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        """Stop taking work; transforms already running finish in their threads."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for a slot
        loop.call_soon_threadsafe(callback)

"""At most ``EDGE_TRANSFORM_WORKERS`` transforms at once; others wait briefly, then 503.

A transform is seconds of CPU at worst and up to a few hundred MiB of pixels; run without
a bound, a burst of them would starve the event loop's thread of CPU and the process of
memory. Here each runs in one of ``workers`` threads (libvips releases the GIL, so they
use that many cores), a request waits at most ``wait`` seconds for a free one, then gets
``503 OVERLOADED`` with ``Retry-After``, as a storage read does (edge.limits).

A slot is given back when its transform ends, not when the request that waited for it
goes away: a cancelled request's transform still runs to its end in its thread, and the
count of running transforms never exceeds ``workers``.

Transform threads run ``nice`` below the event loop (``EDGE_TRANSFORM_NICE``; Linux keeps
a niceness per thread, and the threads libvips starts from them inherit it). With the CPU
short, the scheduler then runs the loop first: cached hits and originals keep their
unloaded rate and latency while transforms saturate the cores, and transforms still take
every cycle the loop leaves (measured in bench/transform_hits.py: hits under transform
load 0.34x of their unloaded requests/s at equal priority, about 1x at 10).

A transform given a :class:`Deadline` (``EDGE_TRANSFORM_TIMEOUT``, from when its thread
takes it) is answered ``503 TRANSFORM_TIMEOUT`` at the deadline whatever it is doing, and
told to stop: libvips ends it at its next tile (:mod:`edge.transform.deadline`), which
gives the slot back. A cancelled request's transform is stopped at the deadline too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from edge.errors import Overloaded
from edge.transform import libvips
from edge.transform.deadline import Deadline

if TYPE_CHECKING:
    from edge.settings import Settings

T = TypeVar("T")
log = logging.getLogger("edge")


class TransformPool:
    def __init__(
        self,
        workers: int,
        *,
        wait: float,
        timeout: float | None = None,
        retry_after: int = 1,
        nice: int = 0,
    ) -> None:
        self.workers = workers
        self.wait = wait
        #: Seconds a transform may run (EDGE_TRANSFORM_TIMEOUT); None: no limit.
        self.timeout = timeout
        self.retry_after = retry_after
        #: Workers running a transform now (its thread has not returned yet).
        self.busy = 0
        self._free = asyncio.Semaphore(workers)
        self._threads = ThreadPoolExecutor(
            workers,
            thread_name_prefix="edge-transform",
            initializer=_lower_priority,
            initargs=(nice,),
        )
        #: libvips threads per transform: cores / workers, at least 1.
        self.threads_each = libvips.set_threads(workers)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformPool:
        wait = settings.transform_queue_timeout
        return cls(
            settings.transform_workers,
            wait=settings.queue_timeout if wait is None else wait,
            timeout=settings.transform_timeout,
            nice=settings.transform_nice,
        )

    def deadline(self) -> Deadline:
        """A new transform's deadline, ``timeout`` after its thread takes it."""
        return Deadline(self.timeout)

    async def run(
        self,
        work: Callable[..., T],
        /,
        *args: object,
        prepare: Callable[[], Awaitable[object]] | None = None,
        deadline: Deadline | None = None,
    ) -> T:
        """``work(*args)`` in a worker thread, once one is free within ``wait`` seconds.

        With ``prepare``, ``work(await prepare(), *args)``: ``prepare`` (reading the source)
        runs once the slot is taken, so the bytes a transform needs are held only by the
        requests a worker is free for, never by those that wait (memory stays within
        ``workers`` sources, whatever the queue).

        With ``deadline`` (which ``work`` passes to the engine), TransformTimeout once it
        passes, the work told to stop; its slot is free once its thread returns."""
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
            if deadline is not None:
                deadline.start()
            # In the request's context (as asyncio.to_thread does): what the work logs
            # carries the request's ID.
            done: Future[T] = self._threads.submit(contextvars.copy_context().run, work, *args)
        except BaseException:
            self._free.release()
            raise
        self.busy += 1
        done.add_done_callback(lambda _: _call_soon(loop, self._release))
        if deadline is None or deadline.seconds is None:
            return await asyncio.wrap_future(done)
        answer = asyncio.wrap_future(done)
        try:
            finished, _ = await asyncio.wait((answer,), timeout=deadline.seconds)
        finally:
            if not answer.done():  # past the deadline, or the request went away
                answer.cancel()  # (its thread goes on: the flag below ends it)
        if not finished:
            deadline.stop()
            raise deadline.error()
        return answer.result()

    def _release(self) -> None:
        self.busy -= 1
        self._free.release()

    def close(self) -> None:
        """Stop taking work; transforms already running finish in their threads."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for a slot
        loop.call_soon_threadsafe(callback)


def _lower_priority(nice: int) -> None:
    """Run the calling (new worker) thread ``nice`` steps below its process (at most 19)."""
    if not nice or sys.platform != "linux":
        return
    thread = threading.get_native_id()  # Linux: setpriority on a thread ID sets that thread's
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + nice))
    except OSError as error:  # a sandbox refusing it: transforms then run at equal priority
        log.warning("transform threads run at the loop's priority: setpriority: %s", error)

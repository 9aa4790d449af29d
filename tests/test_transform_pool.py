"""The transform pool: never more than its workers at once, a bounded wait, then 503."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
import pyvips

from edge.errors import Overloaded
from edge.settings import Settings
from edge.transform import Transform, TransformPool, render
from tests.support.transform_images import decoded, encoded, quadrants


class Counter:
    """Counts transforms running at once, in the worker threads themselves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done = 0

    def work(self, seconds: float) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
            self.done += 1
        return threading.get_ident()


def test_never_more_than_the_workers_run_at_once() -> None:
    async def main() -> None:
        pool = TransformPool(3, wait=5)
        counter = Counter()
        threads = await asyncio.gather(*(pool.run(counter.work, 0.02) for _ in range(20)))
        assert (counter.most, counter.done) == (3, 20)
        assert len(set(threads)) == 3 and threading.get_ident() not in threads
        pool.close()

    asyncio.run(main())


def test_beyond_the_workers_a_transform_waits_then_is_refused_with_retry_after() -> None:
    async def main() -> None:
        pool = TransformPool(1, wait=0.05, retry_after=3)
        release = threading.Event()
        busy = asyncio.ensure_future(pool.run(release.wait, 5))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            await pool.run(time.sleep, 0)
        assert time.perf_counter() - start >= 0.05
        assert refused.value.retry_after == 3 and refused.value.status == 503
        waiting = asyncio.ensure_future(pool.run(lambda: "second"))
        await asyncio.sleep(0.01)
        release.set()  # a worker freed within the wait is taken
        assert await busy is True and await asyncio.wait_for(waiting, 1) == "second"
        pool.close()

    asyncio.run(main())


def test_a_cancelled_request_keeps_its_worker_until_its_transform_ends() -> None:
    """The transform cannot be stopped midway; its slot is counted until it ends, so
    clients that go away cannot push more than ``workers`` transforms into the threads."""

    async def main() -> None:
        pool = TransformPool(1, wait=0.05)
        counter = Counter()
        first = asyncio.ensure_future(pool.run(counter.work, 0.2))
        await asyncio.sleep(0.02)
        first.cancel()
        with pytest.raises(Overloaded):
            await pool.run(counter.work, 0)
        await asyncio.sleep(0.25)
        await pool.run(counter.work, 0)  # free again once the first one ended
        assert counter.most == 1 and counter.done == 2
        pool.close()

    asyncio.run(main())


def test_an_error_in_a_transform_gives_its_worker_back() -> None:
    async def main() -> None:
        pool = TransformPool(1, wait=0.05)

        def fail() -> None:
            raise ValueError("broken")

        for _ in range(3):
            with pytest.raises(ValueError, match="broken"):
                await pool.run(fail)
        assert await pool.run(lambda: 7) == 7
        pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("workers", [1, 2, 64])
def test_libvips_threads_are_the_cores_shared_among_workers(workers: int) -> None:
    pool = TransformPool(workers, wait=0.1)
    cores = len(os.sched_getaffinity(0))
    assert pool.threads_each == pyvips.concurrency_get() == max(1, cores // workers)
    pool.close()


def test_the_pool_is_sized_from_the_settings() -> None:
    default = TransformPool.from_settings(Settings.from_env({}))
    assert default.workers == len(os.sched_getaffinity(0)) and default.wait == 0.5
    storage_wait = TransformPool.from_settings(Settings.from_env({"EDGE_QUEUE_TIMEOUT": "2"}))
    assert storage_wait.wait == 2.0, "EDGE_QUEUE_TIMEOUT, unless the transforms' own is set"
    storage_wait.close()
    pool = TransformPool.from_settings(
        Settings.from_env({"EDGE_TRANSFORM_WORKERS": "3", "EDGE_TRANSFORM_QUEUE_TIMEOUT": "0.2"})
    )
    assert (pool.workers, pool.wait) == (3, 0.2)
    default.close()
    pool.close()


def test_renders_run_in_the_pool_and_the_loop_keeps_running() -> None:
    """libvips releases the GIL while it works, so the event loop goes on meanwhile."""
    source = encoded(quadrants(1200, 800), "jpeg")

    async def main() -> None:
        pool = TransformPool(2, wait=5)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticking = asyncio.ensure_future(tick())
        rendered = await asyncio.gather(
            *(pool.run(render, source, Transform(w=300, blur=10), "webp") for _ in range(4))
        )
        ticking.cancel()
        assert all(decoded(r.data).width == 300 for r in rendered)
        assert ticks > 5
        pool.close()

    asyncio.run(main())


def test_sources_are_read_only_once_a_worker_is_free() -> None:
    """A flood of transforms holds at most ``workers`` sources in memory: each request's
    ``prepare`` (its source read) runs after it has a worker, never while it waits, and
    a request refused for want of a worker reads nothing."""

    async def main() -> None:
        pool = TransformPool(2, wait=0.3)
        held = most = prepared = 0

        async def prepare() -> bytes:
            nonlocal held, most, prepared
            prepared += 1
            held += 1
            most = max(most, held)
            await asyncio.sleep(0.01)
            return bytes(1024)

        def work(data: bytes) -> int:
            nonlocal held
            time.sleep(0.1)
            held -= 1  # the bytes are let go with the transform
            return len(data)

        results = await asyncio.gather(
            *(pool.run(work, prepare=prepare) for _ in range(12)), return_exceptions=True
        )
        done = [r for r in results if r == 1024]
        refused = [r for r in results if isinstance(r, Overloaded)]
        assert len(done) + len(refused) == 12 and refused, "the flood is refused beyond the wait"
        assert most <= 2, f"{most} sources held at once by 2 workers"
        assert prepared == len(done), "a refused request read no source"
        pool.close()

    asyncio.run(main())

"""Transform threads run below the event loop (EDGE_TRANSFORM_NICE): with the CPU short,
cached hits and originals go first (the speed it buys is measured in bench/, not here)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import httpx

from edge.transform import TransformPool
from tests.support.client import TLS
from tests.support.processes import clean_env, edge_process, wait_ready
from tests.support.servers import free_port
from tests.support.transform_images import encoded, quadrants


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_workers_run_nice_steps_below_the_process_and_the_caller_is_untouched() -> None:
    async def main() -> tuple[list[int], list[int]]:
        niced, equal = TransformPool(2, wait=5, nice=7), TransformPool(1, wait=5, nice=0)
        below = await asyncio.gather(*(niced.run(own_niceness) for _ in range(4)))
        same = [await equal.run(own_niceness)]
        niced.close()
        equal.close()
        return below, same

    process = os.getpriority(os.PRIO_PROCESS, 0)
    below, same = asyncio.run(main())
    assert below == [min(19, process + 7)] * 4
    assert same == [process]
    assert own_niceness() == process


def test_the_pool_is_capped_at_the_lowest_priority() -> None:
    async def main() -> int:
        pool = TransformPool(1, wait=5, nice=19)
        try:
            return await pool.run(own_niceness)
        finally:
            pool.close()

    assert asyncio.run(main()) == 19


def thread_niceness(pid: int) -> dict[int, tuple[str, int, int]]:
    """Each thread of ``pid``: its name, niceness and CPU ticks so far."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        threads[int(task.name)] = (name, int(fields[16]), int(fields[11]) + int(fields[12]))
    return threads


def test_a_real_edge_makes_its_variants_in_threads_ten_below_its_loop(tmp_path: Path) -> None:
    public = tmp_path / "images" / "public" / "alice"
    public.mkdir(parents=True)
    (public / "q.png").write_bytes(encoded(quadrants(1600, 1200)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(EDGE_STORAGE=str(tmp_path / "images"), EDGE_TRANSFORM_WORKERS="2")
    with edge_process(["serve", "--port", str(port)], env=env, cwd=tmp_path) as process:
        wait_ready(url, process)
        before = thread_niceness(process.pid)
        with httpx.Client(base_url=url, timeout=30, verify=TLS) as client:
            for width in range(200, 212):
                assert client.get(f"/i/alice/q.webp?w={width}").status_code == 200
        threads = thread_niceness(process.pid)
    base = threads[process.pid][1]  # the loop's: the process's own (the suite's, under nice)
    below = min(19, base + 10)
    workers = {tid for tid, t in threads.items() if t[0] == "libvips worker"}
    niced = {tid for tid, t in threads.items() if t[1] == below}
    assert workers and workers <= niced, threads
    if below == base:  # a suite run at nice 9 or more: no lower priority is left to give
        return
    assert 1 <= len(niced - workers) <= 2, "the pool's threads (made as needed)"

    def spent(tids: set[int]) -> int:
        return sum(threads[t][2] - before.get(t, ("", 0, 0))[2] for t in tids)

    assert spent(niced) > 2 * spent(set(threads) - niced), "transform CPU runs niced"

"""EDGE_TRANSFORM_TIMEOUT: a transform past it is stopped inside libvips (not merely
abandoned), its worker is free again, its request and those waiting for the same variant
are answered 503 TRANSFORM_TIMEOUT, nothing is cached, and the edge goes on serving."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.errors import Overloaded, TransformTimeout
from edge.settings import Settings
from edge.transform import OutputFormat, Transform, TransformPool, render
from edge.transform.deadline import Deadline
from tests.support.client import TLS
from tests.support.processes import clean_env, edge_process, wait_ready
from tests.support.servers import free_port
from tests.support.transform_images import SLOW, decoded, encoded, quadrants, slow_source

#: The engine's form of SLOW.
HEAVY = Transform(w=5000, h=5000, fit="fill", blur=100, sharpen=100)
#: How long past its deadline a stopped transform may take to end, on a 2-core machine
#: shared with other work: libvips stops within a tile's work (milliseconds, measured).
MARGIN = 0.5


def started(seconds: float | None) -> Deadline:
    deadline = Deadline(seconds)
    deadline.start()
    return deadline


@pytest.mark.parametrize("output", ["png", "jpeg", "webp", "avif", "gif"])
def test_the_engine_stops_at_the_deadline(output: OutputFormat) -> None:
    source = slow_source()
    begun = time.monotonic()
    with pytest.raises(TransformTimeout) as stopped:
        render(source, HEAVY, output, deadline=started(0.25))
    took = time.monotonic() - begun
    assert 0.25 <= took < 0.25 + MARGIN, f"stopped {took - 0.25:.3f} s past the deadline"
    error = stopped.value
    assert (error.status, error.code) == (503, "TRANSFORM_TIMEOUT")
    assert error.slug == "transform_too_slow"
    assert error.retry_after == 1 and "EDGE_TRANSFORM_TIMEOUT (0.25 s)" in error.reason


@pytest.mark.parametrize(
    "transform",
    [
        Transform(w=5000, h=2500, crop="attention"),  # smartcrop of 19 megapixels
        Transform(w=5000, h=5000, fit="fill", rotate=90, flip="h"),  # copies into memory
    ],
    ids=["smartcrop", "turned"],
)
def test_the_engine_stops_wherever_the_work_is(transform: Transform) -> None:
    """Seconds of work (2 s and 8 s uncut, measured) in other places than the encoder."""
    begun = time.monotonic()
    with pytest.raises(TransformTimeout):
        render(slow_source(), transform, "jpeg", deadline=started(0.1))
    assert time.monotonic() - begun < 0.1 + MARGIN


def test_the_slow_transform_is_slow_indeed() -> None:
    """A deadline four times longer is passed too: the work stopped at 0.25 s would have run
    on (6 s of CPU, uncut)."""
    begun = time.monotonic()
    with pytest.raises(TransformTimeout):
        render(slow_source(), HEAVY, "png", deadline=started(1.0))
    assert time.monotonic() - begun < 1.0 + MARGIN


def test_a_transform_within_its_deadline_is_untouched() -> None:
    """Watched or not, the same bytes; and a deadline of None watches nothing."""
    source = encoded(quadrants(600, 400), "jpeg")
    for transform in (Transform(w=200), Transform(w=100, h=100, crop="attention", blur=4)):
        for output in ("jpeg", "webp", "png"):
            plain = render(source, transform, output).data
            assert render(source, transform, output, deadline=started(30)).data == plain
            assert render(source, transform, output, deadline=started(None)).data == plain
    animated = encoded(quadrants(60, 40).join(quadrants(60, 40), "vertical"), "gif")
    assert decoded(render(animated, Transform(w=30), "gif", deadline=started(30)).data)


class Cooperative:
    """Work that stops when its deadline passes, as libvips does, and counts itself."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.ended = threading.Event()

    def work(self, deadline: Deadline, seconds: float) -> str:
        self.running.set()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                if deadline.passed:
                    raise deadline.error()
                time.sleep(0.005)
            return "done"
        finally:
            self.ended.set()


def test_the_pool_answers_at_the_deadline_and_the_worker_is_free_once_stopped() -> None:
    async def main() -> None:
        pool = TransformPool(1, wait=0.05, timeout=0.2)
        work = Cooperative()
        deadline = pool.deadline()
        begun = time.monotonic()
        with pytest.raises(TransformTimeout):
            await pool.run(work.work, deadline, 5.0, deadline=deadline)
        assert 0.2 <= time.monotonic() - begun < 0.2 + MARGIN
        await asyncio.sleep(0.05)
        assert work.ended.is_set() and pool.busy == 0
        quick = pool.deadline()
        assert await pool.run(work.work, quick, 0.0, deadline=quick) == "done"
        pool.close()

    asyncio.run(main())


def test_work_that_ignores_its_deadline_keeps_its_worker_until_it_returns() -> None:
    """What libvips cannot stop (an encoder's one call) is answered at the deadline, and its
    worker counted busy until it returns: never more than ``workers`` threads at work."""

    async def main() -> None:
        pool = TransformPool(1, wait=0.05, timeout=0.1)
        begun = time.monotonic()
        with pytest.raises(TransformTimeout):
            await pool.run(time.sleep, 0.6, deadline=pool.deadline())
        assert time.monotonic() - begun < 0.1 + MARGIN
        assert pool.busy == 1
        with pytest.raises(Overloaded) as refused:
            await pool.run(time.sleep, 0)
        assert not isinstance(refused.value, TransformTimeout)
        await asyncio.sleep(0.7)
        assert pool.busy == 0
        assert await pool.run(lambda: 7, deadline=pool.deadline()) == 7
        pool.close()

    asyncio.run(main())


def test_a_cancelled_request_is_still_stopped_at_its_deadline() -> None:
    async def main() -> None:
        pool = TransformPool(1, wait=0.05, timeout=0.2)
        work = Cooperative()
        deadline = pool.deadline()
        request = asyncio.ensure_future(pool.run(work.work, deadline, 5.0, deadline=deadline))
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert await asyncio.to_thread(work.ended.wait, 0.2 + MARGIN)
        await asyncio.sleep(0.02)
        assert pool.busy == 0
        pool.close()

    asyncio.run(main())


def test_the_pool_takes_the_timeout_from_the_settings() -> None:
    pool = TransformPool.from_settings(Settings.from_env({"EDGE_TRANSFORM_TIMEOUT": "2.5"}))
    assert pool.timeout == 2.5 and pool.deadline().seconds == 2.5
    pool.close()
    default = TransformPool.from_settings(Settings.from_env({}))
    assert default.timeout == 10.0
    default.close()


# --- through a real edge -----------------------------------------------------------------

TIMEOUT = 0.6


def metric(base: str, outcome: str) -> float:
    """Transforms to PNG with ``outcome``, as the edge counts them at /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=30, verify=TLS).text
    labels = f'format="png",outcome="{outcome}"'
    found = re.search(rf"edge_transform_duration_seconds_count\{{{labels}\}} (\S+)", text)
    return 0.0 if found is None else float(found.group(1))


def access_lines(log: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"path":"/i/' in line
    ]


@pytest.mark.slow
def test_a_slow_transform_is_answered_503_and_the_edge_goes_on(tmp_path: Path) -> None:
    public = tmp_path / "images" / "public" / "alice"
    public.mkdir(parents=True)
    (tmp_path / "images" / "private").mkdir()
    (public / "slow.png").write_bytes(slow_source())
    (public / "q.png").write_bytes(encoded(quadrants(300, 200)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        EDGE_STORAGE=str(tmp_path / "images"),
        EDGE_TRANSFORM_WORKERS="1",
        EDGE_TRANSFORM_TIMEOUT=str(TIMEOUT),
        EDGE_TRANSFORM_QUEUE_TIMEOUT="0.5",
    )
    slow = f"/i/alice/slow.png?{SLOW}"
    with edge_process(["serve", "--port", str(port)], env=env, cwd=tmp_path) as process:
        wait_ready(base, process)

        async def meanwhile() -> tuple[list[httpx.Response], list[tuple[float, int]], float]:
            async with httpx.AsyncClient(base_url=base, timeout=30, verify=TLS) as client:
                assert (await client.get("/i/alice/q.png?w=50")).status_code == 200  # cached
                begun = time.monotonic()
                asked = [asyncio.ensure_future(client.get(slow)) for _ in range(3)]
                hits: list[tuple[float, int]] = []
                while not all(a.done() for a in asked) and len(hits) < 2000:
                    answer = await client.get("/i/alice/q.png?w=50")
                    hits.append((time.monotonic() - begun, answer.status_code))
                    await asyncio.sleep(0.01)
                answers = await asyncio.gather(*asked)
                return answers, hits, time.monotonic() - begun

        answers, hits, took = asyncio.run(meanwhile())
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "TRANSFORM_TIMEOUT"
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["cache-control"] == "no-store"
        assert took < TIMEOUT + 2 * MARGIN, f"answered after {took:.2f} s"
        assert {status for _, status in hits} == {200}
        assert len(hits) >= 5, "cached variants are served while the transform runs"
        assert metric(base, "timeout") == 1, "the three requests shared one transform"
        with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
            # The one worker is free again at once (a queue wait of 0.5 s, where the
            # transform uncut would hold it for seconds), and the edge transforms as before.
            fresh = client.get("/i/alice/q.png?w=60")
            assert fresh.status_code == 200 and decoded(fresh.content).width == 60
            again = client.get(slow)  # not cached: tried again, and stopped again
            assert again.status_code == 503
        assert metric(base, "timeout") == 2 and metric(base, "ok") == 2
    log = tmp_path / "edge.log"
    timed_out = [line for line in access_lines(log) if line["status"] == 503]
    assert len(timed_out) == 4
    for line in timed_out:
        assert (line["outcome"], line["reason"]) == ("transform_timeout", "transform_too_slow")
    assert {line["cache"] for line in timed_out} == {"miss"}, "never kept"
    freed = [
        float(seconds)
        for seconds in re.findall(
            r"transform of public/alice/slow\.png to png ran past EDGE_TRANSFORM_TIMEOUT"
            r" \(0\.6 s\): answered 503 TRANSFORM_TIMEOUT, worker free again after ([\d.]+) s"
            r" request_id=\S+",
            log.read_text(),
        )
    ]
    assert len(freed) == 2 and all(TIMEOUT <= s < TIMEOUT + MARGIN for s in freed), freed

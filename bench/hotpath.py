"""Edge's own cost per request, without the server around it: the profiler's view.

``bench.instructions`` counts a whole request through uvicorn, where uvicorn is
most of it. This drives the ASGI app in-process (same scope, headers and body as
under wrk, send() a no-op) so that, under callgrind, the difference between two
runs of N requests is edge's own work; ``bare`` is the same loop around a bare
app, the harness's own floor. Used to find where a hit's time goes, one change
at a time (bench/README.md lists what each change saved).

    valgrind --tool=callgrind python -m bench.hotpath CASE N    (CASE: see CASES)

Differencing N = 1000 and N = 11000 and dividing by 10000 gives instructions per
request; ``python -m bench.hotpath --all`` does that for every case (needs valgrind).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.world import PUBLIC, World

CASES = ("bare", "public", "signed", "bad-signature", "expired", "not-found")
#: The same with the access log on, its writer thread asleep until the end (under
#: valgrind its 20 ms wake-ups would land on every request): the line's own cost.
LOG_CASES = ("public+log", "signed+log")
VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def request_target(world: World, case: str) -> str:
    case = case.removesuffix("+log")
    if case == "signed":
        return world.signed()
    if case == "bad-signature":
        signed = world.signed()
        at = signed.index("sig=") + 4
        return signed[:at] + ("B" if signed[at] == "A" else "A") + signed[at + 1 :]
    if case == "expired":
        return world.signed(exp=int(time.time()) - 60)
    if case == "not-found":
        return "/i/alice/none.png"
    return PUBLIC


def make_app(world: World, case: str) -> tuple[App, Callable[[], Awaitable[None]]]:
    """The app for ``case`` and its start-up coroutine (the storage's open)."""
    if case == "bare":
        data = (world.images / "public/alice/hit.png").read_bytes()
        headers = [(b"content-type", b"image/png"), (b"content-length", b"%d" % len(data))]

        async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        async def nothing() -> None:
            pass

        return bare, nothing
    from edge.accesslog import AccessLog
    from edge.app import Edge
    from edge.settings import Settings

    logged = case.endswith("+log")
    edge = Edge(Settings.from_env(world.edge_env(EDGE_ACCESS_LOG="json" if logged else "off")))
    if edge.observer.log is not None:
        edge.observer.log.close()
        sink = os.open(os.devnull, os.O_WRONLY)
        edge.observer.log = AccessLog(sink, proxies=edge.observer.log.proxies, interval=3600)
    return edge, edge.storage.open


async def drive(world: World, case: str, count: int) -> int:
    """``count`` requests (after one that fills the cache); the status they all got."""
    app, start = make_app(world, case)
    await start()
    raw, _, query = request_target(world, case).partition("?")
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(count + 1):
        scope = {  # built per request, as uvicorn does: fresh bytes, fresh lists
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8080),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": raw,
            "raw_path": raw.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"127.0.0.1:8080")],
        }
        await app(scope, receive, send)
    log = getattr(getattr(app, "observer", None), "log", None)
    if log is not None:
        log.close()  # the one write of every line, counted
    if len(statuses) != 1:
        raise SystemExit(f"{case}: answers changed during the run: {statuses}")
    return statuses.pop()


def per_request(case: str) -> float:
    """Instructions per request under callgrind: runs of 1000 and 11000, differenced."""
    counts = []
    for count in (1000, 11000):
        done = subprocess.run(
            [*VALGRIND, sys.executable, "-m", "bench.hotpath", case, str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found, done.stderr[-500:]
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / 10000


def main(args: list[str]) -> int:
    if args == ["--all"]:
        for case in CASES + LOG_CASES:
            print(f"{case:15} {per_request(case):10,.0f} instructions per request", flush=True)
        return 0
    case, count = args[0], int(args[1])
    import uvloop  # edge's loop under uvicorn

    world = World(Path(tempfile.mkdtemp(prefix="edge-hotpath-"))).build()
    try:
        print(case, uvloop.run(drive(world, case, count)), file=sys.stderr)
    finally:
        shutil.rmtree(world.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

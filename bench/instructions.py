"""Instructions per request under callgrind: deterministic where wall-clock runs are not.

This VM's speed drifts by a third between minutes, so small costs (the access
log, a header) cannot be seen in requests per second. Instruction counts do not
drift. Each server runs under ``valgrind --tool=callgrind --separate-threads=yes``;
this process sends exactly N requests over one keep-alive connection, then
stops it. Two runs, N = WARM and N = WARM + COUNT, differenced, cancel start-up:
(Ir(WARM + COUNT) - Ir(WARM)) / COUNT is the cost of one request, for the
event-loop thread and for the whole process (the log writer thread included).

Run: ``python -m bench.instructions`` (needs valgrind; writes
``bench/results/instructions.md``). It takes several minutes.
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.world import (
    PUBLIC,
    World,
    edge_argv,
    free_port,
    headers_for_baseline,
    uvicorn_argv,
    wait_ready,
)

WARM, COUNT = 100, 1000
RESULTS = Path(__file__).parent / "results" / "instructions.md"


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "edge" or a baseline app
    path: str
    status: int
    env: tuple[tuple[str, str], ...] = ()


def cases(world: World) -> list[Case]:
    signed = world.signed()
    bad = _tamper(signed)
    off, on = (("EDGE_ACCESS_LOG", "off"),), (("EDGE_ACCESS_LOG", "json"),)
    return [
        Case("bare ASGI app, same body and headers", "bench.baselines:bare", PUBLIC, 200),
        Case("edge, public hit, log off", "edge", PUBLIC, 200, off),
        Case("edge, public hit, log on", "edge", PUBLIC, 200, on),
        Case("edge, private signed hit, log off", "edge", signed, 200, off),
        Case("edge, private signed hit, log on", "edge", signed, 200, on),
        Case("edge, bad signature, log off", "edge", bad, 403, off),
        Case("edge, expired, log off", "edge", world.signed(exp=int(time.time()) - 60), 403, off),
        Case("edge, not found, log off", "edge", "/i/alice/none.png", 404, off),
    ]


def _tamper(url: str) -> str:
    at = url.index("sig=") + 4
    return url[:at] + ("B" if url[at] == "A" else "A") + url[at + 1 :]


def count(world: World, case: Case, requests: int, headers_json: str) -> tuple[int, int]:
    """(event-loop thread, all threads) instructions for a server that answered ``requests``."""
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="cg-", dir=world.root))
    if case.server == "edge":
        argv, env = edge_argv(port), world.edge_env(**dict(case.env))
    else:
        argv = uvicorn_argv(case.server, port)
        env = world.edge_env(
            BENCH_BODY=str(world.images / "public/alice/hit.png"), BENCH_HEADERS=headers_json
        )
    valgrind = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.out",
    ]  # fmt: skip
    proc = world.start([*valgrind, *argv], env=env)
    conn = _connect(port, case.path)
    for _ in range(requests):
        conn.request("GET", case.path)
        reply = conn.getresponse()
        reply.read()
        if reply.status != case.status:
            raise SystemExit(f"{case.name}: status {reply.status}, expected {case.status}")
    conn.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(300)
    totals = {p.name: _total(p) for p in out.glob("cg.out-*")}  # one file per thread
    main_thread = min(totals)  # cg.out-01 is the thread that started Python: the event loop
    return totals[main_thread], sum(totals.values())


def _connect(port: int, path: str) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 300  # Python starts slowly under valgrind
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", path)
            conn.getresponse().read()  # also fills edge's hot-object cache
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _total(path: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
    assert match, path
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    """``--only TEXT`` runs the cases whose name holds TEXT (and the bare app), writing nothing."""
    args = sys.argv[1:] if argv is None else argv
    only = args[args.index("--only") + 1] if "--only" in args else None
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-"))).build()
    try:
        port = free_port()
        proc = world.start(edge_argv(port), env=world.edge_env(EDGE_ACCESS_LOG="off"))
        headers_json = headers_for_baseline(wait_ready(port, PUBLIC, proc=proc))
        world.stop_all()
        rows = []
        for case in cases(world):
            if only is not None and only not in case.name and case.server == "edge":
                continue
            low = count(world, case, WARM, headers_json)
            high = count(world, case, WARM + COUNT, headers_json)
            loop, total = ((h - lo) // COUNT for h, lo in zip(high, low, strict=True))
            rows.append((case.name, loop, total))
            print(f"{case.name:45} {loop:>9,} {total:>9,}", flush=True)
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    if only is None:
        write(rows)
    return 0


def write(rows: list[tuple[str, int, int]]) -> None:
    bare_total = rows[0][2]
    lines = [
        "# Instructions per request (callgrind)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}. "
        f"Made by `python -m bench.instructions`: (Ir(N={WARM + COUNT}) - Ir(N={WARM})) / {COUNT}, "
        "one keep-alive connection, 16 KiB body.",
        "",
        "| server | event-loop thread | all threads | bare ASGI / this (all threads) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, loop, total in rows:
        lines.append(f"| {name} | {loop:,} | {total:,} | {bare_total / total:.3f}x |")
    by_name = {name: (loop, total) for name, loop, total in rows}
    for kind in ("public", "private signed"):
        (loop_off, off), (loop_on, on) = (
            by_name[f"edge, {kind} hit, log off"],
            by_name[f"edge, {kind} hit, log on"],
        )
        lines.append("")
        lines.append(
            f"Access log on a {kind} hit: +{loop_on - loop_off:,} event-loop instructions per"
            f" request ({(loop_on - loop_off) / loop_off:.1%} of the hit); +{on - off:,} with"
            f" the writer thread's wake-ups ({(on - off) / off:.1%}, see below)."
        )
    lines += [
        "",
        "The event-loop column is what a request costs the loop. The log writer thread wakes "
        "every 20 ms; under valgrind one request takes about that long, so the all-threads "
        "column charges a wake-up to every request, which real traffic shares among hundreds.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per request under callgrind: deterministic where wall-clock runs are not.

This VM's speed drifts by a third between minutes, so small costs (the access
log, a header) cannot be seen in requests per second. Instruction counts do not
drift. Each server runs under ``valgrind --tool=callgrind --separate-threads=yes``;
this process sends exactly N requests over one keep-alive connection, then
stops it. Two runs, N = WARM and N = WARM + COUNT, differenced, cancel start-up:
(Ir(WARM + COUNT) - Ir(WARM)) / COUNT is the cost of one request, for the
event-loop thread and for the whole process (the log writer thread included).

Every server runs with ``PYTHONHASHSEED=0`` unless ``--hash-seed random``: a
process that draws its own seed lays out its dicts and type caches differently
at start-up, which the differencing does not cancel (bench/README.md measures
the spread both ways). ``--runs N`` measures each case N times and reports the
median, with every run printed.

Run: ``python -m bench.instructions`` (needs valgrind; writes
``bench/results/instructions.md``). It takes several minutes; ``--help`` lists
the options.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.sources import photo
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
#: A cached variant hit: ``?w=400`` of a 4 MP JPEG (bench.hotpath's case), made once by
#: the first request, which is allowed its transform's time under valgrind.
VARIANT = "/i/alice/photo-4mp.jpg?w=400"
VARIANT_ROW = "edge, cached variant hit, log off"
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
    timing = (*off, ("EDGE_SERVER_TIMING", "on"))
    return [
        Case("bare ASGI app, same body and headers", "bench.baselines:bare", PUBLIC, 200),
        Case("edge, public hit, log off", "edge", PUBLIC, 200, off),
        Case("edge, public hit, log on", "edge", PUBLIC, 200, on),
        Case("edge, private signed hit, log off", "edge", signed, 200, off),
        Case("edge, private signed hit, log on", "edge", signed, 200, on),
        Case("edge, public hit, Server-Timing on", "edge", PUBLIC, 200, timing),
        Case("edge, private signed hit, Server-Timing on", "edge", signed, 200, timing),
        Case("edge, bad signature, log off", "edge", bad, 403, off),
        Case("edge, expired, log off", "edge", world.signed(exp=int(time.time()) - 60), 403, off),
        Case("edge, not found, log off", "edge", "/i/alice/none.png", 404, off),
        Case(VARIANT_ROW, "edge", VARIANT, 200, (*off, ("EDGE_TRANSFORM_TIMEOUT", "600"))),
    ]


def _tamper(url: str) -> str:
    at = url.index("sig=") + 4
    return url[:at] + ("B" if url[at] == "A" else "A") + url[at + 1 :]


def count(world: World, case: Case, requests: int, headers_json: str, seed: str) -> tuple[int, int]:
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
    env["PYTHONHASHSEED"] = seed
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


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="Instructions per request under callgrind, through uvicorn; writes "
        "bench/results/instructions.md unless --only is given. Needs valgrind.",
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="run the cases whose name holds TEXT (and the bare app)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs of each case; the median is reported"
    )
    parser.add_argument(
        "--hash-seed",
        default="0",
        help="PYTHONHASHSEED of every server: a number, or 'random' (each draws its own)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(sys.argv[1:] if argv is None else argv)
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-"))).build()
    try:
        port = free_port()
        proc = world.start(edge_argv(port), env=world.edge_env(EDGE_ACCESS_LOG="off"))
        headers_json = headers_for_baseline(wait_ready(port, PUBLIC, proc=proc))
        world.stop_all()
        (world.images / "public/alice/photo-4mp.jpg").write_bytes(photo(2400, 1600))
        rows = []
        for case in cases(world):
            if args.only is not None and args.only not in case.name and case.server == "edge":
                continue
            runs = []
            for _ in range(args.runs):
                low = count(world, case, WARM, headers_json, args.hash_seed)
                high = count(world, case, WARM + COUNT, headers_json, args.hash_seed)
                runs.append(tuple((h - lo) // COUNT for h, lo in zip(high, low, strict=True)))
                print(f"{case.name:45} {runs[-1][0]:>9,} {runs[-1][1]:>9,}", flush=True)
            loop, total = (statistics.median_low(column) for column in zip(*runs, strict=True))
            rows.append((case.name, loop, total))
            if args.runs > 1:
                spread = max(r[0] for r in runs) - min(r[0] for r in runs)
                print(f"{case.name:45} median {loop:,}, event-loop spread {spread:,}", flush=True)
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    if args.only is None:
        write(rows, args)
    return 0


def write(rows: list[tuple[str, int, int]], args: argparse.Namespace) -> None:
    bare_total = rows[0][2]
    lines = [
        "# Instructions per request (callgrind)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}. "
        f"Made by `python -m bench.instructions`: (Ir(N={WARM + COUNT}) - Ir(N={WARM})) / {COUNT}, "
        f"one keep-alive connection, 16 KiB body, PYTHONHASHSEED={args.hash_seed}"
        + (f", median of {args.runs} runs." if args.runs > 1 else "."),
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
    if VARIANT_ROW in by_name:
        loop_hit = by_name["edge, public hit, log off"][0]
        loop_variant, variant = by_name[VARIANT_ROW]
        lines.append("")
        lines.append(
            f"A cached variant hit ({VARIANT.rpartition('/')[2]}, a 4 MP JPEG made 400 px wide,"
            f" a body of its own size) against a public hit, log off: {loop_variant - loop_hit:+,}"
            f" event-loop instructions per request ({(loop_variant - loop_hit) / loop_hit:+.1%});"
            f" bare ASGI / variant hit {bare_total / variant:.3f}x."
        )
    for kind in ("public", "private signed"):
        loop_off, loop_on = (
            by_name[f"edge, {kind} hit, log off"][0],
            by_name[f"edge, {kind} hit, Server-Timing on"][0],
        )
        lines.append("")
        lines.append(
            f"Server-Timing on a {kind} hit (log off): {loop_on - loop_off:+,} event-loop"
            f" instructions per request ({(loop_on - loop_off) / loop_off:.1%} of the hit)."
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

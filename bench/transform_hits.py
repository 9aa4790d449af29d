"""Cached variants: a hit against the bare ASGI app, and hits while transforms saturate
the pool.

- **Cached variant hit**: one variant (``?w=400`` of the 4 MP JPEG, made once) asked
  again and again, against :func:`bench.baselines.bare` answering the same bytes with
  edge's headers, and beside it a plain hit of those bytes stored as an original;
  bracketed by the bare app's runs as the load harness's rows are
  (:func:`bench.measure.run_rounds`), every server on core 0.
- **Hits under transform load**: the same hit measured alone, then while a second wrk
  keeps every transform worker busy with cold transforms (the 4 MP JPEG, a new width per
  request, more connections than workers); alternating, so drift hits both alike. One
  core (edge on core 0, one worker) and two (edge on both, its default two workers).

Alone, ``python -m bench.transform_hits --nice 0,10`` measures hits under load at each
``EDGE_TRANSFORM_NICE`` given, on both layouts (3 rounds of 4 s), and prints a table.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import sources
from bench.measure import (
    SERVER_CORE,
    Scenario,
    Servers,
    Wrk,
    median,
    run_rounds,
    wrk,
)
from bench.sources import PHOTOS, USER
from bench.transform_cold import LAYOUTS, LUA, WIDTH, WRK_TIMEOUT, start_edge
from bench.world import World, free_port, headers_for_baseline, uvicorn_argv, wait_ready

HIT = f"/i/{USER}/{PHOTOS[1].name}?w=400"
COLD = f"/i/{USER}/{PHOTOS[1].name}?w={WIDTH}"
BARE = "bare ASGI app, same variant bytes"
EDGE_HIT = "edge: cached variant hit"
PLAIN = f"/i/{USER}/variant-bytes.jpg"
EDGE_PLAIN = "edge: plain cached hit of the same bytes"


def cached_hit(world: World, *, rounds: int, seconds: float) -> list[Scenario]:
    """The hit's req/s and CPU against the bare app's, as in the load harness."""
    port, pid = start_edge(world, str(SERVER_CORE))
    headers = wait_ready(port, HIT)
    body = world.root / "variant.jpg"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{HIT}") as reply:
        body.write_bytes(reply.read())
    # The same bytes stored as an original: what a plain hit of them costs, beside.
    (world.images / "public" / USER / PLAIN.rsplit("/", 1)[1]).write_bytes(body.read_bytes())
    servers: Servers = {"edge": (port, pid)}
    env = world.edge_env(BENCH_BODY=str(body), BENCH_HEADERS=headers_for_baseline(headers))
    bare_port = free_port()
    proc = world.start(uvicorn_argv("bench.baselines:bare", bare_port), env=env, core=SERVER_CORE)
    wait_ready(bare_port, HIT, proc=proc)
    servers["bare"] = (bare_port, proc.pid)
    found = [
        Scenario(BARE, "bare", HIT, 200, baseline=True),
        Scenario(EDGE_HIT, "edge", HIT, 200),
        Scenario(EDGE_PLAIN, "edge", PLAIN, 200),
    ]
    try:
        run_rounds(servers, found, rounds=rounds, seconds=seconds)
    finally:
        world.stop_all()
    return found


@dataclass
class Loaded:
    """Cached hits with and without cold transforms running beside them, in one layout."""

    layout: str
    alone: list[Wrk] = field(default_factory=list)
    loaded: list[Wrk] = field(default_factory=list)
    transforms_rps: list[float] = field(default_factory=list)
    transform_errors: int = 0

    def p99(self, which: str) -> float:
        return median([run.p99_ms for run in getattr(self, which)])

    def p50(self, which: str) -> float:
        return median([run.p50_ms for run in getattr(self, which)])

    def rps(self, which: str) -> float:
        return median([run.rps for run in getattr(self, which)])

    @property
    def ratios(self) -> list[float]:
        return [load.rps / alone.rps for alone, load in zip(self.alone, self.loaded, strict=True)]


def hits_under_load(
    world: World, layout: str, *, rounds: int, seconds: float, **settings: str
) -> Loaded:
    """Hits alone and under transform load, edge started with ``settings`` (EDGE_*)."""
    cores, count = LAYOUTS[layout]
    port, _ = start_edge(world, cores, **settings)
    url = f"http://127.0.0.1:{port}"
    wait_ready(port, HIT)
    lua = world.root / "widths.lua"
    lua.write_text(LUA)
    result = Loaded(layout)
    offset = 0
    try:
        for number in range(rounds):
            for loaded in (False, True) if number % 2 == 0 else (True, False):
                if not loaded:
                    result.alone.append(wrk(url + HIT, seconds))
                    continue
                busy: list[Wrk] = []
                cold = threading.Thread(
                    target=_transforms, args=(url, seconds + 3, 3 * count, lua, offset, busy)
                )
                cold.start()
                threading.Event().wait(1.5)  # the pool full before the hits are counted
                result.loaded.append(wrk(url + HIT, seconds))
                cold.join()
                offset += busy[0].requests
                result.transforms_rps.append(busy[0].rps)
                result.transform_errors += busy[0].errors + busy[0].non_2xx
            alone, load = result.alone[-1], result.loaded[-1]
            print(
                f"  {layout}, round {number + 1}: hits alone {alone.rps:,.0f} req/s p99 "
                f"{alone.p99_ms:.1f} ms; under load {load.rps:,.0f} req/s p99 "
                f"{load.p99_ms:.1f} ms, transforms {result.transforms_rps[-1]:.1f}/s",
                flush=True,
            )
    finally:
        world.stop_all()
    return result


def _transforms(
    url: str, seconds: float, connections: int, lua: Path, offset: int, into: list[Wrk]
) -> None:
    """Cold transforms for ``seconds``, a new width per request (run in a thread)."""
    args = (COLD, str(offset))
    into.append(
        wrk(url, seconds, connections=connections, script=str(lua), script_args=args,
            timeout=WRK_TIMEOUT)
    )  # fmt: skip


def ratio(scenarios: list[Scenario]) -> tuple[float, float]:
    """The edge hit's median req/s ratio and CPU ratio to the bare app."""
    edge = scenarios[1]
    return median(edge.ratios), median(edge.cpu_ratios)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    nices = args[args.index("--nice") + 1].split(",") if "--nice" in args else ["0", "10"]
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-hits-")))
    sources.write(world.images / "public" / USER)
    lines = ["| layout, niceness | alone req/s | under load | ratio | loaded p99 | transforms/s |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for layout in LAYOUTS:
        for nice in nices:
            found = hits_under_load(world, layout, rounds=3, seconds=4, EDGE_TRANSFORM_NICE=nice)
            alone, loaded = found.rps("alone"), found.rps("loaded")
            lines.append(
                f"| {layout}, {nice} | {alone:,.0f} | {loaded:,.0f} | {loaded / alone:.2f}x | "
                f"{found.p99('loaded'):.1f} ms | {median(found.transforms_rps):.1f} |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

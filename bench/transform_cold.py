"""Cold transforms: edge against the bare pyvips app and thumbor, every request a new width.

Three servers read the same source folder (:mod:`bench.sources`): edge (``edge serve``,
its defaults but the hot cache off, ``EDGE_CACHE_TTL=0``, and a long transform queue
wait so that queued requests wait as the others' do instead of getting 503), the bare
pyvips app (:func:`bench.baselines.thumbnail`, a thread pool of edge's pool size) and
thumbor (:mod:`bench.thumbor`). No cache anywhere can help: wrk's Lua script
(:data:`LUA`) gives every request the next width from 300 to 1299 px, and each run goes
on where the previous one stopped.

Two layouts, each in its own set of servers: one core (every server pinned to core 0,
one transform worker, one thread, one thumbor process) and two cores (edge with its
default workers, two; the bare app with two threads; thumbor ``--processes 2``). wrk is
pinned to core 1 as in the load harness; on two cores it shares core 1, which costs
each contender alike. Rounds interleave the contenders (order alternating) and each
ratio is taken within its round; tables report medians.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import check_status, cpu_seconds, median, wrk
from bench.sources import GRAPHIC, PHOTOS, USER, SourceFile
from bench.thumbor import start as start_thumbor
from bench.world import World, edge_argv, free_port, uvicorn_argv, wait_ready

#: Widths 300 .. 1299, the next one for every request.
LUA = """
local template, n = "", 0
function init(args)
  template = args[1]
  n = tonumber(args[2])
end
function request()
  n = n + 1
  local path = template:gsub("WIDTH", tostring(300 + n % 1000))
  return wrk.format("GET", path)
end
"""
WIDTH = "WIDTH"
CONTENDERS = ("edge", "bare", "thumbor")
LABELS = {"edge": "edge", "bare": "bare pyvips app", "thumbor": "thumbor 7.8 (PIL)"}
#: wrk connections per core: enough to keep every worker busy while others are answered.
CONNECTIONS_PER_CORE = 3
WRK_TIMEOUT = 60.0
#: Layouts: name -> (taskset's core list, cores).
LAYOUTS = {"one core": ("0", 1), "two cores": ("0,1", 2)}


@dataclass(frozen=True)
class Case:
    source: SourceFile
    output: str  # jpeg, webp, avif
    crop: bool = False  # w=W&h=W&fit=cover&crop=attention

    @property
    def name(self) -> str:
        if self.crop:
            return f"{self.source.label} -> {self.output.upper()} cover, attention"
        return f"{self.source.label} -> {self.output.upper()}"

    def path(self, contender: str) -> str:
        """The URL's path and query for ``contender``, with WIDTH for the width."""
        stem, extension = os.path.splitext(self.source.name)
        if contender == "edge":
            name = self.source.name if extension[1:] == _EXT[self.output] else None
            target = f"/i/{USER}/{name or stem + '.' + _EXT[self.output]}?w={WIDTH}"
            return target + (f"&h={WIDTH}&fit=cover&crop=attention" if self.crop else "")
        if contender == "bare":
            extra = f"&h={WIDTH}&crop=attention" if self.crop else ""
            return f"/t/{self.source.name}?w={WIDTH}{extra}&fmt={self.output}"
        size = f"{WIDTH}x{WIDTH}/smart" if self.crop else f"{WIDTH}x0"
        keep = extension[1:] == _EXT[self.output]
        filters = "" if keep else f"/filters:format({self.output})"
        return f"/unsafe/{size}{filters}/{self.source.name}"


_EXT = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
_PHOTO_1, _PHOTO_4, _PHOTO_24 = PHOTOS
CASES = (
    Case(_PHOTO_1, "jpeg"),
    Case(_PHOTO_4, "jpeg"),
    Case(_PHOTO_4, "webp"),
    Case(_PHOTO_4, "avif"),
    Case(_PHOTO_4, "jpeg", crop=True),
    Case(_PHOTO_24, "jpeg"),
    Case(GRAPHIC, "jpeg"),
    Case(GRAPHIC, "webp"),
    Case(GRAPHIC, "avif"),
)
QUICK = (CASES[1], CASES[3], CASES[6])


@dataclass
class Runs:
    """One contender's runs of one case in one layout."""

    rps: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    errors: int = 0
    offset: int = 0  # where the next run's widths go on


@dataclass
class Row:
    case: Case
    layout: str
    runs: dict[str, Runs] = field(default_factory=lambda: {c: Runs() for c in CONTENDERS})
    #: per round: edge's req/s over the bare app's, over thumbor's; CPU likewise (theirs/edge's)
    vs_bare: list[float] = field(default_factory=list)
    vs_thumbor: list[float] = field(default_factory=list)
    cpu_vs_bare: list[float] = field(default_factory=list)
    cpu_vs_thumbor: list[float] = field(default_factory=list)

    def ratio(self, name: str) -> float:
        return median(getattr(self, name))


Servers = dict[str, tuple[int, list[int]]]  # contender -> (port, pids doing the work)


def edge_env(world: World, **overrides: str) -> dict[str, str]:
    """Edge's settings for the transform rows: defaults, access log off, long queue wait."""
    settings = {"EDGE_ACCESS_LOG": "off", "EDGE_TRANSFORM_QUEUE_TIMEOUT": "60", **overrides}
    return world.edge_env(**settings)


def start_edge(world: World, cores: str, **overrides: str) -> tuple[int, int]:
    port = free_port()
    argv = ["taskset", "-c", cores, *edge_argv(port)]
    proc = world.start(argv, env=edge_env(world, **overrides))
    wait_ready(port, f"/i/{USER}/{PHOTOS[0].name}", proc=proc)
    return port, proc.pid


def start_servers(world: World, sources: Path, layout: str) -> Servers:
    cores, count = LAYOUTS[layout]
    port, pid = start_edge(world, cores, EDGE_CACHE_TTL="0")
    servers: Servers = {"edge": (port, [pid])}
    env = world.edge_env(BENCH_SOURCES=str(sources), BENCH_THREADS=str(count))
    port = free_port()
    argv = ["taskset", "-c", cores, *uvicorn_argv("bench.baselines:thumbnail", port)]
    proc = world.start(argv, env=env)
    wait_ready(port, f"/t/{PHOTOS[0].name}?w=64", proc=proc)
    servers["bare"] = (port, [proc.pid])
    port, pids = start_thumbor(
        world, sources, processes=count, cores=cores, probe=f"/unsafe/64x0/{PHOTOS[0].name}"
    )
    servers["thumbor"] = (port, pids)
    return servers


def run_once(world: World, servers: Servers, row: Row, contender: str, seconds: float) -> float:
    """One wrk run of a row's contender; returns its requests per second."""
    port, pids = servers[contender]
    runs = row.runs[contender]
    lua = world.root / "widths.lua"
    if not lua.exists():
        lua.write_text(LUA)
    cores = LAYOUTS[row.layout][1]
    before = sum(sum(cpu_seconds(pid)) for pid in pids)
    result = wrk(
        f"http://127.0.0.1:{port}",
        seconds,
        connections=CONNECTIONS_PER_CORE * cores,
        script=str(lua),
        script_args=(row.case.path(contender), str(runs.offset)),
        timeout=WRK_TIMEOUT,
    )
    cpu = sum(sum(cpu_seconds(pid)) for pid in pids) - before
    runs.offset += result.requests
    runs.rps.append(result.rps)
    runs.cpu_ms.append(cpu / max(result.requests, 1) * 1000)
    runs.p50_ms.append(result.p50_ms)
    runs.errors += result.errors + result.non_2xx
    print(f"    {contender:8} {result.rps:7.1f} req/s {runs.cpu_ms[-1]:7.1f} ms CPU", flush=True)
    return result.rps


def run_layout(
    world: World,
    sources: Path,
    layout: str,
    cases: tuple[Case, ...],
    *,
    rounds: int,
    seconds: float,
) -> list[Row]:
    servers = start_servers(world, sources, layout)
    rows = [Row(case, layout) for case in cases]
    try:
        for row in rows:  # every URL answers, and each server has run each path once
            for contender in CONTENDERS:
                path = row.case.path(contender).replace(WIDTH, "299")
                check_status(servers[contender][0], path, 200)
        for number in range(rounds):
            for row in rows:
                print(f"  {layout}, round {number + 1}: {row.case.name}", flush=True)
                order = CONTENDERS if (number + rows.index(row)) % 2 == 0 else CONTENDERS[::-1]
                rps = {c: run_once(world, servers, row, c, seconds) for c in order}
                cpu = {c: row.runs[c].cpu_ms[-1] for c in CONTENDERS}
                row.vs_bare.append(rps["edge"] / rps["bare"])
                row.vs_thumbor.append(rps["edge"] / rps["thumbor"])
                row.cpu_vs_bare.append(cpu["bare"] / cpu["edge"])
                row.cpu_vs_thumbor.append(cpu["thumbor"] / cpu["edge"])
    finally:
        world.stop_all()
    return rows

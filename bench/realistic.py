"""The realistic-traffic scenarios: edge replaying :mod:`bench.traffic`'s request list
through wrk, beside the single-URL ones, measured the same way (same cores, each run
bracketed by the bare app).

Three edges, each one process on the server core, trusting ``127.0.0.1`` as a proxy so
that ``X-Forwarded-For`` names the client: the load harness's settings (access log
off), the same with the access log on (its lines to a pipe drained by ``cat`` on the
load core; its memo is keyed by the client), and the hot cache off, where every request
reads its file (the case where the cache cannot hold the objects).
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from dataclasses import dataclass

from bench import traffic
from bench.measure import LOAD_CORE, SERVER_CORE, Replay, Scenario, Servers
from bench.traffic import Traffic
from bench.world import World, edge_argv, free_port, wait_ready

#: wrk's request generator: the list read once, then each request its next line,
#: from where the previous run stopped (the harness passes the offset).
LUA = """-- bench/realistic.py: replay a request list ("target client status" lines) from an offset.
local requests, count, index = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    local target, client = line:match("^(%S+) (%S+)")
    count = count + 1
    requests[count] = "GET " .. target .. " HTTP/1.1\\r\\nHost: bench\\r\\n" ..
      "X-Forwarded-For: " .. client .. "\\r\\n\\r\\n"
  end
  index = tonumber(args[2]) % count
end
function request()
  index = index % count + 1
  return requests[index]
end
"""
#: Seconds of the list replayed, unrecorded, before each recorded run: the hot cache's
#: entries live 60 s and runs of a scenario are minutes apart, so without it each run
#: would start from an empty cache, as no steadily loaded process does.
WARM_SECONDS = 2.0
LOG_OFF = {"EDGE_ACCESS_LOG": "off"}
#: (scenario name, server name, settings beyond the world's)
EDGES = (
    ("edge: realistic traffic", "realistic", LOG_OFF),
    ("edge: realistic, access log on", "realistic+log", {"EDGE_ACCESS_LOG": "json"}),
    ("edge: realistic, hot cache off", "realistic-cache", {**LOG_OFF, "EDGE_CACHE_TTL": "0"}),
)


@dataclass
class Setup:
    traffic: Traffic
    replay: Replay  # a template: each scenario walks the list with its own copy


def prepare(world: World) -> Setup:
    """The objects in the world's images, the request list and the Lua script on disk."""
    found = traffic.build(world)
    lua = world.root / "replay.lua"
    lua.write_text(LUA)
    listing = found.write(world.root / "requests.txt")
    return Setup(found, Replay(lua, listing, found.statuses()))


def start_servers(world: World) -> Servers:
    servers: Servers = {}
    for _, name, settings in EDGES:
        port = free_port()
        env = world.edge_env(EDGE_TRUSTED_PROXIES="127.0.0.1", **settings)
        logged = settings["EDGE_ACCESS_LOG"] == "json"
        stdout = world.drained_pipe(LOAD_CORE) if logged else subprocess.DEVNULL
        proc = world.start(edge_argv(port), env=env, core=SERVER_CORE, stdout=stdout)
        if logged:
            os.close(stdout)  # the server holds it now
        wait_ready(port, "/healthz", proc=proc)
        servers[name] = (port, proc.pid)
    return servers


def scenarios(setup: Setup) -> list[Scenario]:
    first = setup.traffic.requests[0]
    return [
        Scenario(
            name,
            server,
            first.target,
            first.status,
            replay=Replay(setup.replay.lua, setup.replay.requests, setup.replay.statuses),
            warm=WARM_SECONDS,
        )
        for name, server, _ in EDGES
    ]


@dataclass
class Outcome:
    """What the report says about the realistic rows beyond the table."""

    summary: str  # the request list in one sentence
    warm_seconds: float
    cache_hits: dict[str, float]  # scenario name -> share of requests the hot cache answered


def outcome(setup: Setup, servers: Servers) -> Outcome:
    return Outcome(setup.traffic.summary(), WARM_SECONDS, cache_hit_rates(servers))


def cache_hit_rates(servers: Servers) -> dict[str, float]:
    """Each realistic edge's share of image requests answered from its hot cache, from its
    own counters (/metrics) over all its runs, warm-ups included."""
    rates = {}
    for name, server, _ in EDGES:
        with urllib.request.urlopen(f"http://127.0.0.1:{servers[server][0]}/metrics") as reply:
            text = reply.read().decode()
        hits, misses = (
            float(m.group(1)) if (m := re.search(rf"^{metric}_total (\S+)$", text, re.M)) else 0.0
            for metric in ("edge_cache_hits", "edge_cache_misses")
        )
        if hits + misses:
            rates[name] = hits / (hits + misses)
    return rates

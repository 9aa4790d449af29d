"""What transforms cost in memory: 8 concurrent cold transforms of the 24 MP source, and
a decompression bomb refused.

Each runs on a fresh edge (two cores, its defaults, a long transform queue wait so all 8
requests are transformed rather than 503): first a small transform (so libvips, its
threads and the pool exist), then the peak resident set (VmHWM) read before and after.
The 8 transforms run as the pool lets them (two at a time by default); once more with
``EDGE_TRANSFORM_WORKERS=8``, all at once, to show what the pool's bound is worth.
"""

from __future__ import annotations

import statistics
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from bench.measure import at_once, cpu_seconds, peak_rss
from bench.sources import BOMB, PHOTOS, USER
from bench.transform_cold import LAYOUTS, start_edge
from bench.world import World

CONCURRENT = 8
BOMB_TRIES = 20


@dataclass
class Peak:
    label: str
    statuses: list[int]
    seconds: float
    growth_bytes: int


@dataclass
class Bomb:
    statuses: list[int]
    median_ms: float
    max_ms: float
    cpu_ms: float  # edge's CPU per refusal (user + system), which other tenants cannot inflate
    growth_bytes: int


def fetch(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def _warm(port: int) -> None:
    fetch(port, f"/i/{USER}/{PHOTOS[0].name}?w=320")


def concurrent_transforms(world: World, *, workers: str | None = None) -> Peak:
    overrides = {"EDGE_TRANSFORM_WORKERS": workers} if workers else {}
    port, pid = start_edge(world, LAYOUTS["two cores"][0], **overrides)
    try:
        _warm(port)
        before = peak_rss(pid)
        statuses = [0] * CONCURRENT

        def one(index: int) -> None:
            statuses[index] = fetch(port, f"/i/{USER}/{PHOTOS[2].name}?w={1000 + index}")

        seconds = at_once(one, CONCURRENT)
        growth = peak_rss(pid) - before
    finally:
        world.stop_all()
    label = f"EDGE_TRANSFORM_WORKERS={workers}" if workers else "defaults (2 workers)"
    return Peak(label, statuses, seconds, growth)


def bomb(world: World) -> Bomb:
    port, pid = start_edge(world, LAYOUTS["two cores"][0])
    try:
        _warm(port)
        before, cpu = peak_rss(pid), sum(cpu_seconds(pid))
        statuses, times = [], []
        for n in range(BOMB_TRIES):
            started = time.perf_counter()
            statuses.append(fetch(port, f"/i/{USER}/{BOMB}?w={400 + n}"))
            times.append((time.perf_counter() - started) * 1000)
        growth = peak_rss(pid) - before
        cpu_ms = (sum(cpu_seconds(pid)) - cpu) / BOMB_TRIES * 1000
    finally:
        world.stop_all()
    return Bomb(statuses, statistics.median(times), max(times), cpu_ms, growth)

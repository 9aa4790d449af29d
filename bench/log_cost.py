"""What the access log costs a cached hit, wall-clock: one edge with it off, one with it on.

``bench.load`` measures each edge against runs of the bare app around it, so the
log's cost there is a ratio of two ratios, each as noisy as this VM. Here the two
edges (same core, same settings but ``EDGE_ACCESS_LOG``) are measured in
alternating pairs of short ``wrk`` runs; each pair gives one figure, the log-on
edge's CPU per request over the log-off edge's (user + system, from /proc), taken
seconds apart so the VM's drift mostly cancels. The median over many pairs is the
result, reported with its quartiles. The log-on edge writes to a pipe that ``cat``
drains on the load core, as a container runtime or journald would.

Two processes differ even when identical (hash seed, memory layout), by a few
percent that pairs cannot cancel, so the edges are restarted for each block of
pairs; and a third, log-off edge is measured the same way against the first:
that A/A row is what "no difference" looks like on this machine.

Run: ``python -m bench.log_cost [--blocks B] [--pairs N] [--seconds S]`` (``make bench-log``):
writes ``bench/results/log-cost.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import LOAD_CORE, SERVER_CORE, cpu_seconds, wrk
from bench.world import PUBLIC, ROOT, World, edge_argv, free_port, wait_ready

RESULTS = ROOT / "bench" / "results" / "log-cost.md"


def start_edges(world: World) -> dict[str, tuple[int, int]]:
    """Three edges pinned to the server core: "off", "on" and "off again" (the A/A control)
    -> (port, pid)."""
    edges = {}
    for name, log in (("off", "off"), ("on", "json"), ("off again", "off")):
        port = free_port()
        stdout = world.drained_pipe(LOAD_CORE) if log == "json" else subprocess.DEVNULL
        proc = world.start(
            edge_argv(port),
            env=world.edge_env(EDGE_ACCESS_LOG=log),
            core=SERVER_CORE,
            stdout=stdout,
        )
        if stdout != subprocess.DEVNULL:
            os.close(stdout)
        wait_ready(port, PUBLIC, proc=proc)
        edges[name] = (port, proc.pid)
    return edges


def cpu_per_request(port: int, pid: int, path: str, seconds: float) -> tuple[float, float]:
    """(CPU µs per request, requests per second) of one wrk run."""
    before = sum(cpu_seconds(pid))
    result = wrk(f"http://127.0.0.1:{port}{path}", seconds)
    if result.errors or result.non_2xx:
        raise SystemExit(f"{path}: {result.errors} errors, {result.non_2xx} non-2xx answers")
    return (sum(cpu_seconds(pid)) - before) / max(result.requests, 1) * 1e6, result.rps


def pairs(
    edges: dict[str, tuple[int, int]], path: str, against: str, *, count: int, seconds: float
) -> Pairs:
    """Per pair: ``against``'s CPU per request over the log-off edge's, the same for req/s,
    and the log-off edge's CPU µs."""
    found = Pairs()
    for number in range(count):
        order = ("off", against) if number % 2 == 0 else (against, "off")
        got = {name: cpu_per_request(*edges[name], path, seconds) for name in order}
        found.cpu.append(got[against][0] / got["off"][0])
        found.rps.append(got[against][1] / got["off"][1])
        found.base.append(got["off"][0])
    return found


@dataclass
class Pairs:
    cpu: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)

    def extend(self, other: Pairs) -> None:
        self.cpu += other.cpu
        self.rps += other.rps
        self.base += other.base


def write(results: dict[str, Pairs], *, blocks: int, seconds: float) -> None:
    count = len(next(iter(results.values())).cpu)
    lines = [
        "# The access log's cost on a cached hit, wall-clock",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Edges on core "
        f"{SERVER_CORE} (log off; log on, its lines to a pipe drained by `cat`; log off again), "
        f"`wrk -t1 -c32` on core {LOAD_CORE}; {count} alternating pairs of {seconds:g} s runs "
        f"per row, in {blocks} blocks of freshly started edges (`python -m bench.log_cost`).",
        "",
        "| cached hit | CPU per request, against log off: median | quartiles "
        "| req/s, against log off: median | log-off CPU per request |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, found in results.items():
        low, middle, high = statistics.quantiles(found.cpu, n=4)
        lines.append(
            f"| {name} | {middle - 1:+.1%} | {low - 1:+.1%} to {high - 1:+.1%} | "
            f"{statistics.median(found.rps) - 1:+.1%} | {statistics.median(found.base):.1f} µs |"
        )
    lines += [
        "",
        "Each pair's two runs are seconds apart, so the VM's drift, which moves the bare",
        "app's speed by a third within minutes, mostly cancels; the quartiles say how much",
        "is left, and the A/A row (two identical log-off edges) what a difference of",
        "nothing measures. Fresh processes per block average out what one process's",
        "layout (hash seed, addresses) adds or takes. The instruction count of the same",
        "line (`python -m bench.hotpath --all`, exact) is in `bench/README.md`.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))


#: (row name, path or None for the signed URL, the edge compared with the log-off one)
ROWS = (
    ("public", PUBLIC, "on"),
    ("private, signed", None, "on"),
    ("A/A control: public, both logs off", PUBLIC, "off again"),
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    blocks = int(args[args.index("--blocks") + 1]) if "--blocks" in args else 5
    count = int(args[args.index("--pairs") + 1]) if "--pairs" in args else 6
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 2
    if shutil.which("wrk") is None:
        print("bench needs wrk: apt-get install wrk (Debian's package)", file=sys.stderr)
        return 2
    world = World(Path(tempfile.mkdtemp(prefix="edge-log-cost-"))).build()
    results = {name: Pairs() for name, _, _ in ROWS}
    try:
        for block in range(blocks):  # fresh processes per block: see the module's docstring
            edges = start_edges(world)
            for name, path, against in ROWS:
                found = pairs(edges, path or world.signed(), against, count=count, seconds=seconds)
                results[name].extend(found)
                print(
                    f"block {block + 1}: {name}: {statistics.median(found.cpu) - 1:+.1%}",
                    flush=True,
                )
            world.stop_all()
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    write(results, blocks=blocks, seconds=seconds)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

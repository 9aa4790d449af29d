"""The load harness: edge against its baselines, same run, same body, same core.

One uvicorn worker (or nginx worker) pinned to core 0, ``wrk`` pinned to core 1.
Rounds are interleaved (every scenario once per round) and each ratio is taken
within its round, so a slow minute of the VM hits edge and its baselines alike;
the tables report medians over rounds. Besides requests per second and latency,
the server's own CPU time per request is read from /proc (user and system),
which shows what a request costs the process whatever the machine's pace.
Scenarios: one URL asked again and again (:mod:`bench.single`), realistic traffic
replayed from a request list (:mod:`bench.realistic`), cold misses from S3
(:mod:`bench.cold`), slow downloads (:mod:`bench.memory`); how each is measured:
:mod:`bench.measure`.

Run: ``python -m bench.load`` (``make bench``). Writes ``bench/results/load.md``
and ``bench/results/load.png``. Options: ``--rounds N`` (3), ``--seconds S`` (5),
``--only TEXT`` (only the scenarios whose name holds TEXT, printed, nothing written).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import cold, memory, realistic, report, single
from bench.measure import median, run_rounds
from bench.world import ROOT, World


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 5
    only = args[args.index("--only") + 1] if "--only" in args else None  # a quick A/B: no files
    if shutil.which("wrk") is None:
        print("bench needs wrk: apt-get install wrk (Debian's package)", file=sys.stderr)
        return 2
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-"))).build()
    try:
        servers = single.start_servers(world)
        found = single.edge_scenarios(world)
        replaying = only is None or any(only in name for name, _, _ in realistic.EDGES)
        if replaying:
            setup = realistic.prepare(world)
            servers |= realistic.start_servers(world)
            found += realistic.scenarios(setup)
        found += single.baseline_scenarios(world, servers)
        if only is not None:
            found = [found[0], *(s for s in found[1:] if only in s.name)]
        print(f"{len(found)} scenarios, {rounds} rounds of {seconds:g} s", flush=True)
        run_rounds(servers, found, rounds=rounds, seconds=seconds)
        if only is not None:
            for s in found:
                ratio, cpu = median(s.ratios), median(s.cpu_ratios)
                print(f"{s.name:45} ratio {ratio:.2f}x  CPU ratio {cpu:.2f}x")
            return 0
        replayed = realistic.outcome(setup, servers)
        world.stop_all()
        print("cold misses from S3", flush=True)
        misses = cold.run(world, seconds=seconds)
        world.stop_all()
        print("memory: 8 slow downloads of 256 MiB", flush=True)
        mem = memory.run(world)
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    report.write(found, misses, mem, replayed, rounds=rounds, seconds=seconds)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

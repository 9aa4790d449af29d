"""The transform scenarios of ``make bench``: cold transforms against the bare pyvips app
and thumbor on one core and two, a cached variant hit, hits under transform load, memory
and a bomb (what each does: :mod:`bench.transform_cold`, :mod:`bench.transform_hits`,
:mod:`bench.transform_memory`).

Run: ``python -m bench.transform_load`` (``make bench``; about 20 minutes) writes
``bench/results/transform-load.md`` and ``transform-load.png``. Options: ``--rounds N``
(3), ``--seconds S`` (5), ``--quick`` (three cases, one round of 3 s, printed, nothing
written), ``--only TEXT`` (only the cold cases whose name holds TEXT, printed).
Needs thumbor in ``.venv/thumbor`` (``make bench-thumbor``) and wrk.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from bench import sources, transform_cold, transform_hits, transform_memory, transform_report
from bench.thumbor import program
from bench.world import ROOT, World

NOTES = """## What bounds the misses

What each miss comes to, measured, and what was tried: `bench/README.md`, section
"Transforms under load"."""


class LoadWatch:
    """The machine's 1-minute load average, sampled every 5 s while the bench runs."""

    def __init__(self) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(5):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        return min(self.samples), max(self.samples)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1 if quick else 3
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 3 if quick else 5
    only = args[args.index("--only") + 1] if "--only" in args else None
    if shutil.which("wrk") is None:
        print("bench needs wrk: apt-get install wrk (Debian's package)", file=sys.stderr)
        return 2
    if program() is None:
        print("bench needs thumbor: make bench-thumbor (.venv/thumbor)", file=sys.stderr)
        return 2
    cases: tuple[transform_cold.Case, ...] = transform_cold.QUICK if quick else transform_cold.CASES
    if only is not None:
        cases = tuple(case for case in transform_cold.CASES if only in case.name)
    watch = LoadWatch()
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-transform-")))
    try:
        folder = sources.write(world.images / "public" / sources.USER)
        rows = []
        for layout in transform_cold.LAYOUTS:
            print(f"cold transforms, {layout}", flush=True)
            rows += transform_cold.run_layout(
                world, folder, layout, cases, rounds=rounds, seconds=seconds
            )
        if only is not None:
            print("\n".join(transform_report.cold_table(rows)))
            return 0
        print("cached variant hit", flush=True)
        hit = transform_hits.cached_hit(world, rounds=rounds, seconds=seconds)
        loaded = []
        for layout in transform_cold.LAYOUTS:
            print(f"hits under transform load, {layout}", flush=True)
            loaded.append(
                transform_hits.hits_under_load(world, layout, rounds=rounds, seconds=seconds)
            )
        print("memory and bomb", flush=True)
        peaks = [
            transform_memory.concurrent_transforms(world),
            transform_memory.concurrent_transforms(world, workers="8"),
        ]
        bomb = transform_memory.bomb(world)
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    outcome = transform_report.Outcome(
        rows, hit, loaded, peaks, bomb, rounds, seconds, watch.stop()
    )
    transform_report.write(outcome, NOTES, save=not quick)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

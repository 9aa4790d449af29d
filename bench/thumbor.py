"""thumbor, the peer a Python shop would pick, run by the bench from its own virtualenv.

thumbor 7.8.0 pins its own Pillow, tornado and friends, so it lives apart from edge's
dependencies: in ``.venv/thumbor`` (``make bench`` makes it: ``make bench-thumbor``), or
wherever ``BENCH_THUMBOR`` names its ``thumbor`` program. Configured as a user would for
this job: its file loader on the bench's source folder, ``unsafe`` URLs, its default
engine (PIL) and defaults otherwise (JPEG quality 80, progressive and optimised; AVIF at
Pillow's default speed), with no storage for originals or results (no cache anywhere,
as for edge's cold rows), ``--processes N`` for N cores.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.world import ROOT, World, free_port, wait_ready

VERSION = "7.8.0"
VENV = ROOT / ".venv" / "thumbor"


class _Group(subprocess.Popen[bytes]):
    """thumbor and the processes it forks, in a session of their own: stopping it stops
    them all (thumbor's parent does not pass its SIGTERM on to its children)."""

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def program() -> Path | None:
    """The ``thumbor`` program to run, or None when it is not installed."""
    named = os.environ.get("BENCH_THUMBOR")
    candidates = [Path(named)] if named else [VENV / "bin" / "thumbor"]
    return next((path for path in candidates if path.exists()), None)


def config(world: World, sources: Path) -> Path:
    conf = world.root / "thumbor.conf"
    conf.write_text(
        "\n".join(
            [
                "LOADER = 'thumbor.loaders.file_loader'",
                f"FILE_LOADER_ROOT_PATH = {str(sources)!r}",
                "STORAGE = 'thumbor.storages.no_storage'",
                "RESULT_STORAGE = None",
                "ALLOW_UNSAFE_URL = True",
                "ENGINE = 'thumbor.engines.pil'",
                "QUALITY = 80",
                "MAX_AGE = 0",
                "",
            ]
        )
    )
    return conf


def start(
    world: World, sources: Path, *, processes: int, cores: str, probe: str
) -> tuple[int, list[int]]:
    """thumbor on ``cores`` (taskset's list), ``processes`` of them; returns its port and
    the pids doing the work (the forked children, or the one process)."""
    thumbor = program()
    if thumbor is None:
        raise SystemExit("thumbor is not installed: make bench-thumbor (or set BENCH_THUMBOR)")
    port = free_port()
    argv = [str(thumbor), "--port", str(port), "--ip", "127.0.0.1", "--conf"]
    argv += [str(config(world, sources)), "--processes", str(processes), "--log-level", "error"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", cores, *argv]
    with (world.root / f"thumbor-{port}.log").open("wb") as log:
        proc = _Group(
            argv, stdout=subprocess.DEVNULL, stderr=log, cwd=world.root, start_new_session=True
        )
    world.procs.append(proc)
    wait_ready(port, probe, timeout=120)
    if processes == 1:
        return port, [proc.pid]
    deadline = time.monotonic() + 30
    while True:
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        children = [int(pid) for pid in found.stdout.split()]
        if len(children) >= processes or time.monotonic() > deadline:
            return port, children or [proc.pid]
        time.sleep(0.2)

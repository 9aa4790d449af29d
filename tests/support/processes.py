"""`edge` as a real process, as an operator runs it: its environment, start, readiness,
stop and memory, and a folder of images for it to serve."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from edge.samples import png
from tests.support.client import TLS

EDGE = [sys.executable, "-m", "edge.cli"]
#: The image :func:`populated` stores, public and private.
PNG = png(32, 32)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "AWS_"))}
    return {**env, **extra}


def run_edge(
    args: list[str], *, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` run to its end (within a minute) in a clean environment with ``env``: its
    exit status and output."""
    return subprocess.run(
        [*EDGE, *args], env=clean_env(**env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def check_storage(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, str], list[str]]:
    """`edge check-storage`: its exit status, the facts printed (label: value) and the
    stderr lines (its problems, and any warning)."""
    result = run_edge(["check-storage"], env=env, cwd=cwd)
    facts = (line.split(": ", 1) for line in result.stdout.splitlines())
    return (
        result.returncode,
        {label.strip(): value.strip() for label, value in facts},
        result.stderr.splitlines(),
    )


@contextmanager
def edge_process(
    args: list[str], *, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `edge ARGS`, its output in ``cwd/edge.log``; interrupt it afterwards."""
    with (cwd / "edge.log").open("wb") as log:
        process = subprocess.Popen([*EDGE, *args], env=env, cwd=cwd, stdout=log, stderr=log)
        try:
            yield process
        finally:
            stop(process, how=signal.SIGINT)


def stop(process: subprocess.Popen[bytes], *, how: signal.Signals = signal.SIGTERM) -> None:
    """Stop a process the test started, killing it if it does not stop within 10 s."""
    if process.poll() is None:
        process.send_signal(how)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, "edge exited early"
        try:
            if httpx.get(base + "/healthz", timeout=1, verify=TLS).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "edge did not start"
        time.sleep(0.1)


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def populated(tmp_path: Path) -> Path:
    """``tmp_path/images``, with :data:`PNG` as public/alice/photo.png and
    private/alice/secret.png."""
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private" / "alice").mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(PNG)
    (root / "private" / "alice" / "secret.png").write_bytes(PNG)
    return root

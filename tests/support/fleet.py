"""Real `edge serve` processes on one storage folder, with real nginx in front
(deploy/nginx/edge-proxy.conf): what tests/test_nginx_proxy.py and
tests/test_nginx_fleet.py run, and what each edge did (its access log, its transforms)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from edge.keys import parse_keyring
from edge.signing import sign_url
from tests.support.client import TLS
from tests.support.nginx import run_nginx
from tests.support.processes import EDGE, clean_env, wait_ready
from tests.support.servers import free_port
from tests.support.world import KEYS

#: One line of edge's /metrics per output format and outcome: how many transforms ran.
_TRANSFORMS = re.compile(r"^edge_transform_duration_seconds_count\{[^}]*\} (\S+)$", re.MULTILINE)


class EdgeProcess:
    """``edge serve`` on ``root``, its files in ``workdir``; ready when made, unless
    ``wait=False`` (then :meth:`wait_ready`: edges started together start in parallel)."""

    def __init__(self, root: Path, workdir: Path, *, wait: bool = True) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.log = workdir / "access.log"
        env = clean_env(
            EDGE_STORAGE=str(root), EDGE_SIGNING_KEYS=KEYS, EDGE_TRUSTED_PROXIES="127.0.0.1"
        )
        with self.log.open("wb") as out, (workdir / "stderr.log").open("wb") as err:
            self.process = subprocess.Popen(
                [*EDGE, "serve", "--port", str(self.port)],
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=err,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        wait_ready(self.base, self.process)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str) -> list[dict[str, object]]:
        return [line for line in self.lines() if str(line["path"]).split("?")[0] == path]

    def lines(self) -> list[dict[str, object]]:
        """Every access-log line so far."""
        time.sleep(0.3)  # the log thread writes asynchronously
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]

    def transforms(self) -> int:
        """Transforms this edge has run (every format and outcome), from its /metrics."""
        scrape = httpx.get(self.base + "/metrics", timeout=10, verify=TLS)
        assert scrape.status_code == 200, scrape.text
        return sum(int(float(count)) for count in _TRANSFORMS.findall(scrape.text))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def fleet(
    root: Path, workdir: Path, *, count: int = 2, edits: Sequence[tuple[str, str]] = ()
) -> Iterator[tuple[list[EdgeProcess], str]]:
    """``count`` edges serving ``root``, nginx with edge-proxy.conf (and ``edits``) in front:
    the edges and nginx's base URL. Each edge's files are in ``workdir/edgeN``, nginx's in
    ``workdir/nginx``."""
    edges: list[EdgeProcess] = []
    try:
        for n in range(1, count + 1):  # all started, then each waited for
            edges.append(EdgeProcess(root, workdir / f"edge{n}", wait=False))
        for edge in edges:
            edge.wait_ready()
        upstreams = [edge.base.removeprefix("http://") for edge in edges]
        with run_nginx(
            "edge-proxy.conf", workdir / "nginx", upstreams=upstreams, edits=edits
        ) as base:
            yield edges, base
    finally:
        for edge in edges:
            edge.stop()


def signed(path: str, seconds: int = 600, *, transform: str | None = None) -> str:
    """``path`` signed with the suite's key, valid for ``seconds`` (a new ``seconds``, a new
    signature), granting ``transform`` if given."""
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    return sign_url(path, key=key, exp=int(time.time()) + seconds, transform=transform)

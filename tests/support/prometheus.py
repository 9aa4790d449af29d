"""A real Prometheus (Debian's `prometheus` package, which .ci/run installs) on a loopback
port, scraping given targets every second, with its data in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.client import TLS
from tests.support.servers import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
#: Bounded waits: Prometheus starts in about a second, and its scrape manager takes up new
#: targets every 5 seconds (not configurable in 2.42), so the first scrape is 5-6 s in.
START_SECONDS, STOP_SECONDS = 20.0, 10.0


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path
    client: httpx.Client  # one kept-alive connection for the many API calls of a test

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful answer of the HTTP API (``/api/v1/{path}``)."""
        answer = self.client.get(f"{self.url}/api/v1/{path}", params=params).json()
        assert answer["status"] == "success", (path, params, answer)
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; any error (a parse error, a type error) fails."""
        answer = self.client.get(f"{self.url}/api/v1/query", params={"query": expr}).json()
        assert answer["status"] == "success", (expr, answer)
        assert not answer.get("warnings"), (expr, answer["warnings"])
        return list(answer["data"]["result"])


@contextlib.contextmanager
def start_prometheus(
    job: str, targets: list[str], *, rule_files: Sequence[Path] = ()
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (host:port) as ``job`` every second and evaluating
    ``rule_files`` every second; stopped (and its data removed) after."""
    if not Path(PROMETHEUS).exists():
        raise RuntimeError("prometheus is missing: .ci/run installs it (Debian's prometheus)")
    with tempfile.TemporaryDirectory(prefix="prometheus-") as folder:
        config = Path(folder) / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path.resolve()) for path in rule_files],
                    "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
                }
            ),
            encoding="utf-8",
        )
        port = free_port()
        log = Path(folder) / "prometheus.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        try:
            with httpx.Client(timeout=10, verify=TLS) as client:
                server = Prometheus(f"http://127.0.0.1:{port}", log, client)
                _wait_ready(server, process)
                yield server
        finally:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)


def _wait_ready(server: Prometheus, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if server.client.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    log = server.log.read_text(encoding="utf-8", errors="replace")[-3000:]
    raise RuntimeError(f"prometheus did not start:\n{log}")


def wait_for_scrapes(server: Prometheus, job: str, count: int) -> None:
    """Wait (bounded) until Prometheus has scraped ``job`` successfully ``count`` times."""
    deadline = time.monotonic() + START_SECONDS
    expr = f'sum_over_time(up{{job="{job}"}}[1m])'
    while time.monotonic() < deadline:
        result = server.query(expr)
        if result and float(result[0]["value"][1]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} scrapes of {job} not seen: {server.query(expr)}")

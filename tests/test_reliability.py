"""Reliability with figures: URLs from hypothesis over a real server, a bounded fuzz run,
1,000 aborted downloads against a real process, and overload at several times the bound.
Each writes its figures to ``tests/artifacts/reliability/`` for ``docs/reliability.md``."""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.samples import CANARY
from tests.support.artifacts import write_artifact
from tests.support.client import TLS
from tests.support.corpus import PHOTO, Case, escape, populate, send
from tests.support.processes import EDGE, clean_env, wait_ready
from tests.support.servers import free_port, open_sockets
from tests.support.strategies import hostile_text
from tests.support.world import World

DEFINED = {200, 206, 304, 400, 403, 404, 405, 416}
ROOT = Path(__file__).parent.parent

# URLs from pieces: a user and file that are mostly right, sometimes hostile; a query of
# signature parameters with values right, wrong or hostile, in any order and number.
users = (
    st.sampled_from(["alice", "alice", "bob", ".alice", "al%2Fice", "", "a" * 65]) | hostile_text
)
files = st.lists(
    st.sampled_from(["photo.png", "secret.png", "..", ".", "%2e%2e", "%2F", "", "x.png"])
    | hostile_text,
    min_size=1,
    max_size=4,
).map("/".join)
names = st.sampled_from(["sig", "exp", "kid", "%73ig", "%65xp", "x", "sig[]", ""]) | hostile_text
values = st.sampled_from(
    ["1799999999", "0", "-1", "+1799999999", "A" * 43, "test", "", "%00", "1" * 13]
) | hostile_text.map(escape)
queries = st.lists(st.tuples(names, values).map("=".join), max_size=5).map("&".join)
targets = st.builds(
    lambda user, file, query, sep: f"/i/{user}/{file}" + (sep + query if query or sep else ""),
    users,
    files,
    queries,
    st.sampled_from(["", "?"]),
)


class Tally:
    def __init__(self) -> None:
        self.statuses: collections.Counter[int] = collections.Counter()
        self.examples = 0


@pytest.mark.slow
def test_hypothesis_urls_get_only_defined_answers(world: World) -> None:
    populate(world)
    parts = urlsplit(world.serve())
    tally = Tally()

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(target=targets, method=st.sampled_from(["GET", "HEAD", "GET", "POST"]))
    def check(target: str, method: str) -> None:
        # Spaces, controls and raw non-ASCII would be refused by the HTTP parser: escape them.
        safe = "".join(
            c
            if 0x21 <= ord(c) < 0x7F and c != "#"
            else escape(c)
            if ord(c) > 0x7F
            else f"%{ord(c):02X}"
            for c in target
        )
        answer = send(
            parts.hostname or "", parts.port or 80, Case("hypothesis", safe, 0, method=method)
        )
        tally.examples += 1
        tally.statuses[answer.status] += 1
        assert answer.status in DEFINED, (safe, answer.status, answer.body[:200])
        assert CANARY not in answer.raw, safe  # no valid signature can come out of these
        assert b"Traceback" not in answer.raw
        if answer.status >= 400 and method != "HEAD":
            error = json.loads(answer.body)["error"]
            assert (
                error["status"] == answer.status and answer.headers["cache-control"] == "no-store"
            )
        if answer.status == 200 and method == "GET":
            assert answer.body == PHOTO, safe

    check()
    assert tally.examples >= 300
    write_artifact(
        f"hypothesis-{world.kind}",
        {
            "examples": tally.examples,
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        },
    )


#: 10 s in the suite (its edges are all covered within the first seconds; >100,000 inputs);
#: `make reliability` (tests/reliability_report.py) fuzzes 20 s for the report.
FUZZ_SECONDS = int(os.environ.get("EDGE_FUZZ_SECONDS", "10"))


@pytest.mark.slow
def test_fuzz_the_url_parser_and_verifier_for_a_bounded_time(tmp_path: Path) -> None:
    """atheris (libFuzzer) mutates raw request targets, starting from a valid signed URL."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.url_target", f"-max_total_time={FUZZ_SECONDS}",
         "-rss_limit_mb=2048", "-print_final_stats=1", str(tmp_path / "corpus")],
        capture_output=True, text=True, cwd=ROOT, timeout=FUZZ_SECONDS + 60, check=False,
    )  # fmt: skip
    output = done.stderr
    assert done.returncode == 0, output[-3000:]
    runs = int(re.search(r"Done (\d+) runs", output).group(1))  # type: ignore[union-attr]
    assert runs > 10_000, output[-2000:]
    coverage = re.search(r"cov: (\d+)", output)
    write_artifact(
        "fuzz",
        {
            "seconds": FUZZ_SECONDS,
            "runs": runs,
            "crashes": 0,
            "coverage_edges": int(coverage.group(1)) if coverage else None,
        },
    )


def _proc_figures(pid: int) -> tuple[int, int]:
    """(open file descriptors, resident KiB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert rss
    return fds, int(rss.group(1))


def _storage_connections(pid: int, port: int) -> int:
    """Established TCP connections of ``pid`` to ``port`` (the storage server)."""
    return sum(1 for _, remote in open_sockets(pid, established=True) if remote == port)


@pytest.mark.slow
def test_a_thousand_aborted_downloads_leave_nothing_behind(world: World, tmp_path: Path) -> None:
    """A real `edge serve` process; 1,000 clients leave mid-body. Afterwards: storage
    connections back within the pool, descriptors and RSS back near their baseline."""
    big = world.put(
        "public", "alice", "big.png", os.urandom(3 * 1024 * 1024)
    )  # streamed, not cached
    port = free_port()
    env = clean_env(**world.env, EDGE_S3_MAX_CONNECTIONS="4", EDGE_MAX_STORAGE_READS="16",
                    EDGE_QUEUE_TIMEOUT="10")  # fmt: skip
    if world.moto is not None:
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
    log = (tmp_path / "edge.log").open("wb")
    process = subprocess.Popen(
        [*EDGE, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    storage_port = urlsplit(world.moto.endpoint_url).port if world.moto else None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process)
        for _ in range(5):  # warm: pool filled, code paths run once
            assert len(httpx.get(base + big, timeout=30, verify=TLS).content) == 3 * 1024 * 1024
        baseline = _proc_figures(process.pid)
        started = time.monotonic()
        for attempt in range(1000):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(f"GET {big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head = conn.recv(65536)
                assert head.startswith(b"HTTP/1.1 200"), (attempt, head[:200])
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
        aborting = time.monotonic() - started
        deadline = time.monotonic() + 15
        while True:
            fds, rss = _proc_figures(process.pid)
            pool = _storage_connections(process.pid, storage_port) if storage_port else 0
            if fds <= baseline[0] + 4 and pool <= 4:
                break
            assert time.monotonic() < deadline, f"fds {fds} (baseline {baseline[0]}), pool {pool}"
            time.sleep(0.1)
        assert (
            len(httpx.get(base + big, timeout=30, verify=TLS).content) == 3 * 1024 * 1024
        )  # still serving
        fds, rss = _proc_figures(process.pid)
        assert rss - baseline[1] < 48 * 1024, f"RSS grew by {rss - baseline[1]} KiB"
    finally:
        process.terminate()
        process.wait(20)
        log.close()
    write_artifact(
        f"aborts-{world.kind}",
        {"aborted": 1000, "seconds": round(aborting, 1), "fds_before": baseline[0],
         "fds_after": fds, "rss_kib_before": baseline[1], "rss_kib_after": rss,
         "storage_connections_after": pool, "pool_size": 4},
    )  # fmt: skip


@pytest.mark.slow
def test_overload_at_several_times_the_bound(world: World) -> None:
    """40 clients against 4 read slots on a storage that takes 50 ms a read: every answer is
    200 or 503 OVERLOADED with Retry-After, p99 stays near the queue wait, and hits on a
    cached object are never refused."""
    for n in range(200):
        world.put("public", "alice", f"o{n}.png", PHOTO)
    world.put("public", "alice", "hot.png", PHOTO)
    base = world.serve(EDGE_MAX_STORAGE_READS="4", EDGE_QUEUE_TIMEOUT="0.25")
    assert httpx.get(base + "/i/alice/hot.png", verify=TLS).status_code == 200  # now cached
    world.slow_storage(0.05)
    results: list[tuple[str, int, float, str]] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=base, timeout=10, verify=TLS) as http:
            for turn in range(15):
                path = (
                    "/i/alice/hot.png"
                    if turn % 3 == 0
                    else f"/i/alice/o{(number * 15 + turn) % 200}.png"
                )
                started = time.monotonic()
                response = http.get(path)
                took = time.monotonic() - started
                code = response.json()["error"]["code"] if response.status_code >= 400 else ""
                if response.status_code == 503:
                    assert response.headers.get("retry-after") == "1"
                with lock:
                    results.append((path, response.status_code, took, code))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 600
    assert {(status, code) for _, status, _, code in results} <= {(200, ""), (503, "OVERLOADED")}
    hot = [status for path, status, _, _ in results if path.endswith("hot.png")]
    assert hot and set(hot) == {200}, "cached hits are never refused"
    misses = [r for r in results if not r[0].endswith("hot.png")]
    refused = sum(1 for r in misses if r[1] == 503)
    assert 0 < refused < len(misses), "several times the bound: some served, some refused"
    latencies = sorted(took for _, _, took, _ in results)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 2.0, f"p99 {p99:.2f} s"
    write_artifact(
        f"overload-{world.kind}",
        {"clients": 40, "requests": len(results), "slots": 4, "queue_timeout_s": 0.25,
         "storage_delay_s": 0.05,
         "served": sum(1 for r in results if r[1] == 200), "refused_503": refused,
         "hot_hits_refused": sum(1 for s in hot if s != 200),
         "p50_ms": round(statistics.median(latencies) * 1000, 1), "p99_ms": round(p99 * 1000, 1),
         "max_ms": round(latencies[-1] * 1000, 1)},
    )  # fmt: skip

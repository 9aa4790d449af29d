"""edge.server, the connection protocol: what a stranger's connections may hold, flooded on
a real `edge serve` process: idle and half-sent connections, connections beyond the cap,
huge request heads, and a file limit as low as a service manager's default."""

from __future__ import annotations

import contextlib
import json
import resource
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge.samples import png
from tests.support.artifacts import write_artifact
from tests.support.client import TLS
from tests.support.processes import EDGE, clean_env, peak_rss_kib, stop, wait_ready
from tests.support.servers import free_port, open_sockets

PNG = png(16, 16)
REQUEST = b"GET /i/alice/photo.png HTTP/1.1\r\nhost: edge\r\n\r\n"


@contextlib.contextmanager
def edge_server(
    tmp_path: Path, *, files: int | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`edge serve` on a folder with one public image, optionally under a file limit."""
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True, exist_ok=True)
    (root / "private").mkdir(exist_ok=True)
    (root / "public" / "alice" / "photo.png").write_bytes(PNG)
    port = free_port()

    def limit_files() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    with (tmp_path / "edge.log").open("wb") as log:
        process = subprocess.Popen(
            [*EDGE, "serve", "--port", str(port)],
            env=clean_env(EDGE_STORAGE=str(root), EDGE_ACCESS_LOG="off", **env),
            cwd=tmp_path,
            stdout=log,
            stderr=log,
            preexec_fn=limit_files,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield base, process
    finally:
        stop(process)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Client sockets a test opens with :func:`connect`, all closed after it."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(base: str, opened: list[socket.socket]) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    opened.append(sock)
    return sock


def eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def closed_by_server(sock: socket.socket, *, within: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``within`` seconds, and what it sent."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


def answered(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` have something to read (an answer, or the server's close)."""
    poller = select.poll()
    for sock in sockets:
        poller.register(sock, select.POLLIN)
    return len(poller.poll(0))


def ok(base: str) -> bool:
    try:
        return httpx.get(base + "/i/alice/photo.png", timeout=5, verify=TLS).content == PNG
    except httpx.TransportError:
        return False


def server_connections(process: subprocess.Popen[bytes], port: int) -> int:
    """Established client connections the edge process holds on ``port``."""
    return sum(1 for local, _ in open_sockets(process.pid, established=True) if local == port)


@pytest.mark.slow
def test_idle_and_half_sent_connections_are_closed(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with edge_server(tmp_path, EDGE_HEADER_TIMEOUT="1") as (base, process):
        port = int(base.rsplit(":", 1)[1])
        opened = time.monotonic()
        idle = [connect(base, sockets) for _ in range(300)]
        trickling = [connect(base, sockets) for _ in range(20)]
        for sock in trickling:
            sock.sendall(b"GET /i/alice/photo.png HTTP/1.1\r\n")
        assert eventually(lambda: server_connections(process, port) >= 320)
        deadline = time.monotonic() + 2.5  # a byte a while keeps no head alive past the timeout
        while time.monotonic() < deadline:
            for sock in trickling:
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
            time.sleep(0.2)
        assert ok(base), "a fresh connection is served meanwhile"
        for sock in idle + trickling:
            closed, sent = closed_by_server(sock, within=2)
            assert closed and sent == b"", "closed without an answer, as nginx does"
        assert eventually(lambda: server_connections(process, port) == 0)
        write_artifact(
            "bounds-idle",
            {
                "idle": len(idle),
                "trickling": len(trickling),
                "header_timeout_s": 1,
                "all_closed_after_s": round(time.monotonic() - opened, 1),
            },
        )
        kept = connect(base, sockets)  # a kept-alive connection is judged by its own timeout
        kept.sendall(REQUEST)
        time.sleep(0.2)
        kept.sendall(REQUEST)
        answer = closed_by_server(kept, within=0.5)[1]
        assert answer.count(b"HTTP/1.1 200 OK") == 2


@pytest.mark.slow
def test_connections_beyond_the_cap_get_a_clear_refusal(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with edge_server(tmp_path, EDGE_MAX_CONNECTIONS="50", EDGE_METRICS="on") as (base, _):
        held = [connect(base, sockets) for _ in range(50)]
        time.sleep(0.2)
        extra = connect(base, sockets)
        closed, sent = closed_by_server(extra, within=2)
        head, _, body = sent.partition(b"\r\n\r\n")
        assert closed and head.startswith(b"HTTP/1.1 503 ")
        assert json.loads(body)["error"]["code"] == "OVERLOADED"
        assert b"retry-after: 1" in head.lower() and b"connection: close" in head.lower()
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert ok(base)
        metrics = httpx.get(base + "/metrics", verify=TLS).text
        assert 'edge_connections_rejected_total{reason="overloaded"} 1.0' in metrics


@pytest.mark.slow
def test_a_connection_flood_under_a_low_file_limit_leaves_the_service_up(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    """The issue's case: nofile=1024 (systemd's default soft limit), 1,050 idle sockets."""
    with edge_server(tmp_path, files=1024, EDGE_MAX_CONNECTIONS="700") as (base, process):
        for _ in range(1_050):
            with contextlib.suppress(OSError):
                connect(base, sockets)
        port = int(base.rsplit(":", 1)[1])
        # Every connection is dealt with: 700 held, the rest answered 503 and closed.
        assert eventually(lambda: answered(sockets) >= len(sockets) - 700, seconds=10)
        assert server_connections(process, port) <= 700
        for sock in sockets[:100]:  # room for a few
            sock.close()
        time.sleep(0.3)
        assert all(ok(base) for _ in range(20))
        write_artifact(
            "bounds-files",
            {"nofile": 1024, "cap": 700, "opened": len(sockets), "served_after": 20},
        )


def test_a_file_limit_too_low_for_the_cap_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "images" / "public").mkdir(parents=True)
    done = subprocess.run(
        [*EDGE, "serve"],
        env=clean_env(EDGE_STORAGE=str(tmp_path / "images")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)),
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("edge: EDGE_MAX_CONNECTIONS: 4096 connections need ")


@pytest.mark.slow
def test_a_huge_header_is_refused_before_it_is_buffered(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with edge_server(tmp_path) as (base, process):
        before = peak_rss_kib(process.pid)
        sock = connect(base, sockets)
        sock.sendall(b"GET /i/alice/photo.png HTTP/1.1\r\nhost: edge\r\nx-big: ")
        sent = 0
        with contextlib.suppress(OSError):  # the server closes on us mid-send
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        answer = closed_by_server(sock, within=5)[1]
        assert sent < 8 * 1024 * 1024, "refused long before the 64 MiB were sent"
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == (
            "HEADERS_TOO_LARGE"
        )
        growth = peak_rss_kib(process.pid) - before
        assert growth < 8 * 1024
        write_artifact(
            "bounds-header",
            {"bound_bytes": 16 * 1024, "sent_before_refusal": sent, "peak_rss_growth_kib": growth},
        )
        assert ok(base)
        # Just under the bound is a normal request; one header over it is not.
        fine = httpx.get(base + "/i/alice/photo.png", headers={"x-pad": "p" * 15_000}, verify=TLS)
        assert fine.status_code == 200
        big = httpx.get(base + "/i/alice/photo.png", headers={"x-pad": "p" * 17_000}, verify=TLS)
        assert big.status_code == 431 and big.headers["content-type"] == "application/json"


def test_pipelined_requests_and_bodies_are_not_mistaken_for_heads(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    with edge_server(tmp_path, EDGE_MAX_HEADER_BYTES="1KiB") as (base, _):
        sock = connect(base, sockets)
        sock.sendall(REQUEST * 3)  # three heads in one packet, each well under 1 KiB
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_server(sock, within=2)[1].count(b"HTTP/1.1 200 OK") == 3
        body = b"b" * 5000  # a request body is not head: 405 for the method, not 431
        sock = connect(base, sockets)
        sock.sendall(
            b"POST /i/alice/photo.png HTTP/1.1\r\nhost: edge\r\ncontent-length: 5000\r\n"
            b"connection: close\r\n\r\n" + body
        )
        answer = closed_by_server(sock, within=2)[1]
        assert answer.startswith(b"HTTP/1.1 405 "), answer[:60]

"""edge.logwriter: log output never blocks a request: a real process whose stdout and
stderr are pipes nobody reads, and a writer that drops and counts what would not fit."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from edge.logwriter import LineWriter
from tests.support.artifacts import write_artifact
from tests.support.client import TLS
from tests.support.processes import EDGE, clean_env, stop, wait_ready
from tests.support.servers import free_port


def small_pipe() -> tuple[int, int]:
    """A pipe with a one-page buffer: a few log lines fill it, and nobody reads it."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    return read_end, write_end


@pytest.mark.slow
def test_a_stalled_log_collector_never_freezes_the_process(tmp_path: Path) -> None:
    """stdout and stderr full: warnings (a storage nobody answers) and malformed requests
    keep coming, and every request is still answered at once."""
    out_read, out_write = small_pipe()
    err_read, err_write = small_pipe()
    port = free_port()
    env = clean_env(
        EDGE_STORAGE="s3://bucket",
        EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",  # refused: a warning per read
        EDGE_S3_MAX_ATTEMPTS="1",
        EDGE_S3_CHECK_BUCKET="off",  # started, then every read fails
        EDGE_CACHE_TTL="0",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    process = subprocess.Popen(
        [*EDGE, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=out_write,
        stderr=err_write,
    )
    os.close(out_write)
    os.close(err_write)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        with httpx.Client(base_url=base, timeout=5, verify=TLS) as client:
            started = time.monotonic()
            for number in range(400):  # ~100 bytes of warning and ~200 of access log each
                assert client.get(f"/i/alice/{number}.png").status_code == 502
                if number % 50 == 0:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
            took = time.monotonic() - started
            assert took < 20
            probe = time.monotonic()
            assert client.get("/healthz").status_code == 200
            healthz = time.monotonic() - probe
            assert healthz < 1
        write_artifact(
            "bounds-log-stall",
            {
                "requests": 400,
                "malformed": 8,
                "pipe_bytes": 4096,
                "seconds": round(took, 2),
                "healthz_ms": round(healthz * 1000, 1),
            },
        )
        # Held, not lost: once someone reads again, every line comes out (this much fits the
        # queues; what would not is dropped and counted, see the test below).
        for read_end, last in [(err_read, b"alice/399.png failed"), (out_read, b"/399.png")]:
            os.set_blocking(read_end, False)
            said = b""
            deadline = time.monotonic() + 5
            while last not in said and time.monotonic() < deadline:
                try:
                    said += os.read(read_end, 1 << 16)
                except BlockingIOError:
                    time.sleep(0.05)
            assert said.count(b"/i/alice/" if read_end == out_read else b"failed") >= 400
    finally:
        stop(process)
        os.close(out_read)
        os.close(err_read)


def test_the_writer_drops_and_counts_when_its_reader_stalls() -> None:
    read_end, write_end = small_pipe()
    writer = LineWriter(write_end, max_bytes=64 * 1024, name="test")
    started = time.monotonic()
    for number in range(20_000):
        writer.put(b"line %05d %s\n" % (number, b"x" * 100))
        assert writer.queued <= 64 * 1024
    assert time.monotonic() - started < 1, "put() never waits for the reader"
    assert writer.dropped > 15_000
    writer.close(timeout=0.1)
    os.close(read_end)
    os.close(write_end)

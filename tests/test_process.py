"""The `edge` command as a real process: the demo (the README's run command), serve, memory,
and graceful shutdown on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from edge.samples import CANARY
from tests.support.processes import (
    EDGE,
    clean_env,
    edge_process,
    peak_rss_kib,
    populated,
    wait_ready,
)
from tests.support.servers import free_port


def test_demo_serves_what_it_prints(tmp_path: Path) -> None:
    number = free_port()
    with edge_process(["demo", "--port", str(number)], env=clean_env(), cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        text = (tmp_path / "edge.log").read_text()
        pairs = re.findall(r"\s{2}(.+?)\s{2,}(\d{3})[^\n]*\n\s+(http://\S+)", text)
        assert len(pairs) == 6, text
        for label, status, url in pairs:
            response = httpx.get(url, timeout=10)
            assert response.status_code == int(status), (label, url)
            if status == "200":
                assert response.content[:4] in (b"\x89PNG", b"<svg"), label
            else:
                assert CANARY not in response.content
    assert (tmp_path / "demo-images" / "public" / "demo" / "welcome.png").exists()
    assert (
        tmp_path / "demo-images" / "private" / "demo" / "albums" / "2026" / "sunrise.png"
    ).exists()


def test_serve_without_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*EDGE, "serve"],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("edge: EDGE_STORAGE: folder ") and done.stderr.count("\n") == 1


def test_an_s3_edge_without_credentials_is_a_one_line_error(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "none")  # no profile files; no instance metadata to ask
    env = clean_env(
        EDGE_STORAGE="s3://bucket",
        EDGE_S3_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_CONFIG_FILE=nowhere,
        AWS_SHARED_CREDENTIALS_FILE=nowhere,
        AWS_EC2_METADATA_DISABLED="true",
    )
    done = subprocess.run(
        [*EDGE, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("edge: EDGE_STORAGE: an S3 bucket needs AWS credentials")


@pytest.mark.parametrize(
    ("name", "value"),
    [("EDGE_SIGNING_KEYS", "a:hs256:c2hvcnQ"), ("EDGE_CORS", "maybe"), ("EDGE_STORAGE", "ftp://x")],
)
def test_serve_rejects_bad_settings_at_start(tmp_path: Path, name: str, value: str) -> None:
    done = subprocess.run(
        [*EDGE, "serve"],
        env=clean_env(**{name: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith(f"edge: {name}: ")
    assert "Traceback" not in done.stderr and "c2hvcnQ" not in done.stderr


@pytest.mark.parametrize(
    ("env", "args", "start"),
    [
        ({"EDGE_CACHE_MAX_BYTES": "256"}, [], "EDGE_CACHE_MAX_OBJECT_BYTES: 1048576 is above"),
        ({"EDGE_S3_REGION": "eu-west-1"}, [], "EDGE_STORAGE: not set, so edge would serve"),
        ({"EDGE_METRICS": "9100"}, ["--workers", "2"], "EDGE_METRICS: a metrics port (9100)"),
        ({"EDGE_METRICS": "{port}"}, ["--port", "{port}"], "EDGE_METRICS: port {port} is"),
    ],
    ids=["cache", "s3-without-storage", "metrics-port-workers", "metrics-port-is-port"],
)
def test_serve_rejects_settings_that_cannot_work_together(
    tmp_path: Path, env: dict[str, str], args: list[str], start: str
) -> None:
    port = str(free_port())
    (tmp_path / "public").mkdir()
    (tmp_path / "private").mkdir()
    env = {name: value.format(port=port) for name, value in env.items()}
    if not any(name.startswith("EDGE_S3_") for name in env):
        env["EDGE_STORAGE"] = str(tmp_path)
    done = subprocess.run(
        [*EDGE, "serve", *(arg.format(port=port) for arg in args)],
        env=clean_env(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"edge: {start.format(port=port)}"), done.stderr


def test_one_gib_streams_with_flat_memory(tmp_path: Path) -> None:
    """1 GiB through a real `edge serve` process: its peak RSS must barely move."""
    big = tmp_path / "public" / "alice" / "huge.png"
    big.parent.mkdir(parents=True)
    (tmp_path / "private").mkdir()
    with big.open("wb") as handle:
        handle.truncate(1024**3)  # sparse: no disk, the page cache feeds zeros fast
    number = free_port()
    env = clean_env(EDGE_STORAGE=str(tmp_path))
    with edge_process(["serve", "--port", str(number)], env=env, cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        httpx.get(base + "/i/alice/huge.png", headers={"range": "bytes=0-1048575"}, timeout=10)
        before = peak_rss_kib(process.pid)
        received = 0
        with httpx.stream("GET", base + "/i/alice/huge.png", timeout=60) as response:
            for chunk in response.iter_raw(1024 * 1024):
                received += len(chunk)
        growth = peak_rss_kib(process.pid) - before
    assert received == 1024**3
    assert growth < 32 * 1024, f"peak RSS grew by {growth} KiB"


def test_sigterm_lets_downloads_finish_then_exits_0(tmp_path: Path) -> None:
    root = populated(tmp_path)
    big = root / "public" / "alice" / "big.png"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    number = free_port()
    env = clean_env(EDGE_STORAGE=str(root), EDGE_SHUTDOWN_TIMEOUT="20", EDGE_ACCESS_LOG="off")
    with edge_process(["serve", "--port", str(number)], env=env, cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        received = 0
        with httpx.stream("GET", base + "/i/alice/big.png", timeout=30) as response:
            chunks = response.iter_raw(256 * 1024)
            received += len(next(chunks))
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(ConnectionRefusedError):  # no longer accepting
                socket.create_connection(("127.0.0.1", number), timeout=2).close()
            for chunk in chunks:
                received += len(chunk)
                time.sleep(0.001)  # a slowish reader
        assert received == 64 * 1024 * 1024
        assert process.wait(20) == 0

"""The `edge` command as a real process: the demo (the README's run command), serve, memory,
and graceful shutdown on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import pyvips

from edge.cli import SIGNED_LABEL
from edge.samples import CANARY
from tests.support.client import TLS
from tests.support.processes import (
    EDGE,
    clean_env,
    edge_process,
    peak_rss_kib,
    populated,
    wait_ready,
)
from tests.support.servers import free_port

#: Each entry ``edge demo`` prints: label -> the media type and (width, height) of its
#: 200 answer, or its error code; a srcset's sizes come from its width descriptors.
DEMO: dict[str, tuple[str, tuple[int, int] | None]] = {
    "public image": ("image/png", (480, 320)),
    "public SVG (sandboxed)": ("image/svg+xml", None),
    SIGNED_LABEL: ("image/png", (480, 320)),
    "the same private image, unsigned": ("NOT_FOUND", None),
    "an expired signed URL": ("SIGNATURE_EXPIRED", None),
    "a tampered signed URL": ("SIGNATURE_INVALID", None),
    "thumbnail, 200x200 cover": ("image/jpeg", (200, 200)),
    "WebP made from the stored JPEG": ("image/webp", (480, 320)),
    "AVIF made from the stored JPEG": ("image/avif", (480, 320)),
    "srcset: 400, 800 and 1200 wide": ("image/jpeg", None),
    "preset (presets/demo/thumbnail.json)": ("image/jpeg", (200, 200)),
    "private thumbnail, signed for w=200": ("image/png", (200, 133)),
    "the same, with w=200 changed to 400": ("SIGNATURE_INVALID", None),
}
ENTRY = re.compile(
    r"^  (\S.*?) {2,}(\d{3})(?: ([A-Z_]+))?\n((?:    http://\S+(?: \d+w,?)?\n)+)", re.M
)


def test_demo_serves_what_it_prints(tmp_path: Path) -> None:
    """`edge demo` as the README runs it: every URL it prints answers as its label says,
    the images decoded (sizes, formats), the errors with their codes."""
    number = free_port()
    with edge_process(["demo", "--port", str(number)], env=clean_env(), cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        text = (tmp_path / "edge.log").read_text()
        entries = ENTRY.findall(text)
        assert [label for label, *_ in entries] == list(DEMO), text
        printed = re.findall(r"http://\S+", text[: text.index("Try one with")])
        assert sum(len(urls.splitlines()) for *_, urls in entries) == len(printed), text
        with httpx.Client(timeout=30, verify=TLS) as client:
            for label, status, code, urls in entries:
                for line in urls.splitlines():
                    url, _, descriptor = line.strip().rstrip(",").partition(" ")
                    check_demo_answer(client, label, int(status), code, url, descriptor)
    folder = tmp_path / "demo-images"
    assert (folder / "public" / "demo" / "welcome.png").exists()
    assert (folder / "private" / "demo" / "albums" / "2026" / "sunrise.png").exists()
    assert (folder / "presets" / "demo" / "thumbnail.json").exists()


def check_demo_answer(
    client: httpx.Client, label: str, status: int, code: str, url: str, descriptor: str
) -> None:
    """One printed URL answers as :data:`DEMO` says (a srcset's size from its descriptor)."""
    kind, size = DEMO[label]
    response = client.get(url)
    assert response.status_code == status, (label, url, response.text)
    # Only the stored private file carries the canary: a variant is newly encoded.
    assert (CANARY in response.content) == (label == SIGNED_LABEL), label
    if status != 200:
        assert response.json()["error"]["code"] == code == kind, label
        return
    assert response.headers["content-type"] == kind, label
    if kind == "image/svg+xml":
        assert response.content.startswith(b"<svg"), label
        return
    image = pyvips.Image.new_from_buffer(response.content, "")
    image.avg()  # decodes every pixel
    if descriptor:
        width = int(descriptor.removesuffix("w"))
        size = (width, round(width * 2 / 3))
    assert (image.width, image.height) == size, (label, url)
    if label.startswith("preset"):
        spelled = client.get(url.replace("p:thumbnail", "w=200&h=200&fit=cover&q=70"))
        assert spelled.content == response.content, "the preset is its parameters"


@pytest.mark.parametrize(
    ("command", "metrics", "start"),
    [
        ("demo", False, "port {held} is in use (try --port "),
        ("serve", False, "port {held} is in use (try --port "),
        ("serve", True, "EDGE_METRICS: port {held} is in use (try EDGE_METRICS="),
    ],
    ids=["demo", "serve", "serve-metrics"],
)
def test_a_port_in_use_is_one_line_before_anything_else(
    tmp_path: Path, command: str, metrics: bool, start: str
) -> None:
    """The port is tried as uvicorn will bind it before anything is written or printed:
    no samples, no URLs that would reach whatever holds the port, no uvicorn traceback."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        port = free_port() if metrics else held
        env = (
            clean_env(EDGE_STORAGE=str(populated(tmp_path))) if command == "serve" else clean_env()
        )
        if metrics:
            env["EDGE_METRICS"] = str(held)
        done = subprocess.run(
            [*EDGE, command, "--port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.startswith(f"edge: {start.format(held=held)}"), done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.endswith(")\n"), done.stderr
    suggested = int(re.findall(r"\d+", done.stderr)[-1])
    assert suggested > held
    assert not (tmp_path / "demo-images").exists()


@pytest.mark.parametrize("alg", ["hs256", "ed25519"])
def test_keygen_output_is_a_keyring_as_typed(tmp_path: Path, alg: str) -> None:
    """The natural thing to type, in a shell: the captured output is the signers' keyring,
    and the entry stderr names for the edges verifies what it signs."""
    script = f"""
        set -eu
        edge() {{ "$PYTHON" -m edge.cli "$@"; }}
        export EDGE_SIGNING_KEYS="$(edge keygen --alg {alg} --kid k1 2>for-edges.txt)"
        url="$(edge sign /i/bob/photo.png --expires-in 600)"
        if [ {alg} = ed25519 ]; then
            EDGE_SIGNING_KEYS="$(grep '^k1:ed25519-pub:' for-edges.txt)"
        fi
        EDGE_SIGNING_KEYS="$EDGE_SIGNING_KEYS" edge verify "$url"
    """
    done = subprocess.run(
        ["bash", "-c", script],
        env=clean_env(PYTHON=sys.executable),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "VALID", done.stdout
    assert "signed by key 'k1'" in done.stdout


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
        ({"EDGE_METRICS": "{port}"}, ["--port", "{port}"], "EDGE_METRICS: port {port} is"),
    ],
    ids=["cache", "s3-without-storage", "metrics-port-is-port"],
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
        httpx.get(
            base + "/i/alice/huge.png", headers={"range": "bytes=0-1048575"}, timeout=10, verify=TLS
        )
        before = peak_rss_kib(process.pid)
        received = 0
        with httpx.stream("GET", base + "/i/alice/huge.png", timeout=60, verify=TLS) as response:
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
        with httpx.stream("GET", base + "/i/alice/big.png", timeout=30, verify=TLS) as response:
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

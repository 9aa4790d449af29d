"""Real servers for the tests: moto's S3 server, s3rver (a second S3 server, in Node.js) and
uvicorn, each on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from edge.app import UVICORN_OPTIONS

BUCKET = "edge-test"
#: s3rver's npm package (tests/s3rver/), installed by `make install` (npm ci, pinned by its
#: package-lock.json).
S3RVER = Path(__file__).parent.parent / "s3rver" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
#: The one account s3rver knows: any other access key is InvalidAccessKeyId.
S3RVER_KEY = "S3RVER"
#: The key moto takes (any would do).
MOTO_KEY = "testing"


def s3_client(endpoint_url: str, key: str = MOTO_KEY) -> Any:
    """boto3's S3 client for a loopback test store, in us-east-1, with ``key`` as both the
    access key and the secret (moto takes any; s3rver its one account, ``S3RVER_KEY``)."""
    import boto3  # only where a test writes to a store

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=key,
    )


#: Bounded waits for s3rver to start and to stop (it starts in well under a second).
S3RVER_START_SECONDS, S3RVER_STOP_SECONDS = 20.0, 5.0


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class MotoServer:
    """moto's S3 over real HTTP, recording every request it answers."""

    server: BaseWSGIServer
    seen: list[SeenRequest] = field(default_factory=list)
    #: Seconds to hold each object GET: makes concurrent requests overlap for sure.
    delay: float = 0.0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def object_requests(self, method: str | None = None) -> list[SeenRequest]:
        """Requests that named an object of the test bucket (not the bucket itself)."""
        prefix = f"/{BUCKET}/"
        return [r for r in self.seen if r.path.startswith(prefix) and method in (None, r.method)]


def start_moto() -> MotoServer:
    app = DomainDispatcherApplication(create_backend_app)
    holder: list[MotoServer] = []

    def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        holder[0].seen.append(SeenRequest(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers))
        if (
            holder[0].delay
            and environ["REQUEST_METHOD"] == "GET"
            and environ["PATH_INFO"].count("/") > 2
        ):
            time.sleep(holder[0].delay)
        return app(environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, counting, threaded=True)
    holder.append(MotoServer(server))
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    return holder[0]


@dataclass(frozen=True)
class S3rver:
    """A running s3rver: an S3 server that keeps connections alive between requests, as S3
    does (moto's closes every one). It checks that a request is signed by an access key it
    knows, and nothing more: s3rver 3.7.1 does not verify SigV4 signatures (its
    authentication middleware says "Signature version 4 calculation is unimplemented"), so it
    tests edge's connection handling and HTTP, not its signer (moto's server does that)."""

    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def start_s3rver() -> Iterator[S3rver]:
    """s3rver on an ephemeral loopback port, over a temporary folder, with the test bucket
    made at start-up; stopped (and the folder removed) after."""
    if not S3RVER.exists():
        raise RuntimeError(f"s3rver is not installed: run `make install` ({S3RVER})")
    with tempfile.TemporaryDirectory(prefix="s3rver-") as folder:
        log = Path(folder) / "s3rver.log"
        with log.open("wb") as errors:
            process = subprocess.Popen(
                [
                    *("node", str(S3RVER), "--directory", f"{folder}/data", "--address"),
                    *("127.0.0.1", "--port", "0", "--silent", "--no-vhost-buckets"),
                    *("--configure-bucket", BUCKET),  # last: it takes the arguments after it
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        assert process.stdout is not None
        stdout, lines = process.stdout, queue.Queue[bytes]()
        reader = threading.Thread(target=lambda: _forward(stdout, lines), daemon=True)
        reader.start()
        try:
            yield S3rver(_listening_port(lines, log))
        finally:
            process.terminate()
            try:
                process.wait(S3RVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(S3RVER_STOP_SECONDS)
            reader.join(S3RVER_STOP_SECONDS)  # its output ended with it
            stdout.close()


def _forward(stdout: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in stdout:
        lines.put(line)


def _listening_port(lines: queue.Queue[bytes], log: Path) -> int:
    """The port s3rver prints once it listens ("S3rver listening on 127.0.0.1:PORT"), read
    from its output as a thread forwards it, so the wait is bounded."""
    deadline = time.monotonic() + S3RVER_START_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line.startswith(b"S3rver listening on "):
            return int(line.rsplit(b":", 1)[1])
    raise RuntimeError(f"s3rver did not start: {log.read_text(errors='replace')[-2000:]}")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class PromptServer(uvicorn.Server):
    """uvicorn's server, looking at ``should_exit`` every 10 ms instead of every 100 ms:
    a test's server stops sooner after the test (hundreds of them a session)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def run_uvicorn(app: Any, *, send_buffer: int = 0, **options: Any) -> Iterator[str]:
    """Serve ``app`` on a real uvicorn in a thread; yield its base URL; stop it after.
    ``send_buffer`` fixes the kernel's send buffer of every client connection (they inherit
    the listener's): a client that stops reading then stalls the server within that much."""
    sock = free_socket()
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    config = uvicorn.Config(app, log_level="warning", **{**UVICORN_OPTIONS, **options})
    server = PromptServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a storage that hangs."""
    sock = free_socket()
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        sock.close()


def free_port() -> int:
    """A loopback port nothing listens on (yet): for a server to start on, or to be refused."""
    sock = free_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def open_sockets(pid: int | str = "self", *, established: bool = False) -> list[tuple[int, int]]:
    """(local port, remote port) of a process's open TCP sockets (this one's by default),
    from /proc; ``established`` keeps only connected ones."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[9] in inodes and (not established or fields[3] == "01"):
                ports.append(
                    (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
                )
    return ports


def open_files_under(root: Path) -> list[str]:
    """Files below ``root`` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(root)):
                found.append(target)
    return found

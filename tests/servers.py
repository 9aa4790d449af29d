"""Real servers for the tests: moto's S3 server and uvicorn, each on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from edge.app import UVICORN_OPTIONS

BUCKET = "edge-test"


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


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def run_uvicorn(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` on a real uvicorn in a thread; yield its base URL; stop it after."""
    sock = free_socket()
    config = uvicorn.Config(app, log_level="warning", **{**UVICORN_OPTIONS, **options})
    server = uvicorn.Server(config)
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


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


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

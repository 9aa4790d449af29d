"""Memory under slow downloads: 8 clients read a 256 MiB object at a trickle, at once.

Streaming means edge holds a chunk per download, never the object: the peak
resident set (VmHWM) of the edge process may grow by at most 64 MiB.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from bench.measure import SERVER_CORE, at_once, peak_rss
from bench.world import World, edge_argv, free_port, wait_ready

OBJECT_BYTES = 256 * 1024 * 1024
READERS = 8
READ_SIZE = 256 * 1024
PAUSE = 0.01  # per read: about 25 MB/s per reader, far below what loopback could do


@dataclass
class MemoryResult:
    readers: int
    object_bytes: int
    received: list[int]
    seconds: float
    peak_growth_bytes: int


def _slow_download(port: int, path: str, received: list[int], index: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        while chunk := sock.recv(READ_SIZE):
            received[index] += len(chunk)
            time.sleep(PAUSE)


def run(world: World) -> MemoryResult:
    big = world.images / "public" / "alice" / "big.png"
    with big.open("wb") as file:  # sparse: no disk, same bytes on the wire
        file.truncate(OBJECT_BYTES)
    port = free_port()
    proc = world.start(edge_argv(port), env=world.edge_env(EDGE_ACCESS_LOG="off"), core=SERVER_CORE)
    wait_ready(port, "/i/alice/hit.png", proc=proc)
    before = peak_rss(proc.pid)
    received = [0] * READERS

    def one(index: int) -> None:
        _slow_download(port, "/i/alice/big.png", received, index)

    seconds = at_once(one, READERS)
    after = peak_rss(proc.pid)
    big.unlink()
    return MemoryResult(
        readers=READERS,
        object_bytes=OBJECT_BYTES,
        received=received,
        seconds=seconds,
        peak_growth_bytes=after - before,
    )

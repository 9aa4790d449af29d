"""edge.image.stream: clients that stop reading let go of storage: they cannot hold every
read slot, and a download resumed after a pause is the same object or is cut, never a mix."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from edge.image.stream import STALL_SECONDS
from edge.samples import png
from tests.support.artifacts import write_artifact
from tests.support.client import TLS
from tests.support.world import World

PNG = png(16, 16)
BIG = 32 * 1024 * 1024  # well beyond what the two kernels' socket buffers absorb


def stalled_download(base: str, path: str) -> socket.socket:
    """A GET whose client reads nothing (for now)."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: edge\r\n\r\n".encode())
    return sock


def read_response(sock: socket.socket, *, seconds: float = 30) -> tuple[bytes, bytes]:
    """Head and body of a response on ``sock``, read until the server closes or the body
    (of Content-Length bytes) is complete."""
    sock.settimeout(seconds)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    return head, body


@pytest.mark.slow
def test_clients_that_never_read_cannot_hold_the_read_slots(world: World) -> None:
    data = os.urandom(BIG)
    big = world.put("public", "alice", "big.png", data)
    others = [world.put("public", "alice", f"other{n}.png", PNG) for n in range(8)]
    base = world.serve(EDGE_MAX_STORAGE_READS="4", EDGE_QUEUE_TIMEOUT="5", EDGE_CACHE_TTL="0")
    hogs = [stalled_download(base, big) for _ in range(12)]  # three times the slots
    try:
        # Each fills the socket buffers, stalls, lets go of its slot for the next.
        time.sleep(3 * (STALL_SECONDS + 1))
        for other in others:
            response = httpx.get(base + other, timeout=5, verify=TLS)
            assert response.status_code == 200 and response.content == PNG
        for hog in hogs[:3]:  # reading again, each gets the whole object, intact
            head, body = read_response(hog)
            assert head.startswith(b"HTTP/1.1 200 ") and body == data
    finally:
        for hog in hogs:
            hog.close()
    reads = [read for read in world.storage_reads() if read == ("GET", "public/alice/big.png")]
    assert len(reads) > 12, "paused downloads read on where they were"
    write_artifact(
        f"bounds-slow-readers-{world.kind}",
        {"stalled": 12, "slots": 4, "others_served": len(others), "storage_reads": len(reads)},
    )


@pytest.mark.slow
def test_an_object_replaced_while_its_download_is_paused_is_never_mixed(world: World) -> None:
    old, new = os.urandom(BIG), os.urandom(BIG)
    path = world.put("public", "alice", "big.png", old)
    base = world.serve(EDGE_CACHE_TTL="0")
    sock = stalled_download(base, path)
    try:
        time.sleep(STALL_SECONDS + 1)  # paused: storage let go
        if world.root is not None:  # replaced as the guide says: a new file renamed over it
            target = world.root / "public" / "alice" / "big.png"
            staged = target.with_suffix(".new")
            staged.write_bytes(new)
            os.utime(staged, (time.time() + 5, time.time() + 5))
            staged.rename(target)
        else:
            world.put("public", "alice", "big.png", new)
        head, body = read_response(sock)
    finally:
        sock.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) < BIG, "cut short: the client sees an incomplete download"
    assert body == old[: len(body)], "only the old object's bytes, never the new one's"

"""A store that answers without a Content-Length (chunked: Swift's S3 layer, some gateways),
through a real uvicorn edge in front of a loopback store.

A chunked object that ends within the first chunk edge reads (CHUNK_BYTES) is one of known
size like any other: answered with its length, kept in the hot cache. A longer one streams
to the client chunked too, its size unknown, and never enters the hot cache, whatever
EDGE_CACHE_MAX_OBJECT_BYTES allows. A chunked body cut before its last chunk is a storage
error (read whole) or an aborted download (streaming), never a clean short answer. A Range
is forwarded: a 206 sent chunked is as long as its Content-Range; a store that ignores the
Range and sends the whole object chunked: a short one is cut here (206), a long one, its
size unknown, is answered whole (200). A paused download
of unknown size reads on with an open range (``bytes=N-``)."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from edge.errors import StorageError
from edge.image.stream import STALL_SECONDS
from edge.storage.base import CHUNK_BYTES, Conditions
from tests.support.client import TLS, assert_error
from tests.support.fault_rig import read_canned
from tests.support.stores import Hangup, Parts, tiny_store
from tests.support.world import World

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)
PATH = "/i/alice/x.png"
HEAD_OK = b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "c1"\r\n\r\n'
SMALL = bytes(range(256)) * 40  # 10 KiB: within the read-ahead
LARGE = bytes(range(256)) * 1200  # 300 KiB: streams, size unknown


def chunked(data: bytes, *, status: str = "200 OK", extra: str = "", last: bool = True) -> bytes:
    """An answer whose body is ``data`` in 16 KiB chunks (``last``: with the final chunk)."""
    head = (
        f'HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nETag: "c1"\r\n'
        f"Content-Type: image/png\r\nLast-Modified: Wed, 25 Nov 2026 10:00:00 GMT\r\n{extra}\r\n"
    ).encode()
    pieces = [data[at : at + 16384] for at in range(0, len(data), 16384)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return head + body + (b"0\r\n\r\n" if last else b"")


def serve(world: World, answer: bytes | Parts, **settings: str) -> tuple[str, list[bytes]]:
    """An edge on a loopback store answering every GET with ``answer``."""

    async def store(connection: int, request: int, head: bytes) -> bytes | Parts:
        return HEAD_OK if head.startswith(b"HEAD") else answer

    port, seen = world.stack.enter_context(tiny_store(store))
    base = world.serve(
        EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", EDGE_S3_MAX_ATTEMPTS="1", **settings
    )
    return base, seen


def gets(seen: list[bytes]) -> int:
    return len([line for line in seen if line.startswith(b"GET")])


@S3_ONLY
def test_a_short_chunked_object_is_one_of_known_size_and_cached(world: World) -> None:
    assert len(SMALL) <= CHUNK_BYTES
    base, seen = serve(world, chunked(SMALL))
    for _ in range(2):
        response = httpx.get(base + PATH, timeout=10, verify=TLS)
        assert response.status_code == 200 and response.content == SMALL
        assert response.headers["content-length"] == str(len(SMALL))
        assert response.headers["etag"] == '"c1"'
    assert gets(seen) == 1, "the second came from the hot cache"


@S3_ONLY
def test_a_long_chunked_object_streams_chunked_and_is_never_cached(world: World) -> None:
    base, seen = serve(world, chunked(LARGE), EDGE_CACHE_MAX_OBJECT_BYTES="1MiB")
    for _ in range(2):
        with httpx.stream("GET", base + PATH, timeout=10, verify=TLS) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.read() == LARGE
    assert gets(seen) == 2, "its size unknown, it never entered the cache (limit 1 MiB)"


@S3_ONLY
def test_a_cut_chunked_body_aborts_the_download(world: World) -> None:
    base, _ = serve(world, Hangup(chunked(LARGE, last=False)))
    with pytest.raises(httpx.RemoteProtocolError):  # no last chunk: an incomplete body
        httpx.get(base + PATH, timeout=10, verify=TLS)


@S3_ONLY
def test_a_cut_short_chunked_body_is_a_storage_error(world: World) -> None:
    base, _ = serve(world, Hangup(chunked(SMALL, last=False)))
    assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 502, "STORAGE_ERROR")


@S3_ONLY
def test_a_chunked_part_is_as_long_as_its_range(world: World) -> None:
    part = LARGE[100:200]
    answer = chunked(
        part, status="206 Partial Content", extra=f"Content-Range: bytes 100-199/{len(LARGE)}\r\n"
    )
    base, seen = serve(world, answer)
    response = httpx.get(base + PATH, headers={"range": "bytes=100-199"}, timeout=10, verify=TLS)
    assert response.status_code == 206 and response.content == part
    assert response.headers["content-range"] == f"bytes 100-199/{len(LARGE)}"
    assert response.headers["content-length"] == "100"
    assert gets(seen) == 1


@S3_ONLY
def test_a_range_a_store_ignores_is_the_whole_object_chunked(world: World) -> None:
    base, _ = serve(world, chunked(LARGE))
    response = httpx.get(base + PATH, headers={"range": "bytes=100-199"}, timeout=10, verify=TLS)
    assert response.status_code == 200 and response.content == LARGE
    assert "content-range" not in response.headers


@S3_ONLY
def test_a_range_a_store_ignores_on_a_short_chunked_object_is_cut_here(world: World) -> None:
    base, _ = serve(world, chunked(SMALL))
    response = httpx.get(base + PATH, headers={"range": "bytes=100-199"}, timeout=10, verify=TLS)
    assert response.status_code == 206 and response.content == SMALL[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(SMALL)}"


@S3_ONLY
def test_a_chunked_part_of_the_wrong_length_is_refused(world: World) -> None:
    answer = chunked(
        LARGE[100:150],
        status="206 Partial Content",
        extra="Content-Range: bytes 100-199/999999\r\n",
    )
    base, _ = serve(world, answer)
    response = httpx.get(base + PATH, headers={"range": "bytes=100-199"}, timeout=10, verify=TLS)
    assert_error(response, 502, "STORAGE_ERROR")


def dechunk(data: bytes) -> bytes:
    """A chunked body's bytes; AssertionError unless it ends with its last chunk."""
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert data == b"\r\n", "the last chunk ends the body"
            return body
        body, data = body + data[:size], data[size + 2 :]


@S3_ONLY
def test_a_paused_chunked_download_reads_on_from_where_it_was(world: World) -> None:
    """A client that stops reading makes edge let go of storage (STALL_SECONDS); reading
    again, the rest is asked for from where it was, to the end (``Range: bytes=N-``, the
    size unknown), and the client gets the whole object, once."""
    data = os.urandom(2 * 1024 * 1024)
    asked: list[bytes] = []

    async def store(connection: int, request: int, head: bytes) -> bytes:
        lowered = head.lower()
        if b"range: bytes=" not in lowered:
            return chunked(data)
        start = int(lowered.split(b"range: bytes=")[1].split(b"-")[0])
        asked.append(lowered.split(b"range: ")[1].split(b"\r\n")[0])
        extra = f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n"
        return chunked(data[start:], status="206 Partial Content", extra=extra)

    port, _ = world.stack.enter_context(tiny_store(store))
    world.send_buffer = 16384
    base = world.serve(EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", EDGE_CACHE_TTL="0")
    parts = urlsplit(base)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        client.settimeout(10)
        client.connect((parts.hostname, parts.port))
        client.sendall(f"GET {PATH} HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n".encode())
        time.sleep(STALL_SECONDS + 1.5)  # edge fills the sockets, waits, lets go
        received = b""
        while chunk := client.recv(1 << 20):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert dechunk(body) == data
    assert asked and all(line.endswith(b"-") for line in asked), asked


def test_a_chunked_part_longer_than_its_content_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 206 sent chunked is as long as its Content-Range says: a store that sends more
    (past the asked range) has the read end in an error, never the extra bytes passed on
    (a response of unknown length, a paused download read on, could not stop them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    asked = 100_000  # over CHUNK_BYTES: the part streams, not read whole
    answer = chunked(
        LARGE,
        status="206 Partial Content",
        extra=f"Content-Range: bytes 0-{asked - 1}/{len(LARGE)}\r\n",
    )
    outcome = read_canned(answer, conditions=Conditions(range=(0, asked - 1)))
    assert outcome.reply is None, f"{len(outcome.reply.data or b'')} bytes read for {asked}"
    assert isinstance(outcome.error, StorageError), outcome
    assert "longer than" in outcome.error.reason, outcome.error.reason

"""Serving at the edges: storage faults, overload, escapes, raw paths, aborted downloads."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from edge.samples import CANARY, png
from tests.support.client import TLS, assert_error, get, raw_get
from tests.support.servers import free_port, open_files_under, open_sockets, silent_server
from tests.support.world import BEFORE_STORAGE, World, on_every_store

#: The serving behaviour suite: on every store, the hot cache on and off (tests/support/world.py).
pytest_generate_tests = on_every_store

PNG = png(32, 32)


@BEFORE_STORAGE
@pytest.mark.parametrize(
    "target",
    [
        "/i/alice/../alice/photo.png",
        "/i/alice/./photo.png",
        "/i/alice/%2e%2e/alice/photo.png",
        "/i/alice/%2E./alice/photo.png",
        "/i/alice/.%2e/alice/photo.png",
        "/i/alice/photo.png/",
        "/i/alice//photo.png",
        "/i/alice/a%00b.png",
        "/i/alice/a%5Cb.png",
        "/i/alice/%ff.png",
        "/i/alice/%C0%AE%C0%AE/x.png",
        "/i/.alice/photo.png",
        "/i/alice",
        "/i/" + "u" * 65 + "/photo.png",
        "/i/alice/" + "x" * 1100,
        "/i/alice/" + "x" * 12000,  # over 60 KiB the request head itself is refused: 431
    ],
)
def test_malformed_raw_paths_are_400(world: World, target: str) -> None:
    world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    status, headers, body = raw_get(base, target)
    assert status == 400, (target, body[:200])
    assert headers["cache-control"] == "no-store"
    assert b'"code":"BAD_REQUEST"' in body
    assert world.storage_reads() == []


@BEFORE_STORAGE
def test_request_lines_beyond_the_head_bound_are_431(world: World) -> None:
    """A request head over EDGE_MAX_HEADER_BYTES is refused before edge reads a path."""
    base = world.serve(EDGE_MAX_HEADER_BYTES="8KiB")
    for length in (9000, 70000):
        status, headers, body = raw_get(base, "/i/alice/" + "x" * length)
        assert status == 431 and CANARY not in body
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"


def test_percent_escapes_name_the_same_object(world: World) -> None:
    world.put("public", "alice", "photo.png", PNG)
    world.put("public", "alice", "a/b.png", PNG)
    base = world.serve()
    for target in ("/i/%61lice/photo.png", "/i/alice/ph%6Fto.png", "/i/alice/a%2Fb.png"):
        status, _, body = raw_get(base, target)
        assert (status, body) == (200, PNG), target


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_symlinks_cannot_escape_the_root_or_reach_private(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert world.root is not None
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(b"outside" + CANARY)
    secret = world.put("private", "alice", "secret.png", PNG + CANARY)
    public = world.root / "public" / "alice"
    public.mkdir(parents=True, exist_ok=True)
    (public / "escape.png").symlink_to(outside / "secret.png")
    (public / "leak.png").symlink_to(world.root / "private" / "alice" / "secret.png")
    (public / "relative.png").symlink_to(Path("..") / ".." / "private" / "alice" / "secret.png")
    (public / "dir").symlink_to(outside)
    (world.root / "private" / "alice" / "alias.png").symlink_to("secret.png")
    base = world.serve()
    for name in ("escape.png", "leak.png", "relative.png", "dir/secret.png"):
        response = get(base + f"/i/alice/{name}")
        assert_error(response, 404, "NOT_FOUND")
        signed = get(base + world.sign(f"/i/alice/{name}"))
        assert_error(signed, 404, "NOT_FOUND")
    alias = get(base + world.sign("/i/alice/alias.png"))
    assert alias.status_code == 200, "a link inside its own visibility folder is fine"
    assert get(base + world.sign(secret)).status_code == 200


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_directories_are_not_found(world: World) -> None:
    world.put("public", "alice", "album/photo.png", PNG)
    base = world.serve()
    assert_error(get(base + "/i/alice/album"), 404, "NOT_FOUND")


def test_storage_down_is_502_fast(world: World) -> None:
    if world.kind == "file":
        assert world.root is not None
        world.put("public", "alice", "photo.png", PNG)
        (world.root / "public" / "alice" / "photo.png").chmod(0)
        if os.geteuid() == 0:  # root reads anything: break the folder instead
            (world.root / "public" / "alice" / "photo.png").chmod(0o644)
            (world.root / "public" / "alice" / "photo.png").unlink()
            (world.root / "public" / "alice" / "photo.png").mkdir()
            (world.root / "public" / "alice" / "photo.png" / "x").write_bytes(b"")
        base = world.serve()
        assert_error(get(base + "/i/alice/photo.png"), 404, "NOT_FOUND")
        return
    base = world.serve(
        EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", EDGE_S3_MAX_ATTEMPTS="2"
    )
    started = time.monotonic()
    assert_error(get(base + "/i/alice/photo.png"), 502, "STORAGE_ERROR")
    assert time.monotonic() - started < 5
    ready = get(base + "/readyz")
    assert_error(ready, 503, "NOT_READY")


@pytest.mark.parametrize("world", ["s3"], indirect=True)
def test_storage_silence_is_504_within_the_timeout(world: World) -> None:
    with silent_server() as port:
        base = world.serve(
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            EDGE_S3_READ_TIMEOUT="0.5",
            EDGE_S3_MAX_ATTEMPTS="1",
        )
        started = time.monotonic()
        assert_error(get(base + "/i/alice/photo.png"), 504, "STORAGE_TIMEOUT")
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("world", ["s3"], indirect=True)
def test_readiness_is_checked_at_most_once_per_interval(world: World) -> None:
    assert world.moto is not None
    base = world.serve(EDGE_READY_INTERVAL="60")
    before = len([r for r in world.moto.seen if r.method == "HEAD" and r.path == "/edge-test"])
    for _ in range(5):
        assert get(base + "/readyz").status_code == 200
    after = len([r for r in world.moto.seen if r.method == "HEAD" and r.path == "/edge-test"])
    assert after - before == 1


def test_overload_is_503_with_retry_after(world: World) -> None:
    big = world.put("public", "alice", "big.png", os.urandom(8 * 1024 * 1024))
    world.put("public", "alice", "small.png", PNG)
    base = world.serve(EDGE_MAX_STORAGE_READS="1", EDGE_QUEUE_TIMEOUT="0.2")
    parts = urlsplit(base)
    hog = socket.create_connection((parts.hostname, parts.port))
    try:  # a download that is not read holds the only slot
        hog.sendall(f"GET {big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        hog.recv(1024)
        started = time.monotonic()
        response = get(base + "/i/alice/small.png")
        assert_error(response, 503, "OVERLOADED")
        assert response.headers["retry-after"] == "1"
        assert 0.15 < time.monotonic() - started < 2
    finally:
        hog.close()
    deadline = time.monotonic() + 10
    while get(base + "/i/alice/small.png").status_code != 200:
        assert time.monotonic() < deadline, "the slot is released when the hog goes away"
        time.sleep(0.05)


def test_aborted_downloads_release_storage(world: World) -> None:
    """30 downloads cut off mid-body through a pool of 2 storage connections: afterwards no
    client connection is left open, storage connections are back within the pool and no
    file is held open. Counted per socket (by port), not per process: moto's server threads
    live in this process too, and their sockets are not the edge's."""
    path = world.put("public", "alice", "big.png", os.urandom(4 * 1024 * 1024))
    # A generous queue wait: an aborted download frees its slot a moment after the
    # client leaves, and this test is about connections, not about 503s.
    base = world.serve(
        EDGE_S3_MAX_CONNECTIONS="2", EDGE_MAX_STORAGE_READS="4", EDGE_QUEUE_TIMEOUT="10"
    )
    parts = urlsplit(base)
    edge_port = parts.port
    storage_port = urlsplit(world.moto.endpoint_url).port if world.moto else None
    for attempt in range(30):
        with socket.create_connection((parts.hostname, parts.port)) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = conn.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), (attempt, head[:200])
    response = httpx.get(base + path, timeout=10, verify=TLS)
    assert response.status_code == 200 and len(response.content) == 4 * 1024 * 1024

    def lingering() -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[str]]:
        sockets = open_sockets()
        clients = [s for s in sockets if s[0] == edge_port and s[1] != 0]
        pool = [s for s in sockets if storage_port is not None and s[1] == storage_port]
        files = open_files_under(world.root) if world.root is not None else []
        return clients, pool, files

    deadline = time.monotonic() + 10
    while True:
        clients, pool, files = lingering()
        if not clients and len(pool) <= 2 and not files:
            break
        assert time.monotonic() < deadline, f"clients {clients}, pool {pool}, files {files}"
        time.sleep(0.05)


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_disconnect_stops_reading_storage(world: World) -> None:
    assert world.root is not None
    world.put("public", "alice", "huge.png", b"")
    os.truncate(world.root / "public" / "alice" / "huge.png", 64 * 1024 * 1024)  # sparse
    base = world.serve()
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as conn:
        conn.sendall(b"GET /i/alice/huge.png HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.recv(65536)
    counting = world.counting
    assert counting is not None
    deadline = time.monotonic() + 5
    while counting.bodies_closed == 0:
        assert time.monotonic() < deadline, "the storage body is closed after a disconnect"
        time.sleep(0.02)
    assert counting.chunks_read < 400, f"read {counting.chunks_read} of 1024 chunks"


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_a_reader_that_stops_is_cut_off(world: World) -> None:
    assert world.root is not None
    world.put("public", "alice", "huge.png", b"")
    os.truncate(world.root / "public" / "alice" / "huge.png", 64 * 1024 * 1024)
    base = world.serve(EDGE_SEND_TIMEOUT="0.5")
    parts = urlsplit(base)
    counting = world.counting
    assert counting is not None
    with socket.create_connection((parts.hostname, parts.port)) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.sendall(b"GET /i/alice/huge.png HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.recv(1024)  # then read nothing more
        deadline = time.monotonic() + 10
        while counting.bodies_closed == 0:
            assert time.monotonic() < deadline, "a stalled reader must not hold storage"
            time.sleep(0.05)
    assert counting.chunks_read < 1024

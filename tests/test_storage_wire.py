"""edge's storage client on the wire (edge.storage.wire: aiohttp's client, held to edge's
bounds), against real loopback servers that keep connections alive.

The pool alone: a connection is reused only at the end of an answer, so a request never
reads bytes of another's; anything unexpected (bytes while idle, a second answer) closes
the connection instead. Then through a
whole edge on S3: connections kept alive and reused, a connection the store closed while
idle replaced without costing an attempt, TLS verified against the system's (here: a test)
certificate authorities, malformed answers refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from edge.errors import StorageError, StorageTimeout
from edge.storage.wire import DRAIN_BYTES, HIGH_WATER, Pool, Response
from tests.support.client import TLS, assert_error
from tests.support.faults import fault_proxy
from tests.support.stores import Hangup, Parts, tiny_store
from tests.support.tls import moto_over_tls
from tests.support.world import World

GET = ("GET", "/b/k", {"host": "store"})
HEAD = ("HEAD", "/b/k", {"host": "store"})
#: Every answer's body is as long as every other's, so a stale one would pass for it.
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nanswer-%02d"
STALE = b"STALE-XYZ"
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n'


# --- the pool alone --------------------------------------------------------------------


class Store:
    """Numbers every request it answers (across connections) and counts connections."""

    def __init__(self, special: Callable[[int, bytes], bytes | Parts | None] | None = None):
        self.requests = 0
        self.connections: set[int] = set()
        self.special = special

    async def __call__(self, connection: int, request: int, head: bytes) -> bytes | Parts | None:
        self.connections.add(connection)
        number, self.requests = self.requests, self.requests + 1
        if self.special is not None and (reply := self.special(number, head)) is not None:
            return reply
        return ANSWER % number


def pool(port: int, **options: Any) -> Pool:
    settings: dict[str, Any] = {"limit": 1, "connect_timeout": 5, "read_timeout": 5, **options}
    return Pool(scheme="http", host="127.0.0.1", port=port, tls=None, **settings)


async def body(response: Response) -> bytes:
    data = b""
    while chunk := await response.read():
        data += chunk
    response.release()
    return data


def run(store: Store, scenario: Callable[[Pool], Awaitable[None]], **options: Any) -> None:
    async def main(port: int) -> None:
        client = pool(port, **options)
        try:
            await asyncio.wait_for(scenario(client), 20)
        finally:
            await client.aclose()

    with tiny_store(store) as (port, _):
        asyncio.run(main(port))


async def all_received(response: Response) -> None:
    """Wait (bounded) until the whole answer is in: a body parsed, not read."""
    for _ in range(500):
        if response.complete():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the answer did not arrive")


async def next_answer_is_its_own(client: Pool, number: int) -> None:
    response = await client.request(*GET)
    assert await body(response) == b"answer-%02d" % number


def test_a_body_received_but_unread_is_dropped_never_read_as_the_next_answer() -> None:
    """The bug: a whole answer in, none of it read, the connection released. The next
    request on it reads its own answer, on the same connection (nothing was left to come)."""
    store = Store()

    async def scenario(client: Pool) -> None:
        unread = await client.request(*GET)
        await all_received(unread)  # and none of it read
        unread.release()
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0}, "an answer all in keeps its connection"


def test_a_body_partly_read_then_released_is_dropped_too() -> None:
    big = 200 * 1024  # arrives in several pieces, under the high-water mark

    def special(number: int, head: bytes) -> bytes | None:
        if number == 0:
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % big + b"s" * big
        return None

    async def scenario(client: Pool) -> None:
        response = await client.request(*GET)
        assert (await response.read()).startswith(b"s")
        await all_received(response)
        response.release()  # a client that went away: the rest is in, unread
        await next_answer_is_its_own(client, 1)

    run(Store(special), scenario)


def test_a_body_still_arriving_when_released_closes_the_connection() -> None:
    def special(number: int, head: bytes) -> Parts | None:
        if number == 0:  # half the body, then the rest after the release
            return Parts([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSTALE", 0.3, b"-XYZ"])
        return None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        response = await client.request(*GET)
        assert await response.read() == b"STALE"
        response.release()
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}, "the half-read connection was closed"


LATER = 0.1  # seconds between an answer and what follows it, in another packet


@pytest.mark.parametrize(
    ("first", "reply", "status"),
    [
        (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + STALE, None),
        (HEAD, Parts([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", LATER, STALE]), 200),
        (GET, NOT_MODIFIED + b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + STALE, 304),
        (GET, Parts([NOT_MODIFIED, LATER, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"]), 304),
        (GET, Parts([NOT_MODIFIED, LATER, ANSWER % 98]), 304),
        (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nanswer-00" + ANSWER % 99, 200),
    ],
    ids=[
        "HEAD with a body",
        "HEAD with a body later",
        "304 with an answer after it",
        "304 with an answer later",
        "304 with a whole answer later",
        "two answers to one request",
    ],
)
def test_bytes_no_request_asked_for_close_the_connection(
    first: tuple[str, str, dict[str, str]], reply: bytes | Parts, status: int | None
) -> None:
    """A store that sends more than the answer (a body on a HEAD or a 304, a second answer,
    bytes while the connection is idle): the connection is closed, and the next request
    gets its own answer on a new one. (None: bytes that came with the answer and do not
    parse as HTTP refuse the answer itself, as malformed.)"""

    def special(number: int, head: bytes) -> bytes | Parts | None:
        return reply if number == 0 else None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        if status is None:
            with pytest.raises(StorageError, match="malformed"):
                await client.request(*first)
        else:
            response = await client.request(*first)
            assert response.status == status
            data = await body(response)
            assert data in (b"", b"answer-00"), "the answer in hand is the first one"
        await asyncio.sleep(5 * LATER)  # whatever was to come has come
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}


def test_an_interim_answer_is_skipped() -> None:
    """A ``100 Continue`` edge never asked for is skipped (HTTP says a client must): the
    answer after it is the request's, and the connection carries the next one."""

    def special(number: int, head: bytes) -> bytes | None:
        return b"HTTP/1.1 100 Continue\r\n\r\n" + ANSWER % 0 if number == 0 else None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        await next_answer_is_its_own(client, 0)
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0}


def test_a_short_rest_is_drained_and_its_connection_kept() -> None:
    rest = DRAIN_BYTES // 2

    def special(number: int, head: bytes) -> Parts | None:
        if number == 0:
            start = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nxx" % (rest + 2)
            return Parts([start, 0.1, b"y" * rest])
        return None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        response = await client.request(*GET)
        await response.drain()  # waits the 0.1 s for the rest
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0}


def test_a_long_rest_is_not_drained_its_connection_closed() -> None:
    size = 8 * 1024 * 1024

    def special(number: int, head: bytes) -> bytes | None:
        if number == 0:
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size
        return None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        response = await client.request(*GET)
        await response.drain()
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}


def test_an_error_document_is_read_only_so_far() -> None:
    """A long error body is not read to its end (that could be anything): closed instead."""
    size = 8 * 1024 * 1024  # more than the connection takes in before it is read

    def special(number: int, head: bytes) -> bytes | None:
        if number == 0:
            return b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % size + b"e" * size
        return None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        response = await client.request(*GET)
        assert response.status == 500
        assert len(await response.read_all(4096)) == 4096
        response.release()
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}


@pytest.mark.parametrize("end", ["timeout", "cancelled"])
def test_a_read_that_timed_out_or_was_cancelled_closes_the_connection(end: str) -> None:
    def special(number: int, head: bytes) -> Parts | None:
        if number == 0:  # half the body, then silence
            return Parts([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSTALE", 3.0, b"-XYZ"])
        return None

    store = Store(special)

    async def reader(client: Pool) -> None:
        response = await client.request(*GET)
        try:
            while await response.read():
                pass
        finally:
            response.release()

    async def scenario(client: Pool) -> None:
        task = asyncio.ensure_future(reader(client))
        if end == "timeout":
            with pytest.raises(StorageTimeout):
                await task
        else:
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await next_answer_is_its_own(client, 1)

    run(store, scenario, read_timeout=0.5)
    assert store.connections == {0, 1}


def test_a_request_cancelled_while_waiting_for_a_connection_leaks_no_slot() -> None:
    async def scenario(client: Pool) -> None:
        held = await client.request(*GET)
        waiting = asyncio.ensure_future(client.request(*GET))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await body(held) == b"answer-00"
        await next_answer_is_its_own(client, 1)

    run(Store(), scenario)


def test_a_store_that_hangs_up_after_an_answer_is_not_reused() -> None:
    def special(number: int, head: bytes) -> bytes | None:
        return Hangup(ANSWER % 0) if number == 0 else None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        assert await body(await client.request(*GET)) == b"answer-00"
        await asyncio.sleep(0.1)
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}


# --- through a whole edge on S3 --------------------------------------------------------

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)
OBJECT = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e1"\r\nContent-Type: image/png\r\n'
OBJECT += b"Last-Modified: Wed, 25 Nov 2026 10:00:00 GMT\r\n\r\nhello"
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@S3_ONLY
def test_storage_connections_are_kept_alive_and_reused(world: World) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "photo.png", b"reused")
    with fault_proxy(urlsplit(world.moto.endpoint_url).port or 0) as proxy:
        base = world.serve(  # no cache: every request reads from storage
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", EDGE_CACHE_TTL="0"
        )
        for _ in range(10):
            response = httpx.get(base + path, timeout=10, verify=TLS)
            assert response.status_code == 200 and response.content == b"reused"
        assert len([line for line, _ in proxy.seen if line.startswith("GET")]) == 10
        assert proxy.connections == 1, "one connection carried all ten"


@S3_ONLY
def test_a_connection_the_store_closed_while_idle_costs_no_attempt(world: World) -> None:
    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        if head.startswith(b"HEAD"):
            return HEAD_OK
        if connection == 0 and request == 1:
            return None  # the store dropped the kept-alive connection as edge reused it
        return OBJECT

    with tiny_store(answer) as (port, seen):
        base = world.serve(
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            EDGE_S3_MAX_ATTEMPTS="1",
            EDGE_CACHE_TTL="0",
        )
        for _ in range(3):
            response = httpx.get(base + "/i/alice/x.png", timeout=10, verify=TLS)
            assert response.status_code == 200 and response.content == b"hello"
    assert len([line for line in seen if line.startswith(b"GET")]) == 4  # 3 + the dropped one


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/9.9 200 OK\r\n\r\n",
        b"200 OK\r\n\r\n",
        Hangup(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
        b"HTTP/1.1 206 Partial\r\nContent-Length: 2\r\nContent-Range: bytes 0-1/9\r\n\r\nsh",
    ],
    ids=["bad length", "bad version", "no status line", "cut body", "unasked part"],
)
@S3_ONLY
def test_a_malformed_or_cut_answer_is_a_storage_error(world: World, reply: bytes) -> None:
    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return HEAD_OK if head.startswith(b"HEAD") else reply

    with tiny_store(answer) as (port, _):
        base = world.serve(
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", EDGE_S3_MAX_ATTEMPTS="1"
        )
        response = httpx.get(base + "/i/alice/x.png", timeout=10, verify=TLS)
        assert_error(response, 502, "STORAGE_ERROR")


@S3_ONLY
def test_storage_over_tls_verifies_the_certificate(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "tls.png", b"over tls")
    with moto_over_tls(world, tmp_path) as store:
        untrusted = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint, EDGE_S3_MAX_ATTEMPTS="1")
        assert_error(httpx.get(untrusted + path, timeout=10, verify=TLS), 502, "STORAGE_ERROR")
        assert store.proxy.seen == [], "no request is sent to a store whose certificate fails"
        monkeypatch.setenv("SSL_CERT_FILE", str(store.ca_file))  # the system's CA bundle
        trusted = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint)
        response = httpx.get(trusted + path, timeout=10, verify=TLS)
        assert response.status_code == 200 and response.content == b"over tls"
        assert [line.split()[0] for line, _ in store.proxy.seen] == ["GET"]


def test_a_slow_reader_pauses_the_storage_connection() -> None:
    """Bytes a client has not taken stay in storage's socket, not in edge's memory: the
    connection stops reading at HIGH_WATER and resumes as the body drains."""
    size = 8 * 1024 * 1024

    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size

    async def slowly(port: int) -> tuple[int, int]:
        pool = Pool(
            scheme="http",
            host="127.0.0.1",
            port=port,
            tls=None,
            limit=1,
            connect_timeout=5,
            read_timeout=5,
        )
        response = await pool.request("GET", "/b/k", {"host": "x"})
        await asyncio.sleep(0.5)  # a client that takes nothing for a while
        held = response.buffered()
        received = 0
        while chunk := await response.read():
            received += len(chunk)
        response.release()
        await pool.aclose()
        return held, received

    with tiny_store(answer) as (port, _):
        held, received = asyncio.run(slowly(port))
    assert received == size
    assert HIGH_WATER <= held < HIGH_WATER + 512 * 1024, held


@S3_ONLY
def test_a_validator_with_bytes_past_ascii_is_sent_on_as_the_store_sent_it(world: World) -> None:
    """aiohttp decodes header values as UTF-8 (a byte that is not UTF-8 kept as a
    surrogate): an ETag holding one is sent on byte for byte, never a 500."""
    etag = b'"\xff\xc3\xa9"'
    reply = OBJECT.replace(b'ETag: "e1"', b"ETag: " + etag)

    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return HEAD_OK if head.startswith(b"HEAD") else reply

    with tiny_store(answer) as (port, _):
        base = world.serve(EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", EDGE_CACHE_TTL="0")
        response = httpx.get(base + "/i/alice/x.png", timeout=10, verify=TLS)
        assert response.status_code == 200 and response.content == b"hello"
        assert response.headers.raw[[k for k, _ in response.headers.raw].index(b"etag")][1] == etag
        again = httpx.get(
            base + "/i/alice/x.png", headers={b"if-none-match": etag}, timeout=10, verify=TLS
        )
        assert again.status_code == 304

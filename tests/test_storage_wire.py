"""The storage client's connection state machine, against a real loopback server that keeps
connections alive: a connection is reused only at the end of an answer, so a request never
reads bytes of another's; anything unexpected closes the connection instead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edge.errors import StorageError, StorageTimeout
from edge.storage.wire import DRAIN_BYTES, Pool, Response
from tests.test_storage_pool import Hangup, Parts, tiny_store

GET = b"GET /b/k HTTP/1.1\r\nhost: store\r\n\r\n"
HEAD = b"HEAD /b/k HTTP/1.1\r\nhost: store\r\n\r\n"
#: Every answer's body is as long as every other's, so a stale one would pass for it.
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nanswer-%02d"
STALE = b"STALE-XYZ"
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n'


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
    return Pool(host="127.0.0.1", port=port, tls=None, **settings)


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
    connection = response._connection
    for _ in range(500):
        if connection.unreceived() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the answer did not arrive")


async def next_answer_is_its_own(client: Pool, number: int) -> None:
    response = await client.request(GET)
    assert await body(response) == b"answer-%02d" % number


def test_a_body_received_but_unread_is_dropped_never_read_as_the_next_answer() -> None:
    """The bug: a whole answer in, none of it read, the connection released. The next
    request on it reads its own answer, on the same connection (nothing was left to come)."""
    store = Store()

    async def scenario(client: Pool) -> None:
        unread = await client.request(GET)
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
        response = await client.request(GET)
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
        response = await client.request(GET)
        assert await response.read() == b"STALE"
        response.release()
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}, "the half-read connection was closed"


LATER = 0.1  # seconds between an answer and what follows it, in another packet


@pytest.mark.parametrize(
    ("first", "reply", "status"),
    [
        (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + STALE, 200),
        (HEAD, Parts([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", LATER, STALE]), 200),
        (GET, NOT_MODIFIED + b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + STALE, 304),
        (GET, Parts([NOT_MODIFIED, LATER, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"]), 304),
        (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nanswer-00" + ANSWER % 99, 200),
        (GET, b"HTTP/1.1 100 Continue\r\n\r\n" + ANSWER % 0, None),
    ],
    ids=[
        "HEAD with a body",
        "HEAD with a body later",
        "304 with an answer after it",
        "304 with an answer later",
        "two answers to one request",
        "interim 100",
    ],
)
def test_bytes_no_request_asked_for_close_the_connection(
    first: bytes, reply: bytes | Parts, status: int | None
) -> None:
    """A store that sends more than the answer (a body on a HEAD or a 304, a second answer)
    or an interim answer edge never asks for: the connection is closed, and the next request
    gets its own answer on a new one. (None: the answer itself is refused.)"""

    def special(number: int, head: bytes) -> bytes | Parts | None:
        return reply if number == 0 else None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        if status is None:
            with pytest.raises(StorageError, match="interim"):
                await client.request(first)
        else:
            response = await client.request(first, head_only=first is HEAD)
            assert response.status == status
            data = await body(response)
            assert data in (b"", b"answer-00"), "the answer in hand is the first one"
        await asyncio.sleep(5 * LATER)  # whatever was to come has come
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}


def test_send_refuses_a_connection_holding_an_earlier_answer() -> None:
    """Defence in depth: even if a connection mid-answer reached send, it would refuse."""

    async def scenario(client: Pool) -> None:
        response = await client.request(GET)
        await all_received(response)
        connection = response._connection
        with pytest.raises(RuntimeError, match="not idle"):
            connection.send(GET, head_only=False)
        response.release()
        await next_answer_is_its_own(client, 1)

    run(Store(), scenario)


def test_a_short_rest_is_drained_and_its_connection_kept() -> None:
    rest = DRAIN_BYTES // 2

    def special(number: int, head: bytes) -> Parts | None:
        if number == 0:
            start = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nxx" % (rest + 2)
            return Parts([start, 0.1, b"y" * rest])
        return None

    store = Store(special)

    async def scenario(client: Pool) -> None:
        response = await client.request(GET)
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
        response = await client.request(GET)
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
        response = await client.request(GET)
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
        response = await client.request(GET)
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
        held = await client.request(GET)
        waiting = asyncio.ensure_future(client.request(GET))
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
        assert await body(await client.request(GET)) == b"answer-00"
        await asyncio.sleep(0.1)
        await next_answer_is_its_own(client, 1)

    run(store, scenario)
    assert store.connections == {0, 1}

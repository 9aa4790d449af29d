"""A small HTTP/1.1 client for one storage host: a bounded keep-alive pool, httptools
parsing, timeouts on every wait, and bodies that flow at the reader's pace.

It does only what edge's S3 reads need (GET and HEAD, no request body), which
is why it costs a fraction of aiohttp's CPU per request: no generic request
model, no cookie jar, no tracing hooks. Errors are edge's: ``StorageTimeout``
for silence, ``StorageError`` for a closed connection or a malformed answer.

A kept-alive connection carries one answer after another, so the one rule that
keeps each request's bytes its own: a connection goes back to the pool only at
the end of an answer (every byte of it received; what was not read is dropped),
and a connection holding anything else (part of a body, bytes no request asked
for) is closed. Each request gets a fresh parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
import time
from collections import deque
from typing import Any, NoReturn

import httptools

from edge.errors import StorageError, StorageTimeout

#: Reading from storage pauses while this much body waits for a slow client, and
#: resumes below the low mark: memory per download stays bounded.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: S3 drops connections idle for about 20 s; ones idle longer than this are not reused.
IDLE_SECONDS = 15.0
#: An answer released with at most this much body still to come is read to its end, so its
#: connection is kept: on a warm connection that is about one round trip, fewer than a new
#: (TLS) connection costs. A longer rest closes the connection instead.
DRAIN_BYTES = 16 * 1024
#: ...and only if the rest comes this fast: the request waits for it.
DRAIN_SECONDS = 0.5


class Closed(StorageError):
    """The connection ended before the answer did."""


class State(enum.Enum):
    """Where a connection is in its one exchange at a time. Only IDLE may carry a request,
    and only :meth:`Connection.finish` leads back to it, from DONE: a connection is reused
    at the end of an answer, never in the middle of one."""

    IDLE = "idle"  # between exchanges, holding nothing of an answer
    WAITING = "waiting"  # a request sent, its answer's head not complete
    BODY = "body"  # the head in, the body arriving
    DONE = "done"  # the whole answer in; some of its body may still be unread


IDLE, WAITING, BODY, DONE = State.IDLE, State.WAITING, State.BODY, State.DONE


class Connection(asyncio.Protocol):
    """One connection, carrying one request and response at a time.

    Anything no answer to the request explains (a second answer, a body after a HEAD's
    head, a byte while idle, an interim 1xx) marks the connection failed: it is closed,
    never reused. The answer already in hand stays readable.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.state = IDLE
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.received = False  # a byte of the current answer has arrived
        self.idle_since = 0.0
        self._head_only = False
        self._left = -1  # body bytes still to come; -1 when the answer gives no length
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._error: StorageError | None = None

    # -- used by Pool and Response --------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self._error

    def send(self, request: bytes, *, head_only: bool) -> asyncio.Future[None]:
        """Write ``request``; the future resolves when the answer's headers are in."""
        if self.state is not IDLE or self._chunks:
            # Pool hands out only idle connections: this is a bug, and the one thing it
            # must never do is let an earlier answer's bytes be read as this one's.
            raise RuntimeError(f"storage connection not idle ({self.state.value}): not reused")
        if self.transport is None or not self.usable:  # closed by the store since
            raise self._error or Closed("storage connection closed")
        self.parser = httptools.HttpResponseParser(self)  # no parser state carries over
        self.state, self.status, self.headers, self.received = WAITING, 0, {}, False
        self._head_only, self._left = head_only, -1
        self._head = self.pool.loop.create_future()
        self.transport.write(request)
        return self._head

    async def read(self, timeout: float) -> bytes:
        """The next piece of body; ``b""`` at its end."""
        while not self._chunks:
            if self.state is DONE:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self.pool.loop.create_future()
            await wait(self._waiter, timeout)
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def unreceived(self) -> int:
        """Body bytes of the current answer still to arrive; -1 when unknown."""
        return 0 if self.state is DONE else self._left if self.state is BODY else -1

    def finish(self) -> bool:
        """End the exchange. True when the connection may carry another: the whole answer
        is in (what of it was not read is dropped here) and both sides keep it alive."""
        if self.state is not DONE or not self.keep_alive or not self.usable:
            return False
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()  # so a close or a stray byte is seen while idle
        self.state = IDLE
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._fail(Closed("storage connection closed"))

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.state is not WAITING and self.state is not BODY:
            self._fail(StorageError(f"storage sent bytes while {self.state.value}"))
        else:
            self.received = True
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserError as error:  # the first reason is kept
                self._fail(StorageError(f"storage sent a malformed answer: {type(error).__name__}"))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        middle = self.state is WAITING or self.state is BODY
        self._fail(Closed("storage closed the connection" + (" mid-answer" if middle else "")))

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.state is not WAITING:
            self._refuse("a second answer to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # edge never asks for one (no Expect: 100-continue)
            self._refuse(f"an interim {status} answer")
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if self._head_only:
            self.state = DONE  # a HEAD's answer has no body, whatever its length says
        else:
            self.state = BODY
            length = self.headers.get("content-length", "")
            self._left = int(length) if length.isdigit() else -1
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.state is not BODY:
            self._refuse("a body after a HEAD's answer")
        self._chunks.append(body)
        self._buffered += len(body)
        if self._left > 0:
            self._left -= len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.state is BODY:
            self.state, self._left = DONE, 0
            self._wake()
        elif not (self.state is DONE and self._head_only):  # a HEAD's parser may end it too
            self._refuse("the end of an answer that was not under way")

    def _refuse(self, what: str) -> NoReturn:
        """Stop parsing: the connection carries something no answer to the request explains."""
        error = StorageError(f"storage sent {what}")
        self._fail(error)
        raise error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: StorageError) -> None:
        if self._error is None:
            self._error = error
        for future in (self._head, self._waiter):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting any more


class Response:
    """A storage answer's status and headers; the body is read with :meth:`read`, and
    :meth:`release` (always) hands the connection back if the answer is all in, or closes
    it. :meth:`drain` first reads a short rest nobody needs, to keep the connection."""

    __slots__ = ("_connection", "_pool", "headers", "status")

    def __init__(self, pool: Pool, connection: Connection) -> None:
        self._pool, self._connection = pool, connection
        self.status, self.headers = connection.status, connection.headers

    async def read(self) -> bytes:
        connection = self._connection
        if connection is None:
            return b""
        return await connection.read(self._pool.read_timeout)

    async def read_all(self, limit: int) -> bytes:
        """A short body (an error document): at most ``limit`` bytes are read; a longer
        body's connection is closed at release."""
        data = b""
        while len(data) < limit and (chunk := await self.read()):
            data += chunk
        return data[:limit]

    async def drain(self) -> None:
        """Release, after reading the rest of the body (unused) if at most DRAIN_BYTES of
        it are still to come, within DRAIN_SECONDS; a longer or slower one is closed."""
        connection = self._connection
        try:
            if connection is not None and 0 < connection.unreceived() <= DRAIN_BYTES:
                timeout = min(DRAIN_SECONDS, self._pool.read_timeout)
                with contextlib.suppress(StorageError, StorageTimeout, TimeoutError):
                    async with asyncio.timeout(timeout):
                        while await connection.read(timeout):
                            pass
        finally:
            self.release()

    def release(self) -> None:
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is not None:
            self._pool.release(connection)


class Pool:
    """Up to ``limit`` connections to one host, reused most-recent first."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()

    async def request(self, request: bytes, *, head_only: bool = False) -> Response:
        """Send ``request`` and wait for the answer's headers. A kept-alive connection the
        host closed while idle is replaced once, without counting as a failure."""
        slots = self._slots
        if slots.locked():
            acquiring = asyncio.ensure_future(slots.acquire())
            try:
                await wait(acquiring, self.connect_timeout)
            except BaseException:  # a timeout, or this task cancelled
                if acquiring.done() and not acquiring.cancelled():
                    slots.release()  # acquired just as the wait ended: give it back
                raise
        else:
            await slots.acquire()
        try:
            while True:
                connection = self._reuse()
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                try:
                    await wait(connection.send(request, head_only=head_only), self.read_timeout)
                except Closed:
                    self._discard(connection)
                    if reused and not connection.received:
                        continue
                    raise
                except BaseException:
                    self._discard(connection)
                    raise
                return Response(self, connection)
        except BaseException:
            slots.release()
            raise

    def release(self, connection: Connection) -> None:
        """Take a connection back: kept if its answer is all in (Connection.finish), else
        closed. Never reused in the middle of an answer, whatever the caller read."""
        if connection.finish():
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            self._discard(connection)
        self._slots.release()

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        self._open.clear()

    def _reuse(self) -> Connection | None:
        idle = self._idle
        if not idle:
            return None
        stale = time.monotonic() - IDLE_SECONDS
        while idle and idle[0].idle_since < stale:
            self._discard(idle.pop(0))
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            self._discard(connection)
        return None

    async def _connect(self) -> Connection:
        connection = Connection(self)
        try:
            await wait(
                asyncio.ensure_future(
                    self.loop.create_connection(
                        lambda: connection,
                        self.host,
                        self.port,
                        ssl=self.tls,
                        server_hostname=self.host if self.tls else None,
                    )
                ),
                self.connect_timeout,
            )
        except StorageTimeout:
            raise
        except OSError as error:
            raise StorageError(f"cannot connect to storage: {type(error).__name__}") from None
        self._open.add(connection)
        return connection

    def _discard(self, connection: Connection) -> None:
        self._open.discard(connection)
        connection.close()


async def wait(future: asyncio.Future[Any], timeout: float) -> None:
    """Await ``future`` for at most ``timeout`` seconds, then raise ``StorageTimeout``; a
    timer handle costs less than ``asyncio.wait_for``, on a path every miss takes."""
    if future.done():
        future.result()
        return
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    except asyncio.CancelledError:
        if expired:
            raise StorageTimeout(f"storage silent for {timeout:g} s") from None
        raise
    finally:
        timer.cancel()

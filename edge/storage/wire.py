"""A small HTTP/1.1 client for one storage host: a bounded keep-alive pool, httptools
parsing, timeouts on every wait, and bodies that flow at the reader's pace.

It does only what edge's S3 reads need (GET and HEAD, no request body), which
is why it costs a fraction of aiohttp's CPU per request: no generic request
model, no cookie jar, no tracing hooks. Errors are edge's: ``StorageTimeout``
for silence, ``StorageError`` for a closed connection or a malformed answer.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import httptools

from edge.errors import StorageError, StorageTimeout

#: Reading from storage pauses while this much body waits for a slow client, and
#: resumes below the low mark: memory per download stays bounded.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: S3 drops connections idle for about 20 s; ones idle longer than this are not reused.
IDLE_SECONDS = 15.0


class Closed(StorageError):
    """The connection ended before the answer did."""


class Connection(asyncio.Protocol):
    """One connection, carrying one request and response at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.complete = True  # no message under way
        self.received = False  # a byte of the current answer has arrived
        self.idle_since = 0.0
        self._head_only = False
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
        assert self.transport is not None and self.complete
        self.status, self.headers, self.complete, self.received = 0, {}, False, False
        self._head_only = head_only
        self._head = self.pool.loop.create_future()
        self.transport.write(request)
        return self._head

    async def read(self, timeout: float) -> bytes:
        """The next piece of body; ``b""`` at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            self._waiter = self.pool.loop.create_future()
            await wait(self._waiter, timeout)
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._fail(Closed("storage connection closed"))

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(StorageError(f"storage sent a malformed answer: {type(error).__name__}"))
            if self.transport is not None:
                self.transport.close()
            return
        if self._head_only and self.complete:
            # A HEAD's answer announces a length it does not send: start the next answer afresh.
            self.parser = httptools.HttpResponseParser(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        if not self.complete:
            self._fail(Closed("storage closed the connection mid-answer"))

    # -- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self._head_only:
            self.complete = True
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

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
    :meth:`release` (always) hands the connection back, or closes it if unread."""

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
        """A short body (an error document), at most ``limit`` bytes kept."""
        data = b""
        while chunk := await self.read():
            data = (data + chunk)[:limit]
        return data

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
            await wait(asyncio.ensure_future(slots.acquire()), self.connect_timeout)
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
        if connection.complete and connection.keep_alive and connection.usable:
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

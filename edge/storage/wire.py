"""A small HTTP/1.1 client for one storage host: a bounded keep-alive pool, timeouts on
every wait, and bodies that flow at the reader's pace.

It does only what edge's S3 reads need (GET and HEAD, no request body), which
is why it costs a fraction of aiohttp's CPU per request: no generic request
model, no cookie jar, no tracing hooks. Each connection is a state machine of
its own (:mod:`edge.storage.connection`), reused only at the end of an answer.
Every failure is raised from its row of :mod:`edge.storage.failures`
(``Fault`` or ``Silence``), which says whether the caller may try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from edge.errors import StorageError, StorageTimeout
from edge.storage.connection import HIGH_WATER, Connection, wait
from edge.storage.failures import (
    AT_ONCE,
    CONNECT_TIMEOUT,
    POOL_BUSY,
    READ_TIMEOUT,
    Fault,
    connect_detail,
    connect_row,
)

__all__ = ["DRAIN_BYTES", "HIGH_WATER", "Pool", "Response"]  # HIGH_WATER: as before the split

#: S3 drops connections idle for about 20 s; ones idle longer than this are not reused.
IDLE_SECONDS = 15.0
#: An answer released with at most this much body still to come is read to its end, so its
#: connection is kept: on a warm connection that is about one round trip, fewer than a new
#: (TLS) connection costs. A longer rest closes the connection instead.
DRAIN_BYTES = 16 * 1024
#: ...and only if the rest comes this fast: the request waits for it.
DRAIN_SECONDS = 0.5


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
        self.host, self.port, self.tls, self.limit = host, port, tls, limit
        self.endpoint = f"{host}:{port}"  # for the log
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
                await wait(acquiring, self.connect_timeout, POOL_BUSY, limit=self.limit)
            except BaseException:  # a timeout, or this task cancelled
                if acquiring.done() and not acquiring.cancelled():
                    slots.release()  # acquired just as the wait ended: give it back
                raise
        else:
            await slots.acquire()
        try:
            while True:  # bounded: only a reused connection is retried AT_ONCE
                connection = self._reuse()
                if connection is None:
                    connection = await self._connect()
                try:
                    await wait(
                        connection.send(request, head_only=head_only),
                        self.read_timeout,
                        READ_TIMEOUT,
                    )
                except Fault as error:
                    self._discard(connection)
                    if error.row.retry is AT_ONCE:  # a kept-alive connection found closed
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
        connection = Connection(self.loop)
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
                CONNECT_TIMEOUT,
                endpoint=self.endpoint,
            )
        except StorageTimeout:
            raise
        except OSError as error:
            detail = connect_detail(error)
            raise connect_row(error).exception(
                endpoint=self.endpoint, host=self.host, detail=detail
            ) from None
        self._open.add(connection)
        return connection

    def _discard(self, connection: Connection) -> None:
        self._open.discard(connection)
        connection.close()

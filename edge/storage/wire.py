"""The HTTP client under S3: aiohttp's, held to edge's bounds.

A bounded keep-alive pool (``EDGE_S3_MAX_CONNECTIONS``), a timeout on every wait
(the pool, the connection, the answer, each piece of body), bodies that flow at
the reader's pace, TLS with the CA bundle and a proxy as the AWS SDKs choose
them (:mod:`edge.storage.network`). Every failure aiohttp reports is raised from
its row of :mod:`edge.storage.failures` (``Fault`` or ``Silence``), which says
whether the caller may try again, and names the host and port it tried.

One rule keeps each request's bytes its own: a connection goes back to the pool
only at the end of an answer, every byte of it received (aiohttp closes any
other), and one found holding anything on its way out again (bytes that came
while it was idle, a second answer) is closed instead of reused (:class:`_Connector`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
import weakref
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from edge.errors import EdgeError, StorageError, StorageTimeout
from edge.storage.failures import (
    AT_ONCE,
    BODY_CUT,
    BODY_TIMEOUT,
    CLOSED_BEFORE_ANSWER,
    CONNECT_FAILED,
    CONNECT_TIMEOUT,
    MALFORMED,
    POOL_BUSY,
    READ_TIMEOUT,
    STALE_CONNECTION,
    Fault,
    Silence,
    connect_detail,
    connect_row,
)

__all__ = ["DRAIN_BYTES", "HIGH_WATER", "Pool", "Response"]

#: S3 drops connections idle for about 20 s; ones idle longer than this are not reused.
IDLE_SECONDS = 15.0
#: Reading from storage pauses while this much body waits for a slow client (aiohttp's
#: flow control, at twice its read buffer): memory per download stays bounded.
HIGH_WATER = 256 * 1024
#: The most one read returns: a chunk of the body as the client is sent it.
READ_BYTES = 64 * 1024
#: An answer released with at most this much body still to come is read to its end, so its
#: connection is kept: on a warm connection that is about one round trip, fewer than a new
#: (TLS) connection costs. A longer rest closes the connection instead.
DRAIN_BYTES = 16 * 1024
#: ...and only if the rest comes this fast: the request waits for it.
DRAIN_SECONDS = 0.5
#: Whether the connection the current task's request went out on had carried one before.
_REUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("edge_storage_reused")


class Response:
    """A storage answer's status and headers; the body is read with :meth:`read`, and
    :meth:`release` (always) hands the connection back if the answer is all in, or closes
    it. :meth:`drain` first reads a short rest nobody needs, to keep the connection."""

    __slots__ = ("_pool", "_raw", "_taken", "headers", "status")

    def __init__(self, pool: Pool, raw: aiohttp.ClientResponse) -> None:
        self._pool, self._raw, self._taken = pool, raw, 0
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers  # names in any case

    @property
    def length(self) -> int:
        """The body's length as the answer gives it; -1 when it gives none (chunked)."""
        text = self.headers.get("content-length", "")
        return int(text) if text.isdigit() else -1

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def endpoint(self) -> str:
        """The host and port it came from, for the log."""
        return self._pool.endpoint

    def _cut(self, detail: str) -> EdgeError:
        return BODY_CUT.exception(detail=detail, endpoint=self._pool.endpoint)

    def complete(self) -> bool:
        """Whether every byte of the answer has arrived (read or not)."""
        return self._raw is None or self._raw.content.is_eof()

    def buffered(self) -> int:
        """Body bytes received and not yet read (what a slow reader makes edge hold)."""
        raw = self._raw
        return 0 if raw is None else raw.content.total_bytes - self._taken

    async def read(self) -> bytes:
        """The next piece of body (at most READ_BYTES); ``b""`` at its end."""
        raw = self._raw
        if raw is None:
            return b""
        try:
            data = await raw.content.read(READ_BYTES)
        except aiohttp.ClientPayloadError as error:
            raise self._cut(_payload_detail(error)) from None
        except TimeoutError:  # aiohttp's sock_read: silence mid-body
            timeout = f"{self._pool.read_timeout:g}"
            raise BODY_TIMEOUT.exception(timeout=timeout, endpoint=self.endpoint) from None
        except (aiohttp.ClientError, OSError) as error:
            raise self._cut(type(error).__name__) from None
        self._taken += len(data)
        return data

    async def read_all(self, limit: int) -> bytes:
        """A short body (an error document, a listing): at most ``limit`` bytes are read; a
        longer body's connection is closed at release."""
        data = b""
        while len(data) < limit and (chunk := await self.read()):
            data += chunk
        return data[:limit]

    async def drain(self) -> None:
        """Release, after reading the rest of the body (unused) if at most DRAIN_BYTES of
        it are still to come, within DRAIN_SECONDS; a longer, slower or unsized one is
        closed."""
        raw = self._raw
        try:
            if raw is not None and not raw.content.is_eof():
                left = self.length - raw.content.total_bytes
                if 0 < left <= DRAIN_BYTES:
                    timeout = min(DRAIN_SECONDS, self._pool.read_timeout)
                    with contextlib.suppress(StorageError, StorageTimeout, TimeoutError):
                        async with asyncio.timeout(timeout):
                            while await self.read():
                                pass
        finally:
            self.release()

    def release(self) -> None:
        raw, self._raw = self._raw, None  # type: ignore[assignment]
        if raw is not None:
            if not raw.content.is_eof():
                raw.close()  # mid-body: never back to the pool
            else:
                raw.release()  # all in: aiohttp keeps it, unless it holds anything more
            self._pool.slots.release()


class Pool:
    """Up to ``limit`` connections to one endpoint (through ``proxy``, if any)."""

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
        proxy: str | None = None,
        name: str | None = None,
    ) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.proxy = URL(proxy) if proxy else None
        #: For the log: the host and port tried (``name``, else ``host:port``), and the
        #: proxy's (never its credentials).
        self.endpoint = name or f"{host}:{port}"
        if self.proxy is not None:
            self.endpoint += f" via proxy {self.proxy.host}:{self.proxy.port}"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        bracketed = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
        self.base = f"{scheme}://{bracketed}:{port}"
        self.slots = asyncio.Semaphore(limit)
        connector = _Connector(
            limit=limit,
            keepalive_timeout=IDLE_SECONDS,
            ssl=tls if tls is not None else True,  # True: verified (an https proxy)
            use_dns_cache=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            auto_decompress=False,  # ranges and lengths are over the stored bytes
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            read_bufsize=HIGH_WATER // 2,
            raise_for_status=False,
        )
        self._session._retry_connection = False  # edge retries, by its rows

    async def request(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        """Send ``method target`` (path and query, encoded) and wait for the answer's
        headers. A kept-alive connection the host closed while idle is replaced, without
        counting as a failure (at most once per connection the pool can hold)."""
        slots = self.slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise POOL_BUSY.exception(
                    timeout=f"{self.connect_timeout:g}", limit=self.limit
                ) from None
        else:
            await slots.acquire()
        url = URL(self.base + target, encoded=True)
        try:
            for _ in range(self.limit + 1):  # bounded: each stale connection is tried once
                try:
                    raw = await self._session.request(
                        method, url, headers=headers, proxy=self.proxy, allow_redirects=False
                    )
                except (aiohttp.ClientError, OSError) as error:  # TimeoutError is an OSError
                    failure = self._failure(error)
                    if failure.row.retry is AT_ONCE:
                        continue
                    raise failure from None
                return Response(self, raw)
            raise STALE_CONNECTION.exception()
        except BaseException:
            slots.release()
            raise

    async def aclose(self) -> None:
        await self._session.close()

    def _failure(self, error: aiohttp.ClientError | OSError) -> Fault | Silence:
        """The row of an error aiohttp raised before an answer's headers were in."""
        endpoint = self.endpoint
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return Silence(CONNECT_TIMEOUT, timeout=f"{self.connect_timeout:g}", endpoint=endpoint)
        if isinstance(error, aiohttp.ClientHttpProxyError):  # the proxy refused the tunnel
            return Fault(
                CONNECT_FAILED,
                endpoint=endpoint,
                detail=f"the proxy answered {error.status} {error.message}".rstrip(),
            )
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            cause: object = error.certificate_error
        elif isinstance(error, aiohttp.ClientConnectorError):
            cause = error.os_error
        else:
            cause = None
        if isinstance(cause, OSError):
            proxy = self.proxy if isinstance(error, aiohttp.ClientProxyConnectionError) else None
            host = proxy.host if proxy is not None else self.host
            row = connect_row(cause)
            return Fault(row, endpoint=endpoint, host=host, detail=connect_detail(cause))
        if isinstance(error, TimeoutError):  # sock_read, before the headers
            return Silence(READ_TIMEOUT, timeout=f"{self.read_timeout:g}", endpoint=endpoint)
        if isinstance(error, aiohttp.ClientResponseError):  # aiohttp could not parse it
            detail = f"a malformed answer ({_one_line(error.message)})"
            return Fault(MALFORMED, endpoint=endpoint, detail=detail)
        if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            how = "reset" if isinstance(error, ConnectionResetError) else "closed"
            row = STALE_CONNECTION if _REUSED.get(False) else CLOSED_BEFORE_ANSWER
            return Fault(row, endpoint=endpoint, how=how, when="before answering")
        return Fault(CONNECT_FAILED, endpoint=endpoint, detail=type(error).__name__)


def _payload_detail(error: aiohttp.ClientPayloadError) -> str:
    text = str(error)
    if "not completed" in text:
        return "connection closed mid-body"
    return f"the body stops parsing ({_one_line(text)})"


def _one_line(text: object) -> str:
    """What aiohttp said, on one line and short: it may quote the store's bytes."""
    return " ".join(str(text).split())[:100]


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, with one more rule: a kept-alive connection handed out for a request
    must hold nothing (a byte that came while it was idle, a second answer, an error it
    saw). aiohttp checks only that it is open; one holding anything is closed here and
    another taken. Which connections carried a request before is noted, so a reused one
    the store had closed is told from a new one that failed."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._carried: weakref.WeakSet[ResponseHandler] = weakref.WeakSet()

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        for _ in range(self.limit + 1):  # bounded: at most every idle connection is closed
            connection = await super().connect(req, traces, timeout)
            protocol = connection.protocol
            if protocol is None:
                return connection
            if protocol.should_close:  # holds bytes (or an error) no request asked for
                connection.close()
                continue
            _REUSED.set(protocol in self._carried)
            self._carried.add(protocol)
            return connection
        raise aiohttp.ServerDisconnectedError("no clean connection")

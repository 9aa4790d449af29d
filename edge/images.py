"""The hot path: ``GET``/``HEAD /i/{user}/{file}`` as a plain ASGI callable.

Order matters and is the spec's: method, path rules, signature, and only then
storage, so a bad or expired signature costs no storage request. A valid
signature reads ``private/`` first and falls back to ``public/``; an unsigned
request only ever names ``public/``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from edge.errors import EdgeError, MethodNotAllowed, NotFound, StorageError, StorageTimeout
from edge.http import effective_type, parse_range
from edge.limits import ReadSlots
from edge.observe import Exchange, Metrics
from edge.paths import request_path
from edge.responses import (
    ACCEPT_RANGES,
    CORS_ANY,
    NOSNIFF,
    Header,
    error_response,
    last_modified_header,
    type_headers,
)
from edge.settings import Settings
from edge.signing import Grant, Verifier
from edge.storage import Body, Conditions, Reply, Storage

log = logging.getLogger("edge")


class ImageHandler:
    """Serves images; every failure before the first byte becomes a JSON error."""

    def __init__(
        self,
        *,
        settings: Settings,
        verifier: Verifier,
        storage: Storage,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.verifier = verifier
        self.storage = storage
        self.clock = clock
        self.cors = settings.cors
        self.private_max_age = settings.private_max_age
        self.send_timeout = settings.send_timeout
        self.slots = ReadSlots(settings.max_storage_reads, wait=settings.queue_timeout)
        # Headers every image response carries, computed once.
        self._common: tuple[Header, ...] = (ACCEPT_RANGES, NOSNIFF) + (
            (CORS_ANY,) if settings.cors else ()
        )
        self._public_cache: Header = (
            b"cache-control",
            f"public, max-age={settings.public_max_age}".encode(),
        )

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> None:
        head = scope["method"] == "HEAD"
        try:
            if not head and scope["method"] != "GET":
                raise MethodNotAllowed(f"method {scope['method']}")
            path = request_path(scope.get("raw_path") or scope["path"].encode())
            grant = self.verifier.verify(path, scope["query_string"])
            conditions = _conditions(scope["headers"])
            await self.slots.acquire()
        except Exception as error:
            await self._fail(send, error, head, scope.get("path", ""), exchange)
            return
        try:
            await self._serve(path, grant, conditions, head, receive, send, exchange)
        finally:
            self.slots.release()

    async def _serve(
        self,
        path: str,
        grant: Grant | None,
        conditions: Conditions,
        head: bool,
        receive: Receive,
        send: Send,
        exchange: Exchange,
    ) -> None:
        """Read storage and answer, holding a read slot (released by the caller)."""
        try:
            reply, private = await self._read(path[3:], grant, conditions, head)
        except Exception as error:
            await self._fail(send, error, head, path, exchange)
            return
        headers = self._headers(reply, private, grant, path)
        exchange.status = reply.status
        exchange.outcome = "private" if private else "public"
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.body is None:
            body = b"" if head or reply.data is None else reply.data
            await send({"type": "http.response.body", "body": body})
            exchange.sent = len(body)
        else:
            await self._stream(reply.body, receive, send, exchange)

    async def _read(
        self, rest: str, grant: Grant | None, conditions: Conditions, head: bool
    ) -> tuple[Reply, bool]:
        if grant is not None:
            try:
                return await self._timed_read("private/" + rest, conditions, head), True
            except NotFound:
                pass
        return await self._timed_read("public/" + rest, conditions, head), False

    async def _timed_read(self, key: str, conditions: Conditions, head: bool) -> Reply:
        if self.metrics is None:
            return await self.storage.read(key, conditions, head=head)
        started = time.perf_counter()
        try:
            return await self.storage.read(key, conditions, head=head)
        except (StorageError, StorageTimeout) as error:
            self.metrics.storage_errors.labels(self.storage.kind, error.code).inc()
            raise
        finally:
            operation = "head" if head else "get"
            self.metrics.storage_latency.labels(self.storage.kind, operation).observe(
                time.perf_counter() - started
            )

    def cache_control(self, *, private: bool, grant: Grant | None) -> Header:
        """Public: the configured max-age. Private: never past exp, nor past the cap."""
        if private and grant is not None:
            left = max(0, min(grant[1] - int(self.clock()), self.private_max_age))
            return (b"cache-control", f"private, max-age={left}".encode())
        return self._public_cache

    def _headers(self, reply: Reply, private: bool, grant: Grant | None, path: str) -> list[Header]:
        stat = reply.stat
        cache = self.cache_control(private=private, grant=grant)
        headers = [(b"etag", stat.etag.encode("latin-1")), cache, *self._common]
        if stat.last_modified > 0:
            headers.append(last_modified_header(stat.last_modified))
        if reply.status == 304:
            return headers
        headers.extend(type_headers(effective_type(stat.content_type, path)))
        headers.append((b"content-length", str(reply.length).encode()))
        if reply.status == 206:
            headers.append(
                (b"content-range", f"bytes {reply.start}-{reply.end}/{stat.size}".encode())
            )
        return headers

    async def _stream(self, body: Body, receive: Receive, send: Send, exchange: Exchange) -> None:
        """Send a large body chunk by chunk, reading storage only as fast as the client takes it.

        Returning without completing the response makes the server close the
        connection: a client always sees a short body as an error, never as a
        clean end.
        """
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            async for chunk in body:
                async with asyncio.timeout(self.send_timeout):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                exchange.sent += len(chunk)
                if gone.done():
                    return  # the client went away: stop reading storage
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            exchange.outcome = "client_too_slow"
            log.warning("client took over %ss for one chunk: disconnected", self.send_timeout)
        except EdgeError as error:
            exchange.outcome = "storage_aborted"
            log.warning("storage failed mid-body, connection aborted: %s", error.reason)
        finally:
            gone.cancel()
            await body.aclose()

    async def _fail(
        self, send: Send, error: Exception, head: bool, path: str, exchange: Exchange
    ) -> None:
        if not isinstance(error, EdgeError):  # a bug: logged with its traceback, answered without
            log.error("unexpected error serving %s", path[:200], exc_info=error)
            error = EdgeError("unexpected error")
        exchange.status = error.status
        exchange.outcome = "error" if type(error) is EdgeError else error.code.lower()
        await self.send_error(send, error, head=head)
        exchange.sent = 0 if head else len(error_response(error, cors=self.cors)[2])

    async def send_error(self, send: Send, error: EdgeError, *, head: bool = False) -> None:
        status, headers, body = error_response(error, cors=self.cors)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _conditions(headers: list[tuple[bytes, bytes]]) -> Conditions:
    """The headers that shape a read, in one pass over the request's headers."""
    ranges: list[bytes] = []
    if_range = if_none_match = if_modified_since = None
    for name, value in headers:
        if name == b"range":
            ranges.append(value)
        elif name == b"if-none-match":  # repeated fields form one list
            text = value.decode("latin-1")
            if_none_match = text if if_none_match is None else f"{if_none_match}, {text}"
        elif name == b"if-modified-since":
            if_modified_since = value.decode("latin-1")
        elif name == b"if-range":
            if_range = value.decode("latin-1")
    spec = parse_range(ranges[0].decode("latin-1")) if len(ranges) == 1 else None
    return Conditions(spec, if_range, if_none_match, if_modified_since)

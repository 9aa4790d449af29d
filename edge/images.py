"""The hot path: ``GET``/``HEAD /i/{user}/{file}`` as a plain ASGI callable.

Order matters and is the spec's: method, path rules, signature, and only then
storage, so a bad or expired signature costs no storage request. A valid
signature reads ``private/`` first and falls back to ``public/``; an unsigned
request only ever names ``public/``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from edge.cache import Entry, HotCache
from edge.errors import (
    EdgeError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    RangeNotSatisfiable,
    StorageError,
    StorageTimeout,
)
from edge.http import effective_type, parse_range
from edge.limits import Lease, ReadSlots
from edge.memo import Memo
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
from edge.storage.base import NO_CONDITIONS, decide, read_whole

log = logging.getLogger("edge")
#: Longer raw paths are validated every time, never remembered.
PATH_MEMO_KEY_BYTES = 1024
#: Seconds a client may leave a chunk untaken before its download lets go of storage and
#: of its read slot until the client reads again (see ImageHandler._stream). A client
#: faster than 64 KiB a second never pauses; a slower one costs a ranged read per pause.
STALL_SECONDS = 1.0


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
        self.cache = (
            HotCache(
                max_bytes=settings.cache_max_bytes,
                max_object_bytes=settings.cache_max_object_bytes,
                ttl=settings.cache_ttl,
            )
            if settings.cache_ttl > 0
            else None
        )
        self._paths: Memo[bytes, str] = Memo()  # raw path -> validated path (see _validate)
        self._private_cache: Memo[int, Header] = Memo()  # seconds left -> Cache-Control
        self._answers: dict[type[Exception], tuple[int, list[Header], bytes, str]] = {}
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
            raw = scope.get("raw_path") or scope["path"].encode()
            path = self._paths.get(raw)
            if path is None:
                path = self._validate(raw)
            grant = self.verifier.verify(path, scope["query_string"])
            conditions = _conditions(scope["headers"])
            if conditions is NO_CONDITIONS and not head and self.cache is not None:
                # The common case, a plain GET of a cached whole object, in one step.
                key = ("public/" if grant is None else "private/") + path[3:]
                entry = self.cache.get(key)
                if entry is not None and entry.headers is not None and entry.stat is not None:
                    exchange.cache, exchange.status = "hit", 200
                    if grant is None:
                        exchange.outcome, control = "public", self._public_cache
                    else:
                        exchange.outcome = "private"
                        control = self._private_cache_control(grant[1])
                    headers = [control, *entry.headers]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": entry.data})
                    exchange.sent = len(entry.data)
                    return
                if entry is not None and entry.stat is None and grant is None:
                    exchange.cache = "hit"
                    raise NotFound("cached: not found")
            if self.cache is not None:  # hits need no storage, so no read slot either
                hit = self._from_cache(path[3:], grant, conditions, head, exchange)
                if hit is not None:
                    reply, private, entry = hit
                    await self._answer(
                        reply, private, grant, path, head, receive, send, exchange, entry
                    )
                    return
            lease = Lease(self.slots)
            await lease.take()
        except Exception as error:
            await self._fail(send, error, head, scope.get("path", ""), exchange)
            return
        try:
            await self._serve(path, grant, conditions, head, receive, send, exchange, lease)
        finally:
            lease.give_back()

    def _validate(self, raw: bytes) -> str:
        """Decode and check a raw path (raising if it breaks the rules), kept for the next
        request of it: paths repeat, and the rules cost as much as the rest of a hit."""
        path = request_path(raw)
        if len(raw) <= PATH_MEMO_KEY_BYTES:  # bounded in bytes too, not only in entries
            self._paths.remember(raw, path, sys.getsizeof(raw) + sys.getsizeof(path))
        return path

    async def _serve(
        self,
        path: str,
        grant: Grant | None,
        conditions: Conditions,
        head: bool,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        lease: Lease,
    ) -> None:
        """Read storage and answer, holding a read slot (given back by the caller)."""
        try:
            reply, private = await self._read(path[3:], grant, conditions, head, exchange)
        except Exception as error:
            await self._fail(send, error, head, path, exchange)
            return
        await self._answer(reply, private, grant, path, head, receive, send, exchange, lease=lease)

    async def _answer(
        self,
        reply: Reply,
        private: bool,
        grant: Grant | None,
        path: str,
        head: bool,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        entry: Entry | None = None,
        lease: Lease | None = None,
    ) -> None:
        if entry is not None and reply.status == 200:  # a cached whole object: headers once
            cached = entry.headers
            if cached is None:
                cached = entry.headers = self._headers(reply, private, grant, path)[1:]
            headers = [self.cache_control(private=private, grant=grant), *cached]
        else:
            headers = self._headers(reply, private, grant, path)
        exchange.status = reply.status
        exchange.outcome = "private" if private else "public"
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        except BaseException:  # cancelled, or the server refused: the body must still let go
            if reply.body is not None:
                await reply.body.aclose()
            raise
        if reply.body is None:
            body = b"" if head or reply.data is None else reply.data
            await send({"type": "http.response.body", "body": body})
            exchange.sent = len(body)
        else:
            key = ("private/" if private else "public/") + path[3:]
            assert lease is not None, "a streamed body comes from storage, under a lease"
            await self._stream(reply, key, lease, receive, send, exchange)

    def _from_cache(
        self, rest: str, grant: Grant | None, conditions: Conditions, head: bool, exchange: Exchange
    ) -> tuple[Reply, bool, Entry] | None:
        """An answer from memory alone, or None when storage must be asked."""
        assert self.cache is not None
        if grant is not None:
            entry = self.cache.get("private/" + rest)
            if entry is None:
                return None
            if entry.stat is not None:
                exchange.cache = "hit"
                return _from_entry(entry, conditions, head), True, entry
        entry = self.cache.get("public/" + rest)
        if entry is None:
            return None
        exchange.cache = "hit"
        if entry.stat is None:
            raise NotFound("cached: not found")
        return _from_entry(entry, conditions, head), False, entry

    async def _read(
        self, rest: str, grant: Grant | None, conditions: Conditions, head: bool, exchange: Exchange
    ) -> tuple[Reply, bool]:
        if grant is not None:
            try:
                return await self._load("private/" + rest, conditions, head, exchange), True
            except NotFound:
                pass
        return await self._load("public/" + rest, conditions, head, exchange), False

    async def _load(
        self, key: str, conditions: Conditions, head: bool, exchange: Exchange
    ) -> Reply:
        """Read storage; plain GETs fill the cache, concurrent ones with a single read."""
        cache = self.cache
        if cache is None or head or conditions != NO_CONDITIONS:
            exchange.cache = "bypass" if cache is None else "miss"
            return await self._timed_read(key, conditions, head)
        exchange.cache = "miss"
        own: list[Reply] = []

        async def load() -> Entry | None:
            try:
                reply = await self._timed_read(key, NO_CONDITIONS, False)
            except NotFound:
                return cache.put(key, None)
            if reply.stat.size > cache.max_object_bytes or reply.status != 200:
                own.append(reply)  # streams to the leader only
                return None
            if reply.body is not None:
                data = await read_whole(reply.body)
            else:
                data = reply.data or b""
            own.append(Reply(200, reply.stat, reply.start, reply.end, None, data))
            return cache.put(key, reply.stat, data)

        entry, led = await cache.shared(key, load)
        if own:
            return own[0]
        if entry is None:  # the leader could not keep it: read for ourselves
            return await self._timed_read(key, conditions, head)
        if entry.stat is None:
            raise NotFound("not found (single flight)")
        if not led:
            exchange.cache = "shared"
        return _from_entry(entry, conditions, head)

    async def _timed_read(self, key: str, conditions: Conditions, head: bool) -> Reply:
        """A storage read, timed; a failure is counted and logged with what storage said
        (the client only gets the error's code)."""
        started = time.perf_counter()
        try:
            return await self.storage.read(key, conditions, head=head)
        except (StorageError, StorageTimeout) as error:
            log.warning("storage read of %s failed: %s", key[:300], error.reason)
            if self.metrics is not None:
                self.metrics.storage_errors.labels(self.storage.kind, error.code).inc()
            raise
        finally:
            if self.metrics is not None:
                operation = "head" if head else "get"
                self.metrics.storage_latency.labels(self.storage.kind, operation).observe(
                    time.perf_counter() - started
                )

    def cache_control(self, *, private: bool, grant: Grant | None) -> Header:
        """Public: the configured max-age. Private: never past exp, nor past the cap."""
        if private and grant is not None:
            return self._private_cache_control(grant[1])
        return self._public_cache

    def _private_cache_control(self, expires: int) -> Header:
        """``private, max-age=`` the seconds left before ``expires``, capped; each value's
        header is built once and kept."""
        left = expires - int(self.clock())
        if left > self.private_max_age:
            left = self.private_max_age
        elif left < 0:
            left = 0
        header = self._private_cache.get(left)
        if header is None:  # bounded too, for a max age above an hour
            header = (b"cache-control", b"private, max-age=%d" % left)
            self._private_cache.remember(left, header, 120)
        return header

    def _headers(self, reply: Reply, private: bool, grant: Grant | None, path: str) -> list[Header]:
        stat = reply.stat
        cache = self.cache_control(private=private, grant=grant)
        # Cache-Control first: a cached entry keeps the rest (see _answer).
        headers = [cache, (b"etag", stat.etag.encode("latin-1")), *self._common]
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

    async def _stream(
        self,
        reply: Reply,
        key: str,
        lease: Lease,
        receive: Receive,
        send: Send,
        exchange: Exchange,
    ) -> None:
        """Send a large body chunk by chunk, reading storage only as fast as the client takes it.

        A client that has not taken a chunk after :data:`STALL_SECONDS` is not reading:
        the download lets go of storage (its connection or file) and gives its read
        slot back while it waits, up to ``EDGE_SEND_TIMEOUT``, for the client to take
        that chunk; then it takes a slot again and reads on from where it was, with
        the object's ETag as a condition. So a slot bounds storage work, and clients
        that never read cannot hold every slot. (uvicorn's ``send`` waits for the
        client before it writes anything, so a send given up has written nothing.)

        Returning without completing the response makes the server close the
        connection: a client always sees a short body as an error, never as a
        clean end.
        """
        assert reply.body is not None
        body: Body | None = reply.body
        chunks = aiter(reply.body)
        position = reply.start  # the next byte to send
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while position <= reply.end:
                if body is None:  # read on, from where the client is
                    await lease.take()
                    body = await self.storage.resume(key, reply.stat, position, reply.end)
                    chunks = aiter(body)
                    if self.metrics is not None:
                        self.metrics.stats.resumed += 1
                chunk = await anext(chunks)
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                try:
                    async with asyncio.timeout(STALL_SECONDS):
                        await send(message)
                except TimeoutError:  # the client is not reading: let go meanwhile
                    await body.aclose()
                    body = None
                    lease.give_back()
                    async with asyncio.timeout(self.send_timeout):
                        await send(message)
                position += len(chunk)
                exchange.sent += len(chunk)
                if gone.done():
                    return  # the client went away: stop reading storage
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            exchange.outcome = "client_too_slow"
            log.warning("client took over %ss for one chunk: disconnected", self.send_timeout)
        except StopAsyncIteration:
            exchange.outcome = "storage_aborted"
            log.warning("storage body of %s ended early, connection aborted", key[:300])
        except Overloaded:
            exchange.outcome = "overloaded"
            log.warning("no read slot to resume a paused download: connection aborted")
        except EdgeError as error:
            exchange.outcome = "storage_aborted"
            log.warning("storage failed mid-body, connection aborted: %s", error.reason)
        finally:
            gone.cancel()
            if body is not None:
                await body.aclose()

    async def _fail(
        self, send: Send, error: Exception, head: bool, path: str, exchange: Exchange
    ) -> None:
        answer = self._answers.get(type(error))
        if answer is None:
            if not isinstance(error, EdgeError):
                # A bug: logged with its traceback, answered without it.
                log.error("unexpected error serving %s", path[:200], exc_info=error)
                error = EdgeError("unexpected error")
            answer = self._error_answer(error)
        status, headers, body, exchange.outcome = answer
        exchange.status = status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        exchange.sent = 0 if head else len(body)

    def _error_answer(self, error: EdgeError) -> tuple[int, list[Header], bytes, str]:
        """Status, headers, body and outcome of an error; kept per kind when they depend on
        the kind alone (rejections are frequent, and each kind's answer never changes)."""
        status, headers, body = error_response(error, cors=self.cors)
        answer = (
            status,
            headers,
            body,
            "error" if type(error) is EdgeError else error.code.lower(),
        )
        if not isinstance(error, RangeNotSatisfiable | Overloaded):
            self._answers[type(error)] = answer
        return answer


def _from_entry(entry: Entry, conditions: Conditions, head: bool) -> Reply:
    """Answer a request from a cached object: the same decisions storage would make."""
    assert entry.stat is not None
    status, start, end = decide(entry.stat, conditions)
    if head or status == 304:
        return Reply(status, entry.stat, start, end, None)
    whole = start == 0 and end == entry.stat.size - 1
    return Reply(
        status, entry.stat, start, end, None, entry.data if whole else entry.data[start : end + 1]
    )


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_SHAPING = frozenset((b"range", b"if-none-match", b"if-modified-since", b"if-range"))


def _conditions(headers: list[tuple[bytes, bytes]]) -> Conditions:
    """The headers that shape a read, in one pass over the request's headers."""
    for name, _ in headers:
        if name in _SHAPING:
            break
    else:
        return NO_CONDITIONS  # most requests: no object to build
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

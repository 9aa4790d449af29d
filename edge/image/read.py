"""Read: the object a request may see, from the hot cache or from storage.

Who may see what is the signature's verdict (:mod:`edge.signing`): an
unsigned request reads ``public/`` only; a valid signature reads ``private/``
first and falls back to ``public/``. The hot cache answers without storage and
without a read slot; a miss takes a read slot (:mod:`edge.limits`) and reads
storage, plain GETs filling the cache, concurrent ones sharing one read.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from edge.cache import Entry, HotCache
from edge.errors import NotFound, StorageError, StorageTimeout, UnprocessableImage
from edge.image.request import ImageRequest
from edge.limits import Lease, ReadSlots
from edge.metrics import Metrics
from edge.record import Record
from edge.signing import Grant
from edge.storage import Conditions, Reply, Stat, Storage
from edge.storage.base import NO_CONDITIONS, decide, read_whole, read_within

log = logging.getLogger("edge")


class Found:
    """What the read step found: the answer's status and bytes, and where they came from."""

    __slots__ = ("entry", "key", "lease", "private", "reply")

    def __init__(
        self,
        reply: Reply,
        key: str,
        private: bool,
        entry: Entry | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.reply = reply
        self.key = key  # the storage key: "public/..." or "private/..."
        self.private = private
        self.entry = entry  # the cache entry it came from, if it did
        self.lease = lease  # the read slot its body streams under, if it streams


class Reader:
    """Reads what a request may see; raises NotFound when there is nothing."""

    def __init__(
        self,
        *,
        storage: Storage,
        cache: HotCache | None,
        slots: ReadSlots,
        metrics: Metrics | None = None,
    ) -> None:
        self.storage = storage
        self.cache = cache
        self.slots = slots
        self.metrics = metrics

    def cached(self, request: ImageRequest, grant: Grant | None, record: Record) -> Found | None:
        """An answer from memory alone, or None when storage must be asked: a hit needs no
        storage, so no read slot either (and no coroutine: most requests end here)."""
        cache = self.cache
        if cache is None:
            return None
        rest = request.path[3:]  # "{user}/{file}"
        if grant is not None:
            key = "private/" + rest
            entry = cache.get(key)
            if entry is None:
                return None
            if entry.stat is not None:
                record.cache = "hit"
                return hit(entry, key, True, request)
        key = "public/" + rest
        entry = cache.get(key)
        if entry is None:
            return None
        record.cache = "hit"
        if entry.stat is None:
            raise NotFound("cached: not found")
        return hit(entry, key, False, request)

    async def stored(self, request: ImageRequest, grant: Grant | None, record: Record) -> Found:
        """An answer from storage, under a read slot its body streams under."""
        rest = request.path[3:]
        started = time.perf_counter()
        lease = Lease(self.slots)
        await lease.take()
        try:
            if grant is not None:
                key = "private/" + rest
                try:
                    reply = await self._load(key, request, record)
                    return Found(reply, key, True, lease=lease)
                except NotFound:
                    pass
            key = "public/" + rest
            reply = await self._load(key, request, record)
            return Found(reply, key, False, lease=lease)
        except BaseException:
            lease.give_back()
            raise
        finally:
            if record.timing is not None:  # EDGE_SERVER_TIMING
                record.timing.storage += time.perf_counter() - started

    async def whole(self, key: str, record: Record, max_bytes: int) -> tuple[Stat, bytes]:
        """The whole object at ``key``, for a transform or a preset: from the cache, else from
        storage under a read slot (kept in the cache as a plain GET would be). NotFound if
        absent; UnprocessableImage, before its bytes are read, if over ``max_bytes``."""
        entry = self._entry(key)
        if entry is not None:
            assert entry.stat is not None
            _check_size(key, entry.stat.size, max_bytes)
            return entry.stat, entry.data
        started = time.perf_counter()
        try:
            async with self._slot():
                reply = await self._load(key, WHOLE, record)
                try:
                    _check_size(key, reply.stat.size, max_bytes)
                    if reply.body is None:
                        data = reply.data
                    elif (data := await read_within(reply.body, max_bytes)) is None:
                        _check_size(key, max_bytes + 1, max_bytes)  # a size told by reading
                finally:
                    if reply.body is not None:
                        await reply.body.aclose()
        finally:
            if record.timing is not None:  # EDGE_SERVER_TIMING
                record.timing.storage += time.perf_counter() - started
        data = data or b""
        if reply.stat.size < 0:  # sent chunked: its size is now known
            return replace(reply.stat, size=len(data)), data
        return reply.stat, data

    async def stat(self, key: str) -> Stat:
        """What storage knows of ``key`` (size, validators): from the cache, else one HEAD
        under a read slot. NotFound if absent."""
        entry = self._entry(key)
        if entry is not None:
            assert entry.stat is not None
            return entry.stat
        async with self._slot():
            return (await self._timed_read(key, NO_CONDITIONS, True)).stat

    async def siblings(self, key: str) -> list[str]:
        """Keys in ``key``'s folder with its name and another image extension, preferred
        first (:meth:`edge.storage.Storage.siblings`): one listing, under a read slot."""
        async with self._slot():
            started = time.perf_counter()
            try:
                return await self.storage.siblings(key)
            except (StorageError, StorageTimeout) as error:
                self._failed(key, error)
                raise
            finally:
                if self.metrics is not None:
                    self.metrics.storage_latency.labels(self.storage.kind, "list").observe(
                        time.perf_counter() - started
                    )

    def _entry(self, key: str) -> Entry | None:
        """The cache's entry of a found object, None when storage must be asked; NotFound for
        a cached "not found"."""
        entry = self.cache.get(key) if self.cache is not None else None
        if entry is not None and entry.stat is None:
            raise NotFound("cached: not found")
        return entry

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A read slot held for the block (the whole-object reads: nothing streams on)."""
        lease = Lease(self.slots)
        await lease.take()
        try:
            yield
        finally:
            lease.give_back()

    async def _load(self, key: str, request: ImageRequest, record: Record) -> Reply:
        """Read storage; plain GETs fill the cache, concurrent ones with a single read."""
        cache = self.cache
        if cache is None or not request.plain:
            record.cache = "bypass" if cache is None else "miss"
            return await self._timed_read(key, request.conditions, request.head)
        record.cache = "miss"
        uncached: Reply | None = None

        async def load() -> Entry | None:
            nonlocal uncached
            try:
                reply = await self._timed_read(key, NO_CONDITIONS, False)
            except NotFound:
                return cache.put(key, None)
            size = reply.stat.size  # unknown (chunked, longer than a chunk): never cached
            if size > cache.max_object_bytes or size < 0 or reply.status != 200:
                uncached = reply  # streams to the leader only
                return None
            data = await read_whole(reply.body) if reply.body is not None else reply.data or b""
            entry = cache.put(key, reply.stat, data)
            if entry is None:  # the cache's budget is too small for it
                uncached = Reply(200, reply.stat, reply.start, reply.end, None, data)
            return entry

        entry, led = await cache.shared(key, load)
        if uncached is not None:
            return uncached
        if entry is None:  # the leader could not keep it: read for ourselves
            return await self._timed_read(key, request.conditions, request.head)
        if entry.stat is None:
            raise NotFound("not found (single flight)")
        if not led:
            record.cache = "shared"
        return answer_from(entry, request)

    async def _timed_read(self, key: str, conditions: Conditions, head: bool) -> Reply:
        """A storage read, timed; a failure is counted and logged with what storage said
        (the client only gets the error's code)."""
        started = time.perf_counter()
        try:
            return await self.storage.read(key, conditions, head=head)
        except (StorageError, StorageTimeout) as error:
            self._failed(key, error)
            raise
        finally:
            if self.metrics is not None:
                operation = "head" if head else "get"
                self.metrics.storage_latency.labels(self.storage.kind, operation).observe(
                    time.perf_counter() - started
                )

    def _failed(self, key: str, error: StorageError | StorageTimeout) -> None:
        """A failure is counted and logged with what storage said (the client only gets
        the error's code)."""
        log.warning("storage read of %s failed: %s", key[:300], error.reason)
        if self.metrics is not None:
            self.metrics.storage_errors.labels(self.storage.kind, error.code).inc()


#: What a whole-object read asks: a plain GET (the cache keeps it, concurrent ones share it).
WHOLE = ImageRequest("", b"", False, NO_CONDITIONS)


def _check_size(key: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise UnprocessableImage(
            f"{key[:300]} is {size} bytes, over the {max_bytes} read whole",
            slug="source_too_large",
        )


def hit(entry: Entry, key: str, private: bool, request: ImageRequest) -> Found:
    """What a cached object answers: a plain GET's answer is built once per entry."""
    if not request.plain:
        return Found(answer_from(entry, request), key, private, entry)
    found: Found | None = entry.found
    if found is None:
        assert entry.whole is not None
        found = entry.found = Found(entry.whole, key, private, entry)
    return found


def answer_from(entry: Entry, request: ImageRequest) -> Reply:
    """The answer a cached object gives: the same decisions storage would make (a plain GET's,
    the whole object, is built once, at put)."""
    if entry.whole is not None and request.plain:
        return entry.whole
    stat = entry.stat
    assert stat is not None
    status, start, end = decide(stat, request.conditions)
    if request.head or status == 304:
        return Reply(status, stat, start, end, None)
    whole = start == 0 and end == stat.size - 1
    return Reply(
        status, stat, start, end, None, entry.data if whole else entry.data[start : end + 1]
    )

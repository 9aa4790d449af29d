"""A hot-object cache: small objects kept in memory for a short TTL.

Bounded by bytes (LRU eviction), for objects up to a size limit, and keyed by
the full storage key (``public/...`` or ``private/...``): an unsigned request
only ever looks up ``public/`` keys, so a cached private object can never
reach it. "Not found" is cached too, which absorbs floods of 404s.

Staleness: an object replaced or deleted in storage may be served as it was
for up to the TTL; the signature is always checked first, so an expired or
revoked URL is refused at once whatever the cache holds.

Concurrent misses for one key share a single storage read (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.storage.base import Stat

#: The bytes an entry costs beyond its body (the key, the Stat, bookkeeping).
ENTRY_OVERHEAD = 256


@dataclass(slots=True)
class Entry:
    stat: Stat | None  # None: the key was not found
    data: bytes
    expires: float
    #: Response headers of a whole-object answer but Cache-Control (which may depend on
    #: the URL's exp), built by the first hit and shared by the next ones.
    headers: list[tuple[bytes, bytes]] | None = None

    @property
    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD


class HotCache:
    def __init__(
        self,
        *,
        max_bytes: int,
        max_object_bytes: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_object_bytes = max_object_bytes
        self.ttl = ttl
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, stat: Stat | None, data: bytes = b"") -> Entry | None:
        """Keep an object (or a "not found"); None if it is too large to keep."""
        if len(data) > self.max_object_bytes:
            return None
        entry = Entry(stat, data, self.clock() + self.ttl)
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return entry

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key).size

    async def shared(
        self, key: str, load: Callable[[], Awaitable[Entry | None]]
    ) -> tuple[Entry | None, bool]:
        """Run ``load`` once for all concurrent callers of ``key``: ``(entry, led)``.

        The leader's ``load`` fills the cache and returns the entry, or None when
        the object cannot be kept (too large, an error): then each follower gets
        None and reads storage itself, and the leader's own result stands.
        """
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), False
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            entry = await load()
        except BaseException:
            flight.set_result(None)
            raise
        else:
            flight.set_result(entry)
        finally:
            del self._flights[key]
        return entry, True

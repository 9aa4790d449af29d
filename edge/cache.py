"""A hot-object cache: small objects kept in memory for a short TTL.

Keyed by the full storage key (``public/...`` or ``private/...``): an unsigned
request only ever looks up ``public/`` keys, so a cached private object can
never reach it. "Not found" is cached too, which absorbs floods of 404s.

Memory is counted in real bytes: every entry is charged its key, its body and a
measured overhead for the rest (the entry, its Stat, the prebuilt response
headers, the dict's slot), so ``max_bytes`` bounds what the process holds, not
just the bodies. "Not found" entries live in their own share of that budget
(:data:`MISSING_SHARE`): a flood of distinct 404s, which anyone can send,
evicts other 404s, never the images being served.

Entries leave in the order they came (first in, first out): with one TTL for
all, the oldest entry is both the next to expire and the first to evict, so
expired entries are swept from the front on every insertion and never pin
memory, with no per-hit bookkeeping. A hot object evicted early is read again
once and cached anew.

Staleness: an object replaced or deleted in storage may be served as it was
for up to the TTL; the signature is always checked first, so an expired or
revoked URL is refused at once whatever the cache holds.

Concurrent misses for one key share a single storage read (single flight).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge.storage.base import Reply, Stat

#: Bytes an entry holds beyond its key and body, measured with tracemalloc
#: (tests/test_cache.py checks it): the Entry, the OrderedDict's slot and link,
#: and for a found object its Stat, its whole-object Reply and the response headers
#: its first hit builds.
MISSING_OVERHEAD = 220
FOUND_OVERHEAD = 900
#: The share of ``max_bytes`` that "not found" entries may hold.
MISSING_SHARE = 8


@dataclass(slots=True)
class Entry:
    stat: Stat | None  # None: the key was not found
    data: bytes
    expires: float
    #: What the entry is charged, in bytes.
    size: int
    #: The answer to a plain GET of the whole object, built once (None for "not found").
    whole: Reply | None = None
    #: Response headers of a whole-object answer but Cache-Control (which may depend on
    #: the URL's exp), built by the first hit and shared by the next ones.
    headers: list[tuple[bytes, bytes]] | None = None
    #: What the read step finds for a plain GET of it (an edge.image.read.Found), built by
    #: the first such hit: 2,400 instructions (1.5%) of every later hit (bench.hotpath).
    found: Any = None


def footprint(key: str, stat: Stat | None, data: bytes) -> int:
    """What an entry for ``key`` really holds, in bytes."""
    size = sys.getsizeof(key) + sys.getsizeof(data)
    if stat is None:
        return size + MISSING_OVERHEAD
    # The ETag is held twice: in the Stat, and as bytes in the prebuilt headers.
    return size + FOUND_OVERHEAD + 2 * len(stat.etag) + len(stat.content_type or "")


class _Shelf:
    """Entries in insertion order under a byte budget."""

    __slots__ = ("budget", "bytes", "entries")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self.entries: OrderedDict[str, Entry] = OrderedDict()

    def add(self, key: str, entry: Entry, now: float) -> None:
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        entries[key] = entry
        self.bytes += entry.size
        while entries:  # expired first, then the oldest while over budget
            first = next(iter(entries.values()))
            if first.expires > now and self.bytes <= self.budget:
                break
            self.bytes -= entries.popitem(last=False)[1].size

    def drop(self, key: str) -> None:
        self.bytes -= self.entries.pop(key).size


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
        self._missing = _Shelf(max_bytes // MISSING_SHARE)
        self._found = _Shelf(max_bytes - self._missing.budget)
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}

    @property
    def held(self) -> int:
        """Memory the cache holds now, in bytes, as charged."""
        return self._found.bytes + self._missing.bytes

    def __len__(self) -> int:
        return len(self._found.entries) + len(self._missing.entries)

    def get(self, key: str) -> Entry | None:
        shelf = self._found
        entry = shelf.entries.get(key)
        if entry is None:
            shelf = self._missing
            entry = shelf.entries.get(key)
            if entry is None:
                return None
        if entry.expires <= self.clock():
            shelf.drop(key)
            return None
        return entry

    def put(
        self, key: str, stat: Stat | None, data: bytes = b"", *, max_object_bytes: int = 0
    ) -> Entry | None:
        """Keep an object (or a "not found"); None if it is too large to keep: over
        ``max_object_bytes`` when given (a variant, costly to make again), else over the
        cache's own object limit."""
        if len(data) > (max_object_bytes or self.max_object_bytes):
            return None
        now = self.clock()
        whole = None if stat is None else Reply(200, stat, 0, stat.size - 1, None, data)
        entry = Entry(stat, data, now + self.ttl, footprint(key, stat, data), whole)
        keep, other = (self._missing, self._found) if stat is None else (self._found, self._missing)
        if key in other.entries:  # found after "not found", or the reverse
            other.drop(key)
        if entry.size > keep.budget:
            return None
        keep.add(key, entry, now)
        return entry

    async def shared(
        self,
        key: str,
        load: Callable[[], Awaitable[Entry | None]],
        *,
        share: tuple[type[BaseException], ...] = (),
    ) -> tuple[Entry | None, bool]:
        """Run ``load`` once for all concurrent callers of ``key``: ``(entry, led)``.

        The leader's ``load`` fills the cache and returns the entry, or None when
        the object cannot be kept (too large, an error): then each follower gets
        None and reads storage itself, and the leader's own result stands. An error
        of a ``share`` type is every follower's too (a transform that cannot be done
        is not tried again by each).
        """
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), False
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            entry = await load()
        except share as error:
            flight.set_exception(error)
            flight.exception()  # retrieved: no "never retrieved" warning without followers
            raise
        except BaseException:
            flight.set_result(None)
            raise
        else:
            flight.set_result(entry)
        finally:
            del self._flights[key]
        return entry, True

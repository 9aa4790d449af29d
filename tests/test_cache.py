"""The hot-object cache: bounded, short-lived, single flight, and never a leak of private bytes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import tracemalloc
from urllib.parse import urlsplit

import httpx

from edge.cache import MISSING_SHARE, Entry, HotCache, footprint
from edge.samples import CANARY, png
from edge.storage.base import Stat
from tests.support.client import TLS, assert_error, get
from tests.support.clock import Clock
from tests.support.world import World

PNG = png(48, 32)
SECRET = png(48, 32, hue=1) + CANARY
STAT = Stat(10, '"e"', 1, None)


def test_bounded_by_bytes_oldest_out_first() -> None:
    one = footprint("a", STAT, b"x" * 100)
    found_budget = 3 * one + 10
    cache = HotCache(
        max_bytes=found_budget * MISSING_SHARE // (MISSING_SHARE - 1) + 1,
        max_object_bytes=150,
        ttl=60,
    )
    for name in "abc":
        cache.put(name, STAT, b"x" * 100)
    cache.get("a")  # a hit does not reorder: entries leave in the order they came
    cache.put("d", STAT, b"x" * 100)
    assert [k for k in "abcd" if cache.get(k)] == ["b", "c", "d"]
    assert cache.held == 3 * one
    assert cache.put("big", STAT, b"x" * 151) is None and cache.get("big") is None


def test_entries_are_charged_what_they_really_hold() -> None:
    """tracemalloc's count of what the cache allocates never exceeds what it charges."""
    for found in (True, False):
        for key_length in (10, 1000):
            cache = HotCache(max_bytes=1 << 40, max_object_bytes=1 << 20, ttl=60)
            keys = [f"public/alice/{'k' * key_length}{n}" for n in range(5_000)]
            bodies = [bytes(200) if found else b"" for _ in keys]
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for number, (key, body) in enumerate(zip(keys, bodies, strict=True)):
                stat = Stat(200, f'"{number:x}-0123456789abcdef"', 1_700_000_000, "image/png")
                entry = cache.put(key, stat if found else None, body)
                assert entry is not None
                if found:  # what the first hit builds (ImageHandler._headers)
                    entry.headers = [
                        (b"etag", stat.etag.encode()),
                        (b"accept-ranges", b"bytes"),
                        (b"x-content-type-options", b"nosniff"),
                        (b"access-control-allow-origin", b"*"),
                        (b"last-modified", b"Tue, 14 Nov 2023 22:13:20 GMT"),
                        (b"content-type", b"image/png"),
                        (b"content-length", str(len(body)).encode()),
                    ]
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            held += sum(map(sys.getsizeof, keys)) + sum(map(sys.getsizeof, bodies))
            assert held <= cache.held <= 1.5 * held, (found, key_length, held, cache.held)


def test_expired_entries_are_swept_when_others_arrive() -> None:
    clock = Clock()
    cache = HotCache(max_bytes=1 << 20, max_object_bytes=1000, ttl=60, clock=clock)
    for number in range(100):
        cache.put(f"public/{number}", STAT, b"x" * 100)
        cache.put(f"public/missing-{number}", None)
    clock.now += 61
    cache.put("public/new", STAT, b"x")
    cache.put("public/missing-new", None)
    assert len(cache) == 2
    assert cache.held == footprint("public/new", STAT, b"x") + footprint(
        "public/missing-new", None, b""
    )


def test_a_flood_of_missing_keys_never_evicts_found_objects() -> None:
    cache = HotCache(max_bytes=256 * 1024, max_object_bytes=1000, ttl=60)
    cache.put("public/alice/photo.png", STAT, b"x" * 1000)
    for number in range(10_000):  # about 12 MB of "not found" keys
        cache.put(f"public/alice/{'n' * 1000}{number}", None)
    assert cache.get("public/alice/photo.png") is not None
    assert cache.held <= 256 * 1024


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = HotCache(max_bytes=10_000, max_object_bytes=1000, ttl=60, clock=clock)
    cache.put("a", STAT, b"data")
    cache.put("gone", None)
    clock.now += 59.9
    assert cache.get("a") is not None and cache.get("gone") is not None
    clock.now += 0.2
    assert cache.get("a") is None and cache.get("gone") is None
    assert cache.held == 0 and len(cache) == 0


def test_single_flight_runs_one_load() -> None:
    cache = HotCache(max_bytes=10_000, max_object_bytes=1000, ttl=60)
    loads = 0

    async def load() -> Entry | None:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return cache.put("k", STAT, b"data")

    async def main() -> list[tuple[Entry | None, bool]]:
        return await asyncio.gather(*(cache.shared("k", load) for _ in range(20)))

    results = asyncio.run(main())
    assert loads == 1
    assert sum(led for _, led in results) == 1
    assert all(entry is not None and entry.data == b"data" for entry, _ in results)


def test_single_flight_failure_lets_followers_read_themselves() -> None:
    cache = HotCache(max_bytes=10_000, max_object_bytes=1000, ttl=60)

    async def failing() -> Entry | None:
        await asyncio.sleep(0.02)
        raise OSError("storage down")

    async def main() -> list[object]:
        return await asyncio.gather(
            *(cache.shared("k", failing) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert sum(isinstance(r, OSError) for r in results) == 1
    assert results.count((None, False)) == 2


def test_hits_are_served_from_memory(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    first, second = get(base + path), get(base + path)
    assert first.content == second.content == PNG
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["last-modified"] == second.headers["last-modified"]
    etag = first.headers["etag"]
    assert get(base + path, if_none_match=etag).status_code == 304
    ranged = get(base + path, range="bytes=2-9")
    assert ranged.status_code == 206 and ranged.content == PNG[2:10]
    assert_error(get(base + path, range="bytes=99999-"), 416, "RANGE_NOT_SATISFIABLE")
    head = httpx.head(base + path, verify=TLS)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(PNG))
    assert world.storage_reads() == [("GET", "public/alice/photo.png")], "one read served all"


def test_cached_private_objects_never_reach_unsigned_requests(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET)
    base = world.serve()
    assert get(base + world.sign(path)).content == SECRET
    assert get(base + world.sign(path)).content == SECRET
    for _ in range(2):
        unsigned = get(base + path)
        assert_error(unsigned, 404, "NOT_FOUND")
        assert CANARY not in unsigned.content
    bad = get(base + world.sign(path).replace("sig=", "sig=A"))
    assert_error(bad, 403, "SIGNATURE_INVALID")
    expired = get(base + world.sign(path, exp=int(time.time()) - 1))
    assert_error(expired, 403, "SIGNATURE_EXPIRED")
    assert world.storage_reads() == [
        ("GET", "private/alice/secret.png"),
        ("GET", "public/alice/secret.png"),
    ]


def test_ttl_bounds_staleness_and_not_found_is_cached(world: World) -> None:
    base = world.serve(EDGE_CACHE_TTL="1")
    assert get(base + "/i/alice/new.png").status_code == 404
    path = world.put("public", "alice", "new.png", PNG)
    assert get(base + path).status_code == 404, "within the TTL the cached 'not found' stands"
    time.sleep(1.2)
    assert get(base + path).content == PNG
    assert len(world.storage_reads()) == 2


def test_large_objects_and_cache_off_always_read_storage(world: World) -> None:
    path = world.put("public", "alice", "big.png", os.urandom(4096))
    base = world.serve(EDGE_CACHE_MAX_OBJECT_BYTES="1KiB")
    for _ in range(2):
        assert get(base + path).status_code == 200
    assert len(world.storage_reads()) == 2
    small = world.put("public", "alice", "small.png", PNG)
    base_off = world.serve(EDGE_CACHE_TTL="0")
    for _ in range(2):
        assert get(base_off + small).status_code == 200
    assert world.storage_reads().count(("GET", "public/alice/small.png")) == 2


def test_concurrent_misses_share_one_storage_read(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    world.slow_storage(0.3)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10, verify=TLS) as client:
            return await asyncio.gather(*(client.get(base + path) for _ in range(20)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 and r.content == PNG for r in responses)
    assert world.storage_reads() == [("GET", "public/alice/photo.png")], (
        "N requests, one storage GET"
    )


def test_cached_hits_are_never_refused_for_overload(world: World) -> None:
    big = world.put("public", "alice", "big.png", os.urandom(8 * 1024 * 1024))
    small = world.put("public", "alice", "small.png", PNG)
    other = world.put("public", "alice", "other.png", PNG)
    base = world.serve(EDGE_MAX_STORAGE_READS="1", EDGE_QUEUE_TIMEOUT="0.2")
    assert get(base + small).status_code == 200  # now cached
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as hog:
        hog.sendall(f"GET {big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        hog.recv(1024)  # the only read slot is held by a download nobody reads
        assert get(base + small).status_code == 200, "a hit needs no slot"
        assert_error(get(base + other), 503, "OVERLOADED")

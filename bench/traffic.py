"""Realistic traffic: many objects, Zipf popularity, public and signed URLs, many clients.

The single-URL scenarios ask for one URL forever, so every memo of the hot path
hits. This is the other view, one request list that both the load harness
(:mod:`bench.realistic`, through wrk) and the in-process profiler
(``bench.hotpath realistic``) replay, made the same way from the same seed:

- :data:`OBJECTS` small PNGs (64x64 noise, about 16.5 KiB, as the single-URL body:
  the hot cache holds them all) under 500 users;
- each request's object drawn from a Zipf law (s = :data:`ZIPF_S`) over them;
- objects public or private so that about 30% of requests are signed, plus a
  deleted 1% (404);
- each private object's signed URL minted once, as a page would (expiring 20 to 60
  minutes ahead: pages rendered over the last 40 minutes with a one-hour TTL), and
  :data:`RESIGNED_PER_WINDOW` popular ones minted anew every :data:`WINDOW` requests
  (a page rendered again); 2% of signed requests carry an expired URL (a tab left
  open) and 1% one signed by a retired key (403: the refusal memo's case);
- each request's client, the address a trusted proxy forwards in
  ``X-Forwarded-For``, drawn from a Zipf law over :data:`CLIENTS` addresses (a few
  NATs and proxies, many single users). No client keeps images in its own cache,
  which real browsers do for a day, so same-client repeats (the access-log memo's
  hits) are more frequent here than in life: a generous test for a memo.
"""

from __future__ import annotations

import random
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from bench.world import World, signer

OBJECTS = 10_000
REQUESTS = 300_000
ZIPF_S = 1.0
CLIENTS = 2_048
SEED = 20261127
USERS = 500
#: Request shares by kind of object (by popularity weight, not by count of objects).
PRIVATE_SHARE, DELETED_SHARE = 0.30, 0.01
#: Of the signed requests: an expired URL, a URL signed by a key no longer in the keyring.
EXPIRED_SHARE, RETIRED_SHARE = 0.02, 0.01
WINDOW, RESIGNED_PER_WINDOW = 1_000, 5
#: A key retired from the keyring: its URLs match no key (test data, not a secret).
RETIRED_KEYRING = "old:hs256:" + "cmV0aXJlZC1iZW5jaC1rZXktbm90LWEtc2VjcmV0LTMy"


@dataclass(frozen=True, slots=True)
class Request:
    target: str  # path and query, as sent
    client: str  # the address X-Forwarded-For names
    status: int  # the answer expected


@dataclass
class Traffic:
    requests: list[Request]
    objects: int
    signed_urls: int  # distinct signed URLs in the list

    def write(self, path: Path) -> Path:
        """One ``target client status`` per line: what replay.lua and bench.hotpath read."""
        path.write_text("".join(f"{r.target} {r.client} {r.status}\n" for r in self.requests))
        return path

    def statuses(self) -> list[int]:
        return [r.status for r in self.requests]

    def summary(self) -> str:
        """The list in one sentence, for reports."""
        count = len(self.requests)
        signed = sum("sig=" in r.target for r in self.requests)
        refused = sum(r.status == 403 for r in self.requests)
        missing = sum(r.status == 404 for r in self.requests)
        return (
            f"{count:,} requests over {self.objects:,} objects (Zipf s={ZIPF_S}, "
            f"{len({r.target.partition('?')[0] for r in self.requests}):,} distinct paths asked), "
            f"{signed / count:.0%} signed ({self.signed_urls:,} distinct signed URLs; "
            f"{refused / count:.1%} of requests expired or from a retired key: 403), "
            f"{missing / count:.1%} deleted (404), "
            f"from {len({r.client for r in self.requests}):,} client addresses (seed {SEED})"
        )


def read(path: Path, limit: int | None = None) -> Iterator[tuple[bytes, bytes, bytes, int]]:
    """(raw path, query, client, status) of the first ``limit`` requests of a written list."""
    with path.open("rb") as file:
        for number, line in enumerate(file):
            if limit is not None and number >= limit:
                return
            target, client, status = line.split()
            raw, _, query = target.partition(b"?")
            yield raw, query, client, int(status)


def png(rng: random.Random, width: int = 64, height: int = 64) -> bytes:
    """A valid RGBA PNG of noise: incompressible, so its size is its pixels'."""
    rows = b"".join(b"\x00" + rng.randbytes(width * 4) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def _kinds(weights: list[float]) -> list[str]:
    """Each object's kind, in popularity order: the kind furthest below its share of the
    requests so far, so the shares hold at every rank, not only on average."""
    shares = {"private": PRIVATE_SHARE, "deleted": DELETED_SHARE}
    shares["public"] = 1 - sum(shares.values())
    given = dict.fromkeys(shares, 0.0)
    total = 0.0
    kinds = []
    for weight in weights:
        total += weight
        kind = max(shares, key=lambda k: shares[k] * total - given[k])
        given[kind] += weight
        kinds.append(kind)
    return kinds


def _addresses(count: int) -> list[str]:
    """Documentation addresses (TEST-NET-1, 2, 3, then 2001:db8::/32): never a real host."""
    found = [f"{net}.{n}" for net in ("192.0.2", "198.51.100", "203.0.113") for n in range(1, 255)]
    found += [f"2001:db8::{n:x}" for n in range(1, count)]
    return found[:count]


def build(world: World, *, objects: int = OBJECTS, requests: int = REQUESTS) -> Traffic:
    """Write the objects into the world's images and make the request list (seeded; only
    the expiry times depend on the clock)."""
    rng = random.Random(SEED)
    now = int(time.time())
    weights = [1 / rank**ZIPF_S for rank in range(1, objects + 1)]
    cumulative = list(accumulate(weights))
    kinds = _kinds(weights)
    names = [f"/i/u{n % USERS:03d}/p{n:05d}.png" for n in range(objects)]
    rng.shuffle(names)  # popularity has nothing to do with names
    for name, kind in zip(names, kinds, strict=True):
        if kind != "deleted":
            target = world.images / ("private" if kind == "private" else "public") / name[3:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png(rng))
    sign, retired = signer(), signer(RETIRED_KEYRING)
    private = [rank for rank, kind in enumerate(kinds) if kind == "private"]
    current = {rank: sign(names[rank], now + 1200 + rng.randrange(2400)) for rank in private}
    expired = {rank: sign(names[rank], now - 60 - rng.randrange(3600)) for rank in private}
    stale = {rank: retired(names[rank], now + 1800) for rank in private}
    private_weights = list(accumulate(weights[rank] for rank in private))
    clients = _addresses(CLIENTS)
    rng.shuffle(clients)
    client_weights = list(accumulate(1 / rank**ZIPF_S for rank in range(1, CLIENTS + 1)))
    ranks = rng.choices(range(objects), cum_weights=cumulative, k=requests)
    who = rng.choices(clients, cum_weights=client_weights, k=requests)
    signed_urls = set(expired.values()) | set(stale.values())
    found = []
    for number, (rank, client) in enumerate(zip(ranks, who, strict=True)):
        if number % WINDOW == 0 and number:  # pages rendered again: their URLs minted anew
            for again in rng.choices(private, cum_weights=private_weights, k=RESIGNED_PER_WINDOW):
                current[again] = sign(names[again], now + 3600 + number // WINDOW)
        kind = kinds[rank]
        if kind != "private":
            found.append(Request(names[rank], client, 404 if kind == "deleted" else 200))
            continue
        draw = rng.random()
        if draw < EXPIRED_SHARE:
            found.append(Request(expired[rank], client, 403))
        elif draw < EXPIRED_SHARE + RETIRED_SHARE:
            found.append(Request(stale[rank], client, 403))
        else:
            found.append(Request(current[rank], client, 200))
            signed_urls.add(current[rank])
    used = {r.target for r in found}
    return Traffic(found, objects=objects, signed_urls=len(signed_urls & used))

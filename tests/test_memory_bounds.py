"""Memory a stranger can make the edge hold, flooded on a real process and counted in RSS:
distinct 404s with long paths, distinct signed URLs, distinct padded queries. Growth must
stay within what the settings and the memos' documented bounds allow.

Each flood is sized to overrun the bound by itself, about twice, if the memos were
unbounded (Memo.remember never emptying), measured: RSS grew about 6,600 bytes a 404,
1,700 a refused signature, 1,600 a padded query and 3,300 a variant, 62 to 66 MiB a
flood against a bound of 30 MiB (bounded, 14 MiB for all four). A 404 and a variant cost
a folder lookup, the others none: theirs are the shorter floods."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.keys import parse_keyring
from edge.memo import MEMO_BYTES
from edge.samples import png
from edge.signing import sign_url
from tests.support.artifacts import write_artifact
from tests.support.processes import EDGE, clean_env, stop, wait_ready
from tests.support.servers import free_port
from tests.support.world import KEYS

CACHE_BYTES = 8 * 1024 * 1024
#: Memos on the request path, each at most MEMO_BYTES: validated paths, genuine and
#: refused signatures, unsigned queries, parsed transforms, variant keys per request and
#: per transform, access-log kinds, private Cache-Control values.
MEMOS = 9
#: What Python's allocator may keep on top (arenas not returned, fragmentation).
ALLOWANCE = 4 * 1024 * 1024
#: Requests per flood: 404s, refused signatures, padded queries, variants.
FLOODS = (10_000, 40_000, 40_000, 20_000)
SEGMENTS = "/".join(["x" * 240] * 4)  # a segment is at most 255 bytes


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def pipelined(port: int, targets: Iterator[str], count: int, *, batch: int = 250) -> None:
    """Send ``count`` GETs over one kept-alive connection, ``batch`` at a time."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sent = 0
        while sent < count:
            size = min(batch, count - sent)
            sock.sendall(
                b"".join(
                    b"GET %s HTTP/1.1\r\nhost: edge\r\n\r\n" % next(targets).encode()
                    for _ in range(size)
                )
            )
            seen = received = 0
            tail = b""
            while seen < size:
                chunk = sock.recv(1 << 20)
                assert chunk, "the edge closed the connection"
                received += len(chunk)
                seen += (tail + chunk).count(b"HTTP/1.1 ") - tail.count(b"HTTP/1.1 ")
                tail = chunk[-16:]
            sent += size


@pytest.mark.slow
def test_floods_of_distinct_requests_stay_within_the_bounds(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private" / "alice").mkdir(parents=True)
    (root / "private" / "alice" / "secret.png").write_bytes(png(8, 8))
    port = free_port()
    env = clean_env(
        EDGE_STORAGE=str(root),
        EDGE_SIGNING_KEYS=KEYS,
        EDGE_CACHE_MAX_BYTES=str(CACHE_BYTES),
    )
    with (tmp_path / "access.log").open("wb") as log:
        process = subprocess.Popen(
            [*EDGE, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        key = parse_keyring(KEYS).signing_key
        assert key is not None
        exp = int(time.time()) + 3600
        secret = sign_url("/i/alice/secret.png", key=key, exp=exp)
        floods = {
            "distinct 404s, 1,000-byte paths": (
                f"/i/alice/{n:06d}/{SEGMENTS}.png" for n in range(FLOODS[0])
            ),
            "distinct refused signatures": (
                f"/i/alice/{n:06d}{'y' * 240}.png?sig={'A' * 43}&exp={exp}"
                for n in range(FLOODS[1])
            ),
            "distinct padded queries of a genuine URL": (
                f"{secret}&pad={n:06d}{'z' * 400}" for n in range(FLOODS[2])
            ),
            # each a variant's keys remembered, its missing source cached as not found
            "distinct variants of missing sources": (
                f"/i/alice/{n:06d}{'v' * 240}.png?w={n % 4000 + 1}&x={'x' * 400}"
                for n in range(FLOODS[3])
            ),
        }
        pipelined(port, iter([secret] * 500), 500)  # warm: code paths, allocator, caches
        start = rss_bytes(process.pid)
        requests = dict(zip(floods, FLOODS, strict=True))
        figures: dict[str, object] = {"requests": requests, "cache_bytes": CACHE_BYTES}
        bound = CACHE_BYTES + MEMOS * MEMO_BYTES + ALLOWANCE
        for name, targets in floods.items():
            pipelined(port, targets, requests[name])
            growth = rss_bytes(process.pid) - start
            figures[name] = growth
            assert growth <= bound, f"{name}: RSS grew {growth >> 20} MiB, bound {bound >> 20}"
        write_artifact("bounds-memory", {**figures, "bound": bound})
    finally:
        stop(process)

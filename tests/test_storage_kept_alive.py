"""One storage connection, many answers: against s3rver, which keeps connections alive as
S3 does, every answer a request gets is its own.

Each signed request for a private object (conditional, ranged, HEAD, refused) is followed
by an unsigned request for a public object of the same size, on a pool of ONE storage
connection: any byte of a private answer left on that connection would be read as the
public answer. Private objects carry the canary throughout, so no slice of one goes unseen.

s3rver's own deviations from S3 are avoided, not relied on: its 304 carries no ETag or
Last-Modified, it ignores If-Match, and it answers ``bytes=0-0`` with the whole object and
``bytes=-5`` with the first six bytes (edge works around each: tests/support/part_faults.py,
and the serving behaviour suite on s3rver).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import pytest

from edge.app import Edge
from edge.keys import parse_keyring
from edge.samples import CANARY
from edge.settings import Settings
from edge.signing import sign_url
from tests.support.client import TLS
from tests.support.servers import BUCKET, S3RVER_KEY, S3rver, run_uvicorn, s3_client
from tests.support.world import KEYS

#: Sizes that take each body path: read whole (up to 64 KiB), and streamed yet small
#: enough to arrive whole before edge reads it (under the wire's 256 KiB high-water mark).
SIZES = (3_000, 150 * 1024)
#: With the hot cache on, objects above its per-object limit still take storage's paths.
CACHE_OBJECT_LIMIT = 8 * 1024
CACHED_SIZES = (20 * 1024, 150 * 1024)
DAY = 86_400
#: Kernel buffers on both ends of a client connection that stops reading: small, so edge
#: waits on that client after a chunk or two instead of writing a whole body into them.
CLIENT_SEND_BUFFER = 16 * 1024
_prefixes = itertools.count()


def secret(size: int) -> bytes:
    """A private object with the canary every hundred bytes or so: any slice of it shows."""
    unit = CANARY + os.urandom(100)
    return (unit * (size // len(unit) + 1))[:size]


def public(size: int) -> bytes:
    data = os.urandom(size)
    assert CANARY not in data
    return data


@dataclass
class Bucket:
    """A prefix of its own in s3rver's bucket, and edges serving it."""

    server: S3rver
    prefix: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def put(self, visibility: str, file: str, data: bytes) -> str:
        client = s3_client(self.server.endpoint_url, S3RVER_KEY)
        client.put_object(Bucket=BUCKET, Key=f"{self.prefix}{visibility}/alice/{file}", Body=data)
        return f"/i/alice/{file}"

    def serve(self, *, send_buffer: int = 0, **overrides: str) -> str:
        """A real uvicorn serving an edge on ONE storage connection, hot cache off."""
        settings = Settings.from_env(
            {
                "EDGE_SIGNING_KEYS": KEYS,
                "EDGE_ACCESS_LOG": "off",
                "EDGE_STORAGE": f"s3://{BUCKET}/{self.prefix}",
                "EDGE_S3_ENDPOINT_URL": self.server.endpoint_url,
                "EDGE_S3_REGION": "us-east-1",
                "EDGE_S3_MAX_CONNECTIONS": "1",
                "EDGE_CACHE_TTL": "0",
                **overrides,
            }
        )
        return self.stack.enter_context(run_uvicorn(Edge(settings), send_buffer=send_buffer))


@pytest.fixture
def bucket(s3rver_server: S3rver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3RVER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3RVER_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    made = Bucket(s3rver_server, f"k{next(_prefixes)}/")
    with made.stack:
        yield made


def signed(path: str) -> str:
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    return sign_url(path, key=key, exp=int(time.time()) + 600)


@dataclass(frozen=True)
class Case:
    """A signed request and what it must get: a status and exactly these bytes."""

    name: str
    method: str
    headers: dict[str, str]
    status: int
    body: bytes


def cases(private: bytes, etag: str, modified: str) -> list[Case]:
    """Every path of S3Storage's reply, for one private object."""
    when = int(parsedate_to_datetime(modified).timestamp())
    before = formatdate(when - DAY, usegmt=True)
    size = len(private)
    ranged = {"range": "bytes=10-99"}  # s3rver gets bytes=0-0 and suffix ranges wrong
    return [
        Case("plain", "GET", {}, 200, private),
        Case("If-None-Match list", "GET", {"if-none-match": f'"other", {etag}'}, 304, b""),
        Case("If-None-Match any", "GET", {"if-none-match": "*"}, 304, b""),
        Case("If-None-Match matching", "GET", {"if-none-match": etag}, 304, b""),
        Case("If-None-Match other", "GET", {"if-none-match": '"other"'}, 200, private),
        Case("If-Modified-Since now", "GET", {"if-modified-since": modified}, 304, b""),
        Case("If-Modified-Since before", "GET", {"if-modified-since": before}, 200, private),
        Case("Range", "GET", ranged, 206, private[10:100]),
        Case("Range open", "GET", {"range": "bytes=100-"}, 206, private[100:]),
        Case("If-Range fails", "GET", {**ranged, "if-range": '"other"'}, 200, private),
        Case("If-Range holds", "GET", {**ranged, "if-range": etag}, 206, private[10:100]),
        Case("If-Range date holds", "GET", {**ranged, "if-range": modified}, 206, private[10:100]),
        Case("If-Range date fails", "GET", {**ranged, "if-range": before}, 200, private),
        Case("If-Range list", "GET", {**ranged, "if-range": f'"other", {etag}'}, 200, private),
        Case("If-Range weak", "GET", {**ranged, "if-range": f"W/{etag}"}, 200, private),
        Case("HEAD", "HEAD", {}, 200, b""),
        Case("HEAD If-None-Match list", "HEAD", {"if-none-match": f'"x", {etag}'}, 304, b""),
        Case("416", "GET", {"range": f"bytes={size + 10}-"}, 416, b""),
    ]


def interleave(bucket: Bucket, base: str, sizes: tuple[int, ...]) -> None:
    """Signed requests of every kind, each followed by an unsigned one of the same size."""
    objects = []
    for size in sizes:
        private, open_ = secret(size), public(size)
        objects.append(
            (
                bucket.put("private", f"secret-{size}.png", private),
                private,
                bucket.put("public", f"open-{size}.png", open_),
                open_,
            )
        )
    with httpx.Client(timeout=30, verify=TLS) as client:
        for secret_path, private, public_path, open_ in objects:
            first = client.get(base + signed(secret_path))
            assert first.status_code == 200 and first.content == private
            etag, modified = first.headers["etag"], first.headers["last-modified"]
            missing = Case("404", "GET", {}, 404, b"")
            for case in [*cases(private, etag, modified), missing] * 2:
                url = base + signed(secret_path if case is not missing else "/i/alice/none.png")
                response = client.request(case.method, url, headers=case.headers)
                assert response.status_code == case.status, case.name
                if case.status < 300 or case.status == 304:
                    assert response.content == case.body, case.name
                if case.method == "HEAD" and case.status == 200:
                    assert response.headers["content-length"] == str(len(private))
                after = client.get(base + public_path)
                assert CANARY not in after.content, f"a private answer leaked after {case.name}"
                assert after.status_code == 200 and after.content == open_, case.name


def test_every_answer_on_one_kept_alive_connection_is_its_own(bucket: Bucket) -> None:
    interleave(bucket, bucket.serve(), SIZES)


def test_every_answer_is_its_own_with_the_cache_on_for_objects_it_does_not_keep(
    bucket: Bucket,
) -> None:
    base = bucket.serve(EDGE_CACHE_TTL="60", EDGE_CACHE_MAX_OBJECT_BYTES=str(CACHE_OBJECT_LIMIT))
    interleave(bucket, base, CACHED_SIZES)


@pytest.mark.parametrize("size", [400 * 1024, 3 * 1024 * 1024], ids=["400KiB", "3MiB"])
def test_a_client_gone_mid_body_leaves_nothing_for_the_next_request(
    bucket: Bucket, size: int
) -> None:
    """A client stops reading a private image after its first bytes, so edge waits on it
    with the rest of the body from storage in hand (400 KiB: all of it, the rest under the wire's
    high-water mark) or on its way (3 MiB: paused), then goes away. The unsigned request
    that follows, on the same single storage connection, gets its own object."""
    private, open_ = secret(size), public(size)
    secret_path = bucket.put("private", "big.png", private)
    public_path = bucket.put("public", "open.png", open_)
    base = bucket.serve(send_buffer=CLIENT_SEND_BUFFER)
    parts = urlsplit(base)
    for _ in range(3):
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_SEND_BUFFER)
            client.settimeout(10)
            client.connect((parts.hostname, parts.port))
            client.sendall(f"GET {signed(secret_path)} HTTP/1.1\r\nhost: edge\r\n\r\n".encode())
            received = client.recv(4096)
            while b"\r\n\r\n" not in received:
                received += client.recv(4096)
            assert received.startswith(b"HTTP/1.1 200")
            time.sleep(0.3)  # edge fills the socket and waits, the whole body from s3rver in
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        after = httpx.get(base + public_path, timeout=30, verify=TLS)
        assert CANARY not in after.content, "a private body leaked into an unsigned answer"
        assert after.status_code == 200 and after.content == open_

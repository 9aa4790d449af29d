"""The world a serving test works in: one storage (a folder, or a prefix of moto's or
s3rver's bucket) with objects in it, served by a real uvicorn and signed for with the test
keyring.

Every test taking ``world`` runs on a folder and on moto. A module of the serving behaviour
suite (``pytest_generate_tests = on_every_store``) runs on :func:`every_store`: s3rver too,
and both S3 servers with the hot cache off (``EDGE_CACHE_TTL=0``, so every answer is
storage's, checked by edge: the ranges and ``304`` s3rver gets wrong). A test that needs
the cache asks for it in ``serve(EDGE_CACHE_TTL=...)``, which wins over the world's.

Where s3rver 3.7 differs from S3 and moto (edge answers the same on all three; the
tests in tests/test_storage_answers.py pin each one down):

- it verifies no SigV4 signature (only that the access key is ``S3RVER``);
- its ``304`` carries no ETag and no Last-Modified;
- it answers ``Range: bytes=-5`` with the first six bytes and ``bytes=0-0`` with the
  whole object (both as ``206``);
- it ignores ``If-Match`` on a GET (edge checks If-Range itself on every answer);
- it ignores a listing's ``encoding-type=url``: keys come as XML text, and the listing
  does not say ``<EncodingType>url</EncodingType>``, so edge reads them as such;
- it keeps connections alive between requests (moto's server closes each one).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.app import Edge
from edge.keys import Key, generate, parse_keyring
from edge.settings import Settings
from edge.signing import sign_url
from edge.storage import Body, Conditions, FileStorage, Reply, Storage, open_storage
from tests.support.servers import (
    BUCKET,
    MOTO_KEY,
    S3RVER_KEY,
    MotoServer,
    S3rver,
    run_uvicorn,
    s3_client,
)

#: The keyring every test world signs with: one HMAC key, made for the session.
KEYS = generate("hs256", "test")[0]
#: Credentials moto takes (any would do); set for the S3 worlds.
AWS = {
    "AWS_ACCESS_KEY_ID": MOTO_KEY,
    "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: Settings of every world: the access log is off (its own tests read it).
_ENV = {"EDGE_SIGNING_KEYS": KEYS, "EDGE_ACCESS_LOG": "off"}
_prefixes = itertools.count()
#: Credentials s3rver takes: its one account (set for its worlds).
S3RVER_AWS = {
    "AWS_ACCESS_KEY_ID": S3RVER_KEY,
    "AWS_SECRET_ACCESS_KEY": S3RVER_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: The worlds of every test taking ``world``.
WORLDS = ("file", "s3")


def every_store(*, cache_off: bool) -> tuple[str, ...]:
    """The worlds of the serving behaviour suite: s3rver too and, with ``cache_off``, both S3
    servers with the hot cache off (the folder's reads need no checking: edge makes them)."""
    on = (*WORLDS, "s3rver")
    return (*on, "s3-cache-off", "s3rver-cache-off") if cache_off else on


def on_every_store(metafunc: pytest.Metafunc) -> None:
    """A serving module's ``pytest_generate_tests``: ``world`` on every store, the hot cache
    on and off, for each test that names no worlds of its own."""
    _parametrize(metafunc, every_store(cache_off=True))


def on_every_store_cached(metafunc: pytest.Metafunc) -> None:
    """As :func:`on_every_store`, the hot cache on only."""
    _parametrize(metafunc, every_store(cache_off=False))


def _parametrize(metafunc: pytest.Metafunc, worlds: tuple[str, ...]) -> None:
    named = any(
        "world" in str(mark.args[0]).split(",")
        for mark in metafunc.definition.iter_markers("parametrize")
    )
    if "world" in metafunc.fixturenames and not named:  # read by pytest's own hooks, after
        metafunc.definition.add_marker(pytest.mark.parametrize("world", worlds, indirect=True))


#: A serving test refused before any storage read: the folder and moto tell all of it.
BEFORE_STORAGE = pytest.mark.parametrize("world", WORLDS, indirect=True)
#: A serving test that sets the hot cache itself (``serve(EDGE_CACHE_TTL=...)``): every store,
#: once each.
EVERY_STORE_ONCE = pytest.mark.parametrize("world", every_store(cache_off=False), indirect=True)


class CountingStorage(Storage):
    """A filesystem storage that records every read and listing, as moto records S3
    requests."""

    kind = "file"

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.reads: list[tuple[str, str]] = []
        self.listings: list[str] = []  # the keys whose siblings were listed
        self.delay = 0.0
        self.chunks_read = 0
        self.bodies_closed = 0

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        self.reads.append(("HEAD" if head else "GET", key))
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = await self.inner.read(key, conditions, head=head)
        if reply.body is not None:
            reply.body = CountingBody(reply.body, self)
        return reply

    async def siblings(self, key: str) -> list[str]:
        self.listings.append(key)
        return await self.inner.siblings(key)

    async def check(self) -> None:
        await self.inner.check()

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingBody:
    def __init__(self, inner: Body, owner: CountingStorage) -> None:
        self.inner, self.owner = inner, owner
        self._chunks = aiter(inner)

    def __aiter__(self) -> CountingBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self.owner.chunks_read += 1
        return chunk

    async def aclose(self) -> None:
        self.owner.bodies_closed += 1
        await self.inner.aclose()


@dataclass
class World:
    """One storage with objects in it, and the means to serve and sign for it."""

    kind: str
    env: dict[str, str]
    root: Path | None = None
    moto: MotoServer | None = None
    s3rver: S3rver | None = None
    prefix: str = ""
    counting: CountingStorage | None = None
    #: The kernel's send buffer of each client connection of the next serve() (run_uvicorn).
    send_buffer: int = 0
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def key(self) -> Key:
        key = parse_keyring(KEYS).signing_key
        assert key is not None
        return key

    @property
    def endpoint_url(self) -> str:
        """The S3 server's endpoint (an S3 world's)."""
        server = self.moto or self.s3rver
        assert server is not None, "a folder world has no endpoint"
        return server.endpoint_url

    def put(
        self,
        visibility: str,
        user: str,
        file: str,
        data: bytes,
        content_type: str | None = None,
        **stored: str,
    ) -> str:
        """Store an object; return its decoded path. ``stored``: put_object's metadata
        arguments (``ContentEncoding="gzip"``), for an S3 world only."""
        if self.root is not None:
            assert not stored, "a folder stores no metadata"
            target = self.root / visibility / user / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        else:
            extra = {"ContentType": content_type} if content_type else {}
            key = S3RVER_KEY if self.s3rver is not None else MOTO_KEY
            s3_client(self.endpoint_url, key).put_object(
                Bucket=BUCKET,
                Key=f"{self.prefix}{visibility}/{user}/{file}",
                Body=data,
                **extra,
                **stored,
            )
        return f"/i/{user}/{file}"

    def settings(self, **overrides: str) -> Settings:
        return Settings.from_env({**self.env, **overrides})

    def storage_reads(self) -> list[tuple[str, str]]:
        """(method, key) of every object read that reached storage."""
        if self.counting is not None:
            return list(self.counting.reads)
        assert self.moto is not None
        start = f"/{BUCKET}/{self.prefix}"
        return [
            (r.method, r.path[len(start) :])
            for r in self.moto.seen
            if r.path.startswith(start) and r.method in ("GET", "HEAD")
        ]

    def slow_storage(self, seconds: float) -> None:
        """Make every object read take ``seconds`` (call after serve())."""
        if self.counting is not None:
            self.counting.delay = seconds
        else:
            assert self.moto is not None
            self.moto.delay = seconds
            self.stack.callback(setattr, self.moto, "delay", 0.0)

    def serve(self, **overrides: str) -> str:
        """Start a real uvicorn serving this world; return its base URL (stopped after the test).
        Served from another endpoint than moto's (a dead port, a fault proxy, a loopback
        store playing a fault on every GET), it starts without the bucket's start-up
        listing unless the test sets EDGE_S3_CHECK_BUCKET: the fault is for the reads."""
        if "EDGE_S3_ENDPOINT_URL" in overrides:
            overrides.setdefault("EDGE_S3_CHECK_BUCKET", "off")
        settings = self.settings(**overrides)
        storage: Storage | None = None
        if self.root is not None:
            self.counting = CountingStorage(FileStorage(self.root))
            storage = self.counting
        elif self.s3rver is not None:  # s3rver keeps no log of requests: counted here
            self.counting = CountingStorage(open_storage(settings.storage, settings.s3))
            storage = self.counting
        app = Edge(settings, storage=storage)
        return self.stack.enter_context(run_uvicorn(app, send_buffer=self.send_buffer))

    def sign(self, path: str, *, expires_in: int = 600, exp: int | None = None) -> str:
        import time

        return sign_url(
            path, key=self.key, exp=exp if exp is not None else int(time.time()) + expires_in
        )


def folder_world(root: Path) -> World:
    """A world on the folder ``root`` (its public/ and private/ made here)."""
    (root / "public").mkdir()
    (root / "private").mkdir()
    return World("file", {**_ENV, "EDGE_STORAGE": str(root)}, root=root)


def s3_world(moto: MotoServer, *, cache: bool = True) -> World:
    """A world on a prefix of its own in moto's test bucket (set :data:`AWS` to serve it);
    without ``cache``, the hot cache is off."""
    prefix = f"t{next(_prefixes)}/"
    return World("s3", _s3_env(moto.endpoint_url, prefix, cache), moto=moto, prefix=prefix)


def s3rver_world(s3rver: S3rver, *, cache: bool = True) -> World:
    """A world on a prefix of its own in s3rver's test bucket (set :data:`S3RVER_AWS`)."""
    prefix = f"t{next(_prefixes)}/"
    env = _s3_env(s3rver.endpoint_url, prefix, cache)
    return World("s3", env, s3rver=s3rver, prefix=prefix)


def _s3_env(endpoint_url: str, prefix: str, cache: bool) -> dict[str, str]:
    return {
        **_ENV,
        "EDGE_STORAGE": f"s3://{BUCKET}/{prefix}",
        "EDGE_S3_ENDPOINT_URL": endpoint_url,
        "EDGE_S3_REGION": "us-east-1",
        **({} if cache else {"EDGE_CACHE_TTL": "0"}),
    }

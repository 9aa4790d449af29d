"""The world a serving test works in: one storage (a folder, or a prefix of moto's bucket)
with objects in it, served by a real uvicorn and signed for with the test keyring."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from edge.app import Edge
from edge.keys import Key, generate, parse_keyring
from edge.settings import Settings
from edge.signing import sign_url
from edge.storage import Body, Conditions, FileStorage, Reply, Storage
from tests.support.servers import BUCKET, MotoServer, run_uvicorn

#: The keyring every test world signs with: one HMAC key, made for the session.
KEYS = generate("hs256", "test")[0]
#: Credentials moto takes (any would do); set for the S3 worlds.
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: Settings of every world: the access log is off (its own tests read it).
_ENV = {"EDGE_SIGNING_KEYS": KEYS, "EDGE_ACCESS_LOG": "off"}
_prefixes = itertools.count()


class CountingStorage(Storage):
    """A filesystem storage that records every read and listing, as moto records S3
    requests."""

    kind = "file"

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
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

    def put(
        self, visibility: str, user: str, file: str, data: bytes, content_type: str | None = None
    ) -> str:
        """Store an object; return its decoded path."""
        if self.root is not None:
            target = self.root / visibility / user / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        else:
            import boto3

            assert self.moto is not None
            extra = {"ContentType": content_type} if content_type else {}
            boto3.client(
                "s3", endpoint_url=self.moto.endpoint_url, region_name="us-east-1"
            ).put_object(
                Bucket=BUCKET, Key=f"{self.prefix}{visibility}/{user}/{file}", Body=data, **extra
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


def s3_world(moto: MotoServer) -> World:
    """A world on a prefix of its own in moto's test bucket (set :data:`AWS` to serve it)."""
    prefix = f"t{next(_prefixes)}/"
    return World(
        "s3",
        {
            **_ENV,
            "EDGE_STORAGE": f"s3://{BUCKET}/{prefix}",
            "EDGE_S3_ENDPOINT_URL": moto.endpoint_url,
            "EDGE_S3_REGION": "us-east-1",
        },
        moto=moto,
        prefix=prefix,
    )

"""The storage interface and the types that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from edge.http import RangeSpec, if_range_holds, is_not_modified, resolve_range
from edge.storage.failures import CHANGED

#: Bodies move in chunks of this size: large enough that per-chunk overhead is
#: small, small enough that a slow client holds little memory.
CHUNK_BYTES = 64 * 1024
#: The size of an object a store sent without a length (chunked): known once read.
UNKNOWN_SIZE = -1
#: The extensions a transform's source may have when the requested name is not stored
#: (the URL contract's image extensions: the keys of edge/transform/types.py ``FORMATS``,
#: which a test keeps equal to these), in the order one is preferred when several exist:
#: lossless sources first, richer ones before poorer. PNG loses nothing; JPEG is most
#: often the original a camera or an uploader made; WebP and AVIF are most often lossy
#: derivatives of one of those; GIF, 256 colours a frame, comes after them. SVG, a source
#: only (no transform writes one), is the last resort: ``logo.png`` rasterised from a
#: stored ``logo.svg``.
SOURCE_PREFERENCE: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".avif",
    ".gif",
    ".svg",
)


@dataclass(frozen=True, slots=True)
class Stat:
    """What the edge needs to know of a stored object."""

    size: int  # UNKNOWN_SIZE: a store sent it chunked, without a length
    etag: str  # quoted, as sent in the ETag header
    last_modified: int  # Unix seconds
    content_type: str | None  # as stored; None when the store keeps none
    #: Headers stored with the object (S3's Content-Encoding, Cache-Control,
    #: Content-Disposition, Content-Language), names lower-case, values checked safe to
    #: send (:func:`edge.storage.s3_answers.stored_headers`); a folder stores none.
    metadata: tuple[tuple[str, str], ...] = ()

    def stored(self, name: str) -> str | None:
        """The stored header ``name`` (lower-case), if the object has one."""
        for stored_name, value in self.metadata:
            if stored_name == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request headers that shape a read; raw strings, validated where used."""

    range: RangeSpec | None = None
    if_range: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None


NO_CONDITIONS = Conditions()


class Body(Protocol):
    """A stream of chunks holding a storage resource until ``aclose``, which must always
    be awaited, even if the stream was never iterated."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Chunk:
    """A body of one chunk already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> Chunk:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._data = None


class Prefixed:
    """A body whose first bytes were read ahead: those, then the rest of ``body``."""

    def __init__(self, first: bytes, body: Body) -> None:
        self._first, self._rest = first, aiter(body)
        self._body = body

    def __aiter__(self) -> Prefixed:
        return self

    async def __anext__(self) -> bytes:
        first, self._first = self._first, b""
        return first or await anext(self._rest)

    async def aclose(self) -> None:
        await self._body.aclose()


async def read_within(body: Body, limit: int) -> bytes | None:
    """All of a body of unknown size if it ends within ``limit`` bytes, else None (never
    more than a chunk past the limit is held); the body is closed whatever happens."""
    held: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                return None
            held.append(chunk)
        return b"".join(held)
    finally:
        await body.aclose()


async def read_whole(body: Body) -> bytes:
    """All of a (small) body, closing it whatever happens; at once when the body can
    (a file's, :meth:`edge.storage.files.FileChunks.read_rest`)."""
    read_rest = getattr(body, "read_rest", None)
    try:
        if read_rest is not None:
            return bytes(await read_rest())
        return b"".join([chunk async for chunk in body])
    finally:
        await body.aclose()


@dataclass(slots=True)
class Reply:
    """A storage answer: status 200, 206 or 304, the bytes ``start..end`` (inclusive)."""

    status: int
    stat: Stat
    start: int
    end: int
    body: Body | None  # None for HEAD, 304, and small bodies read whole into ``data``
    data: bytes | None = None  # a small body read whole, instead of ``body``

    @property
    def length(self) -> int:
        """Bytes in the answer's body; UNKNOWN_SIZE for a whole object of unknown size."""
        if self.stat.size < 0 and self.status == 200:
            return UNKNOWN_SIZE
        return self.end - self.start + 1


def sibling_names(key: str) -> tuple[str, str, list[str]]:
    """``key``'s folder (``""``, or ending in ``/``), its stem (its name up to the last
    dot), and the names a source of it could have in that folder, in
    :data:`SOURCE_PREFERENCE` order: the stem, a dot and an extension, the key's own name
    left out. A name without a stem (``.png``) has none."""
    folder, slash, name = key.rpartition("/")
    stem = name.rpartition(".")[0] if "." in name else name
    names = [stem + extension for extension in SOURCE_PREFERENCE] if stem else []
    return folder + slash, stem, [candidate for candidate in names if candidate != name]


def decide(stat: Stat, conditions: Conditions) -> tuple[int, int, int]:
    """Status and byte span for a read of ``stat`` under ``conditions`` (RFC 9110 order)."""
    if is_not_modified(
        if_none_match=conditions.if_none_match,
        if_modified_since=conditions.if_modified_since,
        etag=stat.etag,
        last_modified=stat.last_modified,
    ):
        return 304, 0, -1
    if stat.size < 0:  # a size the store did not say: no range of it can be resolved here
        return 200, 0, -1
    if conditions.range is not None and if_range_holds(
        conditions.if_range, etag=stat.etag, last_modified=stat.last_modified
    ):
        start, end = resolve_range(conditions.range, stat.size)
        return 206, start, end
    return 200, 0, stat.size - 1


class Storage(ABC):
    """A place objects are read from. Errors are :mod:`edge.errors` types."""

    #: A name for logs and metrics: "file" or "s3".
    kind: str

    async def open(self) -> None:  # noqa: B027 (an optional hook)
        """Acquire long-lived resources (clients, pools); called once at start-up."""

    async def aclose(self) -> None:  # noqa: B027 (an optional hook)
        """Release them; called once at shutdown."""

    @abstractmethod
    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        """Answer a GET (or, with ``head``, a HEAD) of ``key``; raise NotFound if absent."""

    @abstractmethod
    async def siblings(self, key: str) -> list[str]:
        """The keys of the objects beside ``key`` (in its folder, not below) named its stem,
        a dot and an extension of :data:`SOURCE_PREFERENCE`, in that order, ``key`` itself
        left out: where a transform's source is looked for when ``key`` is not stored
        (``photo.webp`` made from ``photo.jpg``). One storage request: a lookup of each
        candidate name in the folder (never a scan), one ListObjectsV2. A folder that does
        not exist has none."""

    @abstractmethod
    async def check(self) -> None:
        """Raise StorageError or StorageTimeout unless the storage answers."""

    async def resume(self, key: str, stat: Stat, start: int, end: int) -> Body:
        """Bytes ``start..end`` of the very object ``stat`` describes, for a download that
        let go of storage while its client was not reading. A replaced object is a
        StorageError (the download is then cut, never a mix of two objects). ``end`` is -1
        for an object of unknown size: from ``start`` to its end."""
        asked = (start, end if end >= 0 else None)
        reply = await self.read(key, Conditions(range=asked, if_range=stat.etag), head=False)
        if (
            reply.status != 206
            or reply.stat.etag != stat.etag
            or reply.start != start
            or (end >= 0 and reply.end != end)
        ):
            if reply.body is not None:
                await reply.body.aclose()
            raise CHANGED.exception(key=key)
        return reply.body if reply.body is not None else Chunk(reply.data or b"")

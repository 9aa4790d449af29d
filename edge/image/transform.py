"""Transform: a variant of a stored image, made by the transform engine and cached.

A request with transform parameters (``?w=800``, ``?p:thumb``), or for a name
that is not stored but whose extension is an output format (``photo.webp`` made
from ``photo.jpg``), gets a *variant*. Its source is found folder by folder in
the visibility order (a grant reads ``private/`` first, then ``public/``): the
object at the requested path itself, else the same name with another image
extension (one listing per folder, :meth:`Reader.siblings`). The variant is
cached under its folder, path and effective transform, so a private variant
never reaches an unsigned request and ``?w=800`` shares ``?w=800&q=80``'s
entry; concurrent requests for one variant make it once (single flight).

Its ETag derives from the source's, the effective transform and the format, so
a revalidation is answered ``304`` from the source's validators without
transforming. A stored object asked for in its own name with no transform
parameter never comes here: it is served byte for byte (:mod:`edge.image.read`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from edge.cache import Entry, HotCache
from edge.errors import (
    BadTransform,
    NotFound,
    Overloaded,
    SignatureInvalid,
    TransformTimeout,
    UnprocessableImage,
)
from edge.http import none_match
from edge.image.presets import Presets
from edge.image.read import Found, Reader, hit
from edge.image.request import ImageRequest
from edge.image.variant_keys import VariantKeyMemo, output_of
from edge.metrics import Metrics
from edge.record import Record
from edge.signing import Grant
from edge.storage import Reply, Stat
from edge.transform import Limits, OutputFormat, Rendered, TransformPool, libvips, render
from edge.transform.types import MEDIA_TYPES
from edge.transform_params import Transform

log = logging.getLogger("edge")

#: Part of every variant's ETag: another engine may encode other bytes.
ENGINE = f"edge-transform-2 libvips-{libvips.version()}"


class Transformer:
    """Finds a variant's source, makes the variant once and keeps it."""

    def __init__(
        self,
        *,
        reader: Reader,
        cache: HotCache | None,
        pool: TransformPool,
        limits: Limits,
        presets: Presets,
        mode: Literal["on", "signed"],
        max_output_bytes: int = 16 * 1024 * 1024,
        metrics: Metrics | None = None,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.metrics = metrics
        self.reader = reader
        self.cache = cache
        self.pool = pool
        self.limits = limits
        self.presets = presets
        self.mode = mode
        #: Each request's variant keys and output format, remembered (edge.image.variant_keys).
        self.keys = VariantKeyMemo()

    def converts(self, request: ImageRequest, grant: Grant | None) -> bool:
        """Whether a name that is not stored may be made from a sibling: its extension is
        an output format, and transforms are open to this request."""
        return output_of(request.path) is not None and (self.mode == "on" or grant is not None)

    def cached(self, request: ImageRequest, grant: Grant | None, record: Record) -> Found | None:
        """A variant's answer from the hot cache alone, or None when :meth:`variant` must
        run (a miss, a refusal, no cache): as :meth:`Reader.cached`, no coroutine and no
        storage. Which keys are read is this request's grant's choice, every time."""
        cache = self.cache
        if cache is None or (grant is None and self.mode == "signed"):
            return None
        keys = self.keys.of(request.path, request.query, request.transform)
        if keys is None:
            return None
        if grant is not None:
            entry = cache.get(keys.private)
            if entry is None:
                return None
            if entry.stat is not None:
                record.cache = "hit"
                return hit(entry, keys.private, True, request)
        entry = cache.get(keys.public)
        if entry is None or entry.stat is None:  # no source: variant() says so
            return None
        record.cache = "hit"
        return hit(entry, keys.public, False, request)

    async def variant(self, request: ImageRequest, grant: Grant | None, record: Record) -> Found:
        if grant is None and self.mode == "signed":
            raise SignatureInvalid(
                "EDGE_TRANSFORMS=signed: a transform needs a signed URL", slug="transform_unsigned"
            )
        keys = self.keys.of(request.path, request.query, request.transform)
        if keys is None:
            raise BadTransform(
                "a transform's output format is the path's extension:"
                " .jpg, .jpeg, .png, .webp, .avif or .gif",
                slug="output_format_unknown",
            )
        asked, output = keys.asked, keys.output
        rest = request.path[3:]  # "{user}/{file}"
        folders = (("private", keys.private), ("public", keys.public))
        for folder, key in folders if grant is not None else folders[1:]:
            private = folder == "private"
            entry = self.cache.get(key) if self.cache is not None else None
            if entry is None:
                made = await self._make(key, folder, rest, asked, output, request, record)
                if isinstance(made, Found):
                    return made  # a 304 from the source's validators
                entry = made
            else:
                record.cache = "hit"
            if entry.stat is not None:
                return hit(entry, key, private, request)
        raise NotFound(f"no source for {request.path[:300]}")

    async def _make(
        self,
        key: str,
        folder: str,
        rest: str,
        asked: Transform,
        output: OutputFormat,
        request: ImageRequest,
        record: Record,
    ) -> Entry | Found:
        """The variant's entry (``stat`` None when the folder holds no source), or a 304."""
        user = rest.partition("/")[0]
        resolved = await self.presets.resolve(user, asked, record) if asked.preset else asked
        located, looked = None, False
        if request.conditions.if_none_match is not None:
            located, looked = await self._locate(folder, rest), True
            if located is not None:
                etag = variant_etag(*located, resolved, output)
                if none_match(request.conditions.if_none_match, etag):
                    modified = located[1].last_modified
                    reply = Reply(304, Stat(-1, etag, modified, None), 0, -1, None)
                    return Found(reply, key, folder == "private")

        async def make() -> Entry | None:
            source = located if looked else await self._locate(folder, rest)
            if source is None:
                return self._keep(key, None, b"")
            source_key, stat = source
            limit = self.limits.max_source_bytes
            if stat.size > limit:
                raise UnprocessableImage(
                    f"{source_key[:300]} is {stat.size} bytes, over {limit}",
                    slug="source_too_large",
                )
            refuse_encoded(source_key, stat)

            async def read() -> bytes:
                nonlocal stat  # the validators of the very bytes transformed, for the ETag
                stat, data = await self.reader.whole(source_key, record, limit)
                refuse_encoded(source_key, stat)  # replaced since it was looked at
                return data

            rendered = await self._render(read, resolved, output, record, source_key)
            if len(rendered.data) > self.max_output_bytes:
                raise UnprocessableImage(
                    f"output is {len(rendered.data)} bytes, over EDGE_TRANSFORM_MAX_OUTPUT_BYTES"
                    f" ({self.max_output_bytes})",
                    slug="output_too_large",
                )
            etag = variant_etag(source_key, stat, resolved, output)
            made = Stat(len(rendered.data), etag, stat.last_modified, MEDIA_TYPES[output])
            return self._keep(key, made, rendered.data)

        if self.cache is None:
            entry = await make()
            assert entry is not None
            record.cache = "bypass"
            return entry
        record.cache = "miss"
        entry, led = await self.cache.shared(key, make, share=(UnprocessableImage, Overloaded))
        if entry is None:  # the leader failed: its error was its own; try again alone
            entry = await make()
            assert entry is not None
        elif not led:
            record.cache = "shared"
        return entry

    async def _render(
        self,
        read: Callable[[], Awaitable[bytes]],
        transform: Transform,
        output: OutputFormat,
        record: Record,
        source_key: str,
    ) -> Rendered:
        """The engine's work in a pool worker, the source read once the worker is free (so
        waiting requests hold no source bytes), timed in the worker, stopped at the pool's
        deadline (EDGE_TRANSFORM_TIMEOUT)."""
        outcome = "unprocessable"
        started = 0.0
        deadline = self.pool.deadline()

        def work(data: bytes) -> Rendered:
            nonlocal outcome, started
            started = time.perf_counter()
            try:
                rendered = render(data, transform.effective(), output, self.limits, deadline)
            finally:
                if deadline.passed:  # the request was answered at the deadline: say when
                    log.warning(  # this worker was free again, and for what it was busy
                        "transform of %s to %s ran past EDGE_TRANSFORM_TIMEOUT (%g s):"
                        " answered 503 TRANSFORM_TIMEOUT, worker free again after %.3f s",
                        source_key[:300],
                        output,
                        deadline.seconds,
                        time.perf_counter() - started,
                    )
            outcome = "ok"
            return rendered

        try:
            return await self.pool.run(work, prepare=read, deadline=deadline)
        except TransformTimeout:
            outcome = "timeout"
            raise
        finally:
            if started:
                seconds = time.perf_counter() - started
                if self.metrics is not None:
                    self.metrics.transforms.labels(output, outcome).observe(seconds)
                if record.timing is not None:  # EDGE_SERVER_TIMING
                    record.timing.transform = seconds

    def _keep(self, key: str, stat: Stat | None, data: bytes) -> Entry:
        """The cache's entry for the variant, or one of its own when the cache cannot keep
        it (too large, or no cache): a variant is always answered from an entry."""
        cache = self.cache
        entry = (
            cache.put(key, stat, data, max_object_bytes=self.max_output_bytes) if cache else None
        )
        if entry is None:
            whole = None if stat is None else Reply(200, stat, 0, stat.size - 1, None, data)
            entry = Entry(stat, data, 0.0, 0, whole)
        return entry

    async def _locate(self, folder: str, rest: str) -> tuple[str, Stat] | None:
        """The source in ``folder`` and its validators, no bytes read: the requested name
        (its cache entry, else one HEAD), else a sibling (one listing, then its HEAD)."""
        key = f"{folder}/{rest}"
        try:
            return key, await self.reader.stat(key)
        except NotFound:
            pass
        for sibling in await self.reader.siblings(key):
            try:
                return sibling, await self.reader.stat(sibling)
            except NotFound:  # deleted since it was listed
                continue
        return None


def variant_etag(source_key: str, stat: Stat, transform: Transform, output: OutputFormat) -> str:
    """A strong ETag for the bytes the engine makes from this source, transform and format:
    the same inputs always give the same tag, other inputs another."""
    made = "\n".join(
        (ENGINE, source_key, stat.etag, transform.effective().canonical(), output)
    ).encode("utf-8", "surrogateescape")
    return '"' + hashlib.blake2b(made, digest_size=16).hexdigest() + '"'


def refuse_encoded(key: str, stat: Stat) -> None:
    """A source stored with a Content-Encoding (a gzip-compressed SVG) is refused, never
    decoded: edge sends stored bytes as they are, and makes variants only of plain ones."""
    encoding = stat.stored("content-encoding")
    if encoding is not None:
        raise UnprocessableImage(
            f"{key[:300]} is stored with Content-Encoding {encoding[:40]}: a transform's"
            " source must be stored unencoded",
            slug="source_encoded",
        )

"""The image request, ``GET``/``HEAD /i/{user}/{file}``, as a pipeline of named steps.

    parse -> authorize -> read | transform -> answer -> stream

Each step is a module: :mod:`edge.image.request` (parse, transform parameters
included), :mod:`edge.signing` (authorize: the verdict on the signature),
:mod:`edge.image.read` (hot cache, single flight, read slots, storage) for the
stored object, or :mod:`edge.image.transform` for a variant (``?w=800``, or
``photo.webp`` made from ``photo.jpg``; it reads its source through the same
reader), :mod:`edge.image.answer` (the response head) and
:mod:`edge.image.stream` (the body). Order matters and is the spec's: a
malformed transform parameter, then a bad or expired signature, is refused
before any storage request. Every failure before the first byte becomes a JSON
error here (:meth:`ImagePipeline.fail`); a cache hit goes through the same steps
as a miss, each with a fast case for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from edge.cache import HotCache
from edge.errors import NO_SLUG, EdgeError, NotFound, Overloaded, RangeNotSatisfiable
from edge.image.answer import CachePolicy, Headers
from edge.image.presets import Presets
from edge.image.read import Reader
from edge.image.request import Parser
from edge.image.stream import Streamer
from edge.image.transform import Transformer
from edge.limits import ReadSlots
from edge.metrics import Metrics
from edge.record import Record, with_reason
from edge.requestid import HEADER as REQUEST_ID
from edge.requestid import name_in_logs
from edge.responses import Header, error_response
from edge.settings import Settings
from edge.signing import Verifier
from edge.storage import Storage
from edge.storage.base import CHUNK_BYTES
from edge.timing import server_timing
from edge.transform import Limits, TransformPool

log = logging.getLogger("edge")


class ImagePipeline:
    """Serves images: the steps, wired from the settings."""

    def __init__(
        self,
        *,
        settings: Settings,
        verifier: Verifier,
        storage: Storage,
        pool: TransformPool | None = None,
        policy: CachePolicy | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cors = settings.cors
        #: Server-Timing and Timing-Allow-Origin, or None (the default): see edge.timing.
        self.timing = server_timing(settings.server_timing, settings.timing_allow_origin)
        #: (error type, slug) -> its answer: see _error_answer.
        self._answers: dict[tuple[type[Exception], str], tuple[int, list[Header], bytes, str]] = {}
        self.parser = Parser(logged=settings.access_log != "off")
        self.verifier = verifier
        self.cache = (
            HotCache(
                max_bytes=settings.cache_max_bytes,
                max_object_bytes=settings.cache_max_object_bytes,
                ttl=settings.cache_ttl,
            )
            if settings.cache_ttl > 0
            else None
        )
        self.reader = Reader(
            storage=storage,
            cache=self.cache,
            slots=ReadSlots(settings.max_storage_reads, wait=settings.queue_timeout),
            metrics=metrics,
        )
        self.pool = pool or TransformPool.from_settings(settings)
        self.transformer = Transformer(
            reader=self.reader,
            cache=self.cache,
            pool=self.pool,
            limits=Limits.from_settings(settings),
            presets=Presets(reader=self.reader, ttl=settings.cache_ttl),
            mode=settings.transforms,
            max_output_bytes=settings.transform_max_output_bytes,
            metrics=metrics,
        )
        self.policy = policy or CachePolicy(
            public_max_age=settings.public_max_age,
            private_max_age=settings.private_max_age,
            clock=clock,
        )
        self.headers = Headers(
            policy=self.policy, cors=settings.cors, passed=settings.s3_pass_headers
        )
        self.streamer = Streamer(
            storage=storage, send_timeout=settings.send_timeout, metrics=metrics
        )

    # A plain method, not __call__: CPython 3.11 calls an instance through a slower, generic
    # path (830 to 900 instructions, 0.5%, of each hit: bench.hotpath; Headers does the same).
    async def serve(self, scope: Scope, receive: Receive, send: Send, record: Record) -> None:
        try:
            request = self.parser.parse(scope, record)
            if self.timing is None:
                grant = self.verifier.verify(request.path, request.query)
            else:
                grant = self.timing.verify(self.verifier, request, record)
            if request.transform is None:
                try:
                    found = self.reader.cached(request, grant, record)
                    if found is None:  # off the cached-hit path: storage may warn
                        name_in_logs(record.request_id)
                        found = await self.reader.stored(request, grant, record)
                except NotFound:
                    if not self.transformer.converts(request, grant):
                        raise
                    found = self.transformer.cached(request, grant, record)
                    if found is None:
                        name_in_logs(record.request_id)
                        found = await self.transformer.variant(request, grant, record)
            else:
                found = self.transformer.cached(request, grant, record)
                if found is None:  # off the cached-hit path, as a plain miss
                    name_in_logs(record.request_id)
                    found = await self.transformer.variant(request, grant, record)
        except Exception as error:
            await self.fail(send, error, scope, record)
            return
        reply = found.reply
        try:
            record.status = reply.status
            record.outcome = "private" if found.private else "public"
            headers = self.headers.head(found, grant, request.path)
            headers.append((REQUEST_ID, record.request_id))
            if self.timing is not None:
                headers += self.timing.headers(record, scope)
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            if reply.body is None:  # held in memory (cached, or a variant)
                body = b"" if request.head or reply.data is None else reply.data
                if len(body) <= CHUNK_BYTES:  # most images: one message
                    await send({"type": "http.response.body", "body": body})
                    record.sent = len(body)
                else:  # a chunk at a time, each within the send timeout
                    name_in_logs(record.request_id)
                    await self.streamer.send_held(body, send, record)
            else:
                await self.streamer.stream(found, receive, send, record)
        finally:
            if found.lease is not None:
                found.lease.give_back()
            if reply.body is not None:  # streamed already, or never started
                await reply.body.aclose()

    async def fail(self, send: Send, error: Exception, scope: Scope, record: Record) -> None:
        """Answer an error before any byte of the image was sent: only its fixed code and
        message (edge.responses), never its reason."""
        slug = error.slug if isinstance(error, EdgeError) else NO_SLUG
        answer = self._answers.get((type(error), slug))
        if answer is None:
            if not isinstance(error, EdgeError):
                # A bug: logged with its traceback, answered without it.
                name_in_logs(record.request_id)
                path = scope.get("path", "")[:200]
                log.error("unexpected error serving %s", path, exc_info=error)
                error = EdgeError("unexpected error")
            answer = self._error_answer(error)
        status, headers, body, record.outcome = answer
        record.status = status
        headers = [*headers, (REQUEST_ID, record.request_id)]
        if self.timing is not None:
            headers += self.timing.headers(record, scope)
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        record.sent = 0 if head else len(body)

    def _error_answer(self, error: EdgeError) -> tuple[int, list[Header], bytes, str]:
        """Status, headers, body and outcome of an error, the outcome with the cause's slug
        for the access log's reason (edge.record.with_reason). Kept per kind and slug when they
        depend on those alone: rejections are frequent, and this saves 4,700 instructions
        (3%) of each (bench.hotpath, bad-signature). Slugs are the code's own: a few dozen."""
        status, headers, body = error_response(error, cors=self.cors)
        outcome = "error" if type(error) is EdgeError else error.code.lower()
        answer = (status, headers, body, with_reason(outcome, error.slug))
        if not isinstance(error, RangeNotSatisfiable | Overloaded):
            self._answers[type(error), error.slug] = answer
        return answer

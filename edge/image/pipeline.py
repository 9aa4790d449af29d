"""The image request, ``GET``/``HEAD /i/{user}/{file}``, as a pipeline of named steps.

    parse -> authorize -> read -> transform -> answer -> stream

Each step is a module: :mod:`edge.image.request` (parse), :mod:`edge.signing`
(authorize: the verdict on the signature), :mod:`edge.image.read` (hot cache,
single flight, read slots, storage), :mod:`edge.image.transform`,
:mod:`edge.image.answer` (the response head) and :mod:`edge.image.stream` (the
body). Order matters and is the spec's: a bad or expired signature is refused
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
from edge.errors import EdgeError, Overloaded, RangeNotSatisfiable
from edge.image.answer import CachePolicy, Headers
from edge.image.read import Reader
from edge.image.request import Parser
from edge.image.stream import Streamer
from edge.image.transform import transform
from edge.limits import ReadSlots
from edge.metrics import Metrics
from edge.record import Record
from edge.responses import Header, error_response
from edge.settings import Settings
from edge.signing import Verifier
from edge.storage import Storage

log = logging.getLogger("edge")


class ImagePipeline:
    """Serves images: the steps, wired from the settings."""

    def __init__(
        self,
        *,
        settings: Settings,
        verifier: Verifier,
        storage: Storage,
        policy: CachePolicy | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cors = settings.cors
        self._answers: dict[type[Exception], tuple[int, list[Header], bytes, str]] = {}
        self.parser = Parser()
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
        self.policy = policy or CachePolicy(
            public_max_age=settings.public_max_age,
            private_max_age=settings.private_max_age,
            clock=clock,
        )
        self.headers = Headers(policy=self.policy, cors=settings.cors)
        self.streamer = Streamer(
            storage=storage, send_timeout=settings.send_timeout, metrics=metrics
        )

    # A plain method, not __call__: CPython 3.11 calls an instance through a slower, generic
    # path (830 to 900 instructions, 0.5%, of each hit: bench.hotpath; Headers does the same).
    async def serve(self, scope: Scope, receive: Receive, send: Send, record: Record) -> None:
        try:
            request = self.parser.parse(scope)
            grant = self.verifier.verify(request.path, request.query)
            found = self.reader.cached(request, grant, record)
            if found is None:
                found = await self.reader.stored(request, grant, record)
            if request.transform is not None:
                found = await transform(request, found)
        except Exception as error:
            await self.fail(send, error, scope, record)
            return
        reply = found.reply
        try:
            record.status = reply.status
            record.outcome = "private" if found.private else "public"
            headers = self.headers.head(found, grant, request.path)
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            if reply.body is None:  # small, or none: one message
                body = b"" if request.head or reply.data is None else reply.data
                await send({"type": "http.response.body", "body": body})
                record.sent = len(body)
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
        answer = self._answers.get(type(error))
        if answer is None:
            if not isinstance(error, EdgeError):
                # A bug: logged with its traceback, answered without it.
                path = scope.get("path", "")[:200]
                log.error("unexpected error serving %s", path, exc_info=error)
                error = EdgeError("unexpected error")
            answer = self._error_answer(error)
        status, headers, body, record.outcome = answer
        record.status = status
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        record.sent = 0 if head else len(body)

    def _error_answer(self, error: EdgeError) -> tuple[int, list[Header], bytes, str]:
        """Status, headers, body and outcome of an error, kept per kind when they depend on the
        kind alone: rejections are frequent, and this saves 4,700 instructions (3%) of each
        (bench.hotpath, bad-signature)."""
        status, headers, body = error_response(error, cors=self.cors)
        answer = (
            status,
            headers,
            body,
            "error" if type(error) is EdgeError else error.code.lower(),
        )
        if not isinstance(error, RangeNotSatisfiable | Overloaded):
            self._answers[type(error)] = answer
        return answer

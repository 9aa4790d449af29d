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
from edge.errors import EdgeError
from edge.image.answer import CachePolicy, Headers
from edge.image.read import Reader
from edge.image.request import Parser
from edge.image.stream import Streamer
from edge.image.transform import transform
from edge.limits import ReadSlots
from edge.metrics import Metrics
from edge.record import Record
from edge.responses import error_response
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
        self.parse = Parser()
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send, record: Record) -> None:
        try:
            request = self.parse(scope)
            grant = self.verifier.verify(request.path, request.query)
            found = await self.reader.read(request, grant, record)
            if request.transform is not None:
                found = await transform(request, found)
        except Exception as error:
            await self.fail(send, error, scope, record)
            return
        try:
            headers = self.headers(found, grant, request.path)
            record.status = found.reply.status
            record.outcome = "private" if found.private else "public"
            await send(
                {"type": "http.response.start", "status": found.reply.status, "headers": headers}
            )
            await self.streamer.send_body(found, request.head, receive, send, record)
        finally:
            if found.lease is not None:
                found.lease.give_back()
            if found.reply.body is not None:  # streamed already, or never started
                await found.reply.body.aclose()

    async def fail(self, send: Send, error: Exception, scope: Scope, record: Record) -> None:
        """Answer an error before any byte of the image was sent: only its fixed code and
        message (edge.responses), never its reason."""
        if not isinstance(error, EdgeError):
            # A bug: logged with its traceback, answered without it.
            log.error("unexpected error serving %s", scope.get("path", "")[:200], exc_info=error)
            error = EdgeError("unexpected error")
        status, headers, body = error_response(error, cors=self.cors)
        record.status = status
        record.outcome = "error" if type(error) is EdgeError else error.code.lower()
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        record.sent = 0 if head else len(body)

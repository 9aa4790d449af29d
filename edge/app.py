"""The ASGI application: ``/i/...`` on its own lean path, everything else through Starlette.

``create_app()`` is the factory uvicorn runs (``uvicorn --factory edge.app:create_app``).
Starlette brings the lifespan, health endpoints and JSON 404/405s; image
requests skip its routing and middleware, which would cost more than the
signature check itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import Address
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from edge.accesslog import AccessLog
from edge.authorize import AuthHandler
from edge.errors import EdgeError, MethodNotAllowed, NotFound, NotReady, StorageTimeout
from edge.image.answer import CachePolicy
from edge.image.pipeline import ImagePipeline
from edge.metrics import Metrics
from edge.observe import Observer
from edge.proxies import ProxyPolicy
from edge.record import Record
from edge.requestid import HEADER as REQUEST_ID
from edge.requestid import RequestIds, name_in_logs
from edge.responses import NO_STORE, error_response
from edge.settings import Settings
from edge.signing import Verifier
from edge.storage import Storage, open_storage
from edge.storage.probe import checked_region

log = logging.getLogger("edge")
READY_CHECK_TIMEOUT = 3.0

#: How edge runs on uvicorn, shared by `edge serve`, `edge demo` and the tests:
#: the C parser (httptools) inside edge's bounded connection protocol, no `Server:
#: uvicorn` banner, no uvicorn access log (edge writes its own), and no rewriting of
#: the client address from forwarded headers (edge trusts only EDGE_TRUSTED_PROXIES,
#: uvicorn would trust 127.0.0.1).
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "edge.server:EdgeProtocol",
    "lifespan": "on",
    "access_log": False,
    "server_header": False,
    "proxy_headers": False,
}


class Readiness:
    """Storage reachability, checked at most once per ``interval``; probes in between
    get the last answer, so a probe storm never becomes a storage storm."""

    def __init__(
        self,
        storage: Storage,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.storage, self.interval, self.clock = storage, interval, clock
        self.metrics = metrics  # its edge_ready gauge shows the last answer
        self._checked_at = -float("inf")
        self._error: EdgeError | None = None
        self._lock = asyncio.Lock()

    async def error(self) -> EdgeError | None:
        async with self._lock:
            if self.clock() - self._checked_at >= self.interval:
                try:
                    async with asyncio.timeout(READY_CHECK_TIMEOUT):
                        await self.storage.check()
                    self._error = None
                except TimeoutError:
                    self._error = StorageTimeout("readiness check timed out")
                except EdgeError as error:
                    self._error = error
                if self._error is not None:
                    log.warning("storage not ready: %s", self._error.reason)
                if self.metrics is not None:
                    self.metrics.stats.ready = self._error is None
                self._checked_at = self.clock()
            return self._error


class Edge:
    """The whole service: the image pipeline, /auth, health endpoints, lifespan."""

    def __init__(self, settings: Settings, *, storage: Storage | None = None) -> None:
        self.settings = settings
        self.storage = storage or open_storage(settings.storage, settings.s3)
        verifier = Verifier(
            settings.signing_keys, max_ttl=settings.max_ttl, leeway=settings.clock_leeway
        )
        self.metrics = None if settings.metrics == "off" else Metrics()
        proxies = ProxyPolicy(settings.trusted_proxies)
        self.observer = Observer(
            metrics=self.metrics,
            log=AccessLog(proxies=proxies) if settings.access_log == "json" else None,
        )
        #: Each request's X-Request-ID: a trusted proxy's, or a new one (edge.requestid).
        self.ids = RequestIds(proxies)
        policy = CachePolicy(
            public_max_age=settings.public_max_age, private_max_age=settings.private_max_age
        )
        self.images = ImagePipeline(
            settings=settings,
            verifier=verifier,
            storage=self.storage,
            policy=policy,
            metrics=self.metrics,
        )
        if self.metrics is not None and self.images.cache is not None:
            self.metrics.watch_cache(self.images.cache)
        self.auth = AuthHandler(verifier, policy, settings)
        self.bare_hosts = settings.bare_hosts
        self.readiness = Readiness(
            self.storage, interval=settings.ready_interval, metrics=self.metrics
        )
        routes = [Route("/healthz", self.healthz), Route("/readyz", self.readyz)]
        if settings.metrics in ("on", "local"):
            routes.append(Route("/metrics", self.metrics_page))
        self.router = Starlette(
            routes=routes,
            lifespan=self.lifespan,
            exception_handlers={HTTPException: self.http_error, Exception: self.internal_error},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        record = self.observer.start()
        record.request_id = self.ids.of(scope)
        try:
            if self.bare_hosts and not scope["path"].startswith("/i/"):
                scope = self._bare(scope)
            if scope["path"].startswith("/i/"):
                await self.images.serve(scope, receive, send, record)
            elif scope["path"] == "/auth":
                await self.auth(scope, receive, send, record)
            else:
                name_in_logs(record.request_id)  # an unexpected error is logged
                await self.router(scope, receive, _recording(send, record))
        finally:
            self.observer.finish(scope, record)

    def _bare(self, scope: Scope) -> Scope:
        """A request to a host of ``EDGE_BARE_HOSTS`` for ``/{user}/{path}`` (two segments
        or more) as the ``/i/{user}/{path}`` it means; any other request as it came."""
        path = scope["path"]
        if path.count("/") < 2:  # /healthz, /auth, /metrics: the host's own routes
            return scope
        for name, value in scope["headers"]:
            if name == b"host":
                if value.decode("latin-1").lower() not in self.bare_hosts:
                    return scope
                raw = scope.get("raw_path") or path.encode()
                return {**scope, "path": "/i" + path, "raw_path": b"/i" + raw}
        return scope

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        await self.storage.open()
        if self.observer.log is not None:
            self.observer.log.start()
        if not self.settings.signing_keys:
            log.warning("EDGE_SIGNING_KEYS is empty: private images will not be served")
        if self.metrics is not None:
            port = self.settings.metrics
            self.metrics.open(port if isinstance(port, int) else None)
        try:
            yield
        finally:
            if self.metrics is not None:
                self.metrics.close()
            self.images.pool.close()
            await self.storage.aclose()
            if self.observer.log is not None:
                self.observer.log.close()

    async def metrics_page(self, request: Request) -> Response:
        assert self.metrics is not None
        if self.settings.metrics == "local" and not _is_loopback(request.client):
            return self._error(NotFound("metrics are for loopback clients only"))
        return Response(self.metrics.page(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, _: Request) -> Response:
        return _json(200, b'{"status":"ok"}')

    async def readyz(self, _: Request) -> Response:
        error = await self.readiness.error()
        if error is None:
            return _json(200, b'{"status":"ready"}')
        return self._error(NotReady(error.reason))

    async def http_error(self, _: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return self._error(MethodNotAllowed())
        return self._error(NotFound("no route"))

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s", request.url.path[:200], exc_info=exc)
        return self._error(EdgeError("unexpected error"))

    def _error(self, error: EdgeError) -> Response:
        status, headers, body = error_response(error, cors=False)
        response = Response(body, status_code=status)
        response.raw_headers = list(headers)
        return response


def _recording(send: Send, record: Record) -> Send:
    """Wrap ``send`` to note the status and body size of a response Starlette builds, and
    to add the request's ``X-Request-ID``."""

    async def recording(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
            message["headers"] = [*message["headers"], (REQUEST_ID, record.request_id)]
        elif message["type"] == "http.response.body":
            record.sent += len(message.get("body", b""))
        await send(message)

    return recording


def _is_loopback(client: Address | None) -> bool:
    """Whether the connection's own peer (never a forwarded header) is this host."""
    if client is None:
        return False
    try:
        return ip_address(client.host).is_loopback
    except ValueError:  # a Unix socket's peer has no address: it is local by construction
        return client.host == ""


def _json(status: int, body: bytes) -> Response:
    response = Response(body, status_code=status, media_type="application/json")
    response.raw_headers.append(NO_STORE)
    return response


def create_app(settings: Settings | None = None, **options: Any) -> Edge:
    """The app factory: settings from the environment unless given. It also routes every
    log message through a writer that never blocks (uvicorn's own access log, which
    would print signatures, goes off) and fits the open-file limit to the settings. In a
    worker of ``edge serve``, the bucket is not checked again (edge.storage.probe)."""
    from edge.logwriter import install_logging
    from edge.server import fit_open_files

    install_logging()
    settings = settings or Settings.from_env()
    if settings.s3_check_bucket and (region := checked_region()) is not None:
        # A worker of `edge serve`, which checked the bucket once for all of them.
        settings = replace(settings, s3_check_bucket=False, s3_region=region)
    fit_open_files(settings)
    return Edge(settings, **options)

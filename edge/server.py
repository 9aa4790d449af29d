"""The HTTP connection: uvicorn's httptools protocol with the bounds a stranger meets first.

On its own, uvicorn keeps a connection that never sends a request open
forever, buffers a request head of any size (a 64 MiB header was accepted), and
accepts connections until the process runs out of file descriptors. This
protocol adds, per process:

- at most ``EDGE_MAX_CONNECTIONS`` client connections: a new one beyond it is
  answered ``503 OVERLOADED`` and closed before anything is read from it;
- ``EDGE_HEADER_TIMEOUT`` to send a complete request head, counted from the
  connection's opening, or from the first byte of a later request on a
  kept-alive connection (idle time in between is ``EDGE_KEEPALIVE_TIMEOUT``'s):
  one timer for the whole process sweeps the connections, so a request pays a
  clock read, not a timer of its own;
- ``EDGE_MAX_HEADER_BYTES`` of request head: bytes are counted as they arrive,
  and a head still incomplete past the bound is refused ``431
  HEADERS_TOO_LARGE`` at once, so at most one read's worth (256 KiB) beyond it
  is ever buffered;
- edge's JSON errors, never uvicorn's plain text, for a malformed request,
  which is counted rather than logged (a stranger sets the rate).

Every refusal closes the connection. Run it with ``http="edge.server:EdgeProtocol"``
(``UVICORN_OPTIONS`` does).
"""

from __future__ import annotations

import asyncio
import math
import resource
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from edge.errors import BadRequest, ConfigError, EdgeError, HeadersTooLarge, Overloaded
from edge.responses import error_response
from edge.settings import Settings

#: Descriptors a process needs besides client connections: the listening socket,
#: log pipes, files being read, the metrics listener, a margin for libraries.
RESERVED_FILES = 256
#: How often the head-timeout sweep runs, at most: a slow head is closed within
#: ``EDGE_HEADER_TIMEOUT`` plus this.
SWEEP_SECONDS = 1.0
#: Framing bytes of a request head not seen in its parsed parts: the request
#: line's spaces and version, each header's ": " and CRLF, the blank line.
_FRAMING = 16


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one connection may hold, and the answers that refuse it."""

    max_connections: int
    header_timeout: float
    keepalive_timeout: float
    max_header_bytes: int
    overloaded: bytes
    too_large: bytes
    malformed: bytes

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        return cls(
            max_connections=settings.max_connections,
            header_timeout=settings.header_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_header_bytes=settings.max_header_bytes,
            overloaded=_closing_answer(Overloaded(), cors=settings.cors),
            too_large=_closing_answer(HeadersTooLarge(), cors=settings.cors),
            malformed=_closing_answer(BadRequest("malformed HTTP request"), cors=settings.cors),
        )


class EdgeProtocol(HttpToolsProtocol):
    """One client connection, bounded in number, head size and head time."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.bounds = _bounds(config)
        self.timeout_keep_alive = math.ceil(self.bounds.keepalive_timeout)  # uvicorn's type
        self.rejected = _rejections(config)
        self.ids = getattr(_edge_of(config), "ids", None)  # X-Request-ID of a refusal
        self._in_head = True  # before, or inside, a request head
        self._head_since = 0.0  # loop time the head started; 0 while none is under way
        self._head_bytes = 0
        self._refusal = b""
        _start_sweep(self.loop, server_state, self.bounds.header_timeout)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.bounds.max_connections:
            self._refuse("overloaded", self.bounds.overloaded)
            return
        self._head_since = self.loop.time()

    def data_received(self, data: bytes) -> None:
        if self._refusal:
            return
        if self._in_head:
            self._head_bytes += len(data)
            if not self._head_since:
                self._head_since = self.loop.time()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An image edge speaks HTTP/1.1 alone: Upgrade is ignored (RFC 9110 7.8), the
            # request answered as any other. The parser reads nothing after it, so the
            # connection closes after that answer (uvicorn left it open and deaf, and logged
            # a warning per request: a stranger's rate).
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return
        except httptools.HttpParserError:
            if not self._refusal:  # the parser itself refused the bytes
                self._refuse("malformed", self.bounds.malformed)
            return
        if self._in_head and self._head_bytes > self.bounds.max_header_bytes:
            self._refuse("headers_too_large", self.bounds.too_large)

    def _should_upgrade(self) -> bool:
        """Never to a WebSocket, whatever uvicorn's ``ws`` option: no route takes one."""
        return False

    def on_headers_complete(self) -> None:
        if self._head_bytes > self.bounds.max_header_bytes and self._head_size() > (
            self.bounds.max_header_bytes
        ):  # what arrived held more than the head (a body): measure the head itself
            self._refuse("headers_too_large", self.bounds.too_large)
            raise _Refused  # stops the parser: no request is started
        self._in_head, self._head_since, self._head_bytes = False, 0.0, 0
        _headers_complete(self)

    def on_message_complete(self) -> None:
        _message_complete(self)
        self._in_head = True  # what follows is the next request's head

    def head_expired(self, now: float) -> bool:
        """Close the connection if its head has taken too long; called by the sweep."""
        since = self._head_since
        if not since or now - since <= self.bounds.header_timeout or self._refusal:
            return False
        self._count("header_timeout")
        self._refusal = b"-"
        self.transport.close()  # no answer: the client is not reading one (nginx does the same)
        return True

    def _head_size(self) -> int:
        return len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + _FRAMING

    def _refuse(self, reason: str, answer: bytes) -> None:
        """Answer ``answer`` and close; after the answers already under way, if any.

        Answers under way are those of earlier requests read whole (pipelined): they go
        out first, then the refusal (:meth:`on_response_complete`). A request refused
        after its head was read (``Transfer-Encoding: xchunked``, a malformed chunk) has a
        cycle of its own: the refusal is its answer, so the cycle is marked disconnected
        (whatever its app sends later is dropped, uvicorn's rule for a client that went
        away) and, if it waits behind earlier ones, taken out of the pipeline. Its own
        answer already begun, the connection closes once that answer ends."""
        self._count(reason)
        self._refusal = answer
        cycle = self.cycle
        if not self._in_head and cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # its answer is under way: it ends the exchange
                self._refusal = _CLOSE_ONLY
                return
            cycle.disconnected = True
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # an earlier answer runs: the refusal follows it
            else:  # it was running itself: nothing else is
                self._answer_refusal()
        elif cycle is None or cycle.response_complete:
            self._answer_refusal()

    def on_response_complete(self) -> None:
        """uvicorn's, then the refusal waiting for the last answer under way, if any."""
        last = not self.pipeline
        _response_complete(self)
        if last and self._refusal and not self.transport.is_closing():
            self._answer_refusal()

    def _answer_refusal(self) -> None:
        answer = self._refusal
        if answer != _CLOSE_ONLY:
            if self.ids is not None:  # a new ID: no request was read to take one from
                answer = answer.replace(
                    _CLOSE, b"x-request-id: " + self.ids.new() + b"\r\n" + _CLOSE, 1
                )
            self.transport.write(answer)
        self.transport.close()

    def _count(self, reason: str) -> None:
        if self.rejected is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1


# uvicorn's own callbacks, called directly rather than through super(): these run for every
# request, and a super() object costs more than the rest of each override.
_headers_complete = HttpToolsProtocol.on_headers_complete
_message_complete = HttpToolsProtocol.on_message_complete
_response_complete = HttpToolsProtocol.on_response_complete


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


def _closing_answer(error: EdgeError, *, cors: bool) -> bytes:
    """A complete response for ``error`` that closes the connection, as raw bytes."""
    status, headers, body = error_response(error, cors=cors)
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join([*lines, _CLOSE, b"\r\n", body])


_CLOSE = b"connection: close\r\n"
#: A refusal that writes nothing: the refused request's own answer was already begun.
_CLOSE_ONLY = b"close"


def _edge_of(config: Config) -> Any:
    """The Edge app uvicorn serves (unwrapped from any middleware), or None."""
    from edge.app import Edge

    app = config.loaded_app
    while app is not None and not isinstance(app, Edge):
        app = getattr(app, "app", None)
    return app


def _bounds(config: Config) -> Bounds:
    """The bounds for this server's connections, computed once per server."""
    bounds: Bounds | None = getattr(config, "edge_bounds", None)
    if bounds is None:
        edge = _edge_of(config)
        bounds = Bounds.of(edge.settings if edge is not None else Settings.from_env({}))
        config.edge_bounds = bounds  # type: ignore[attr-defined]
    return bounds


def _rejections(config: Config) -> dict[str, int] | None:
    """Where refused connections are counted: the app's metrics, if it keeps them."""
    edge = _edge_of(config)
    metrics = getattr(edge, "metrics", None)
    return None if metrics is None else metrics.stats.rejected


def _start_sweep(loop: asyncio.AbstractEventLoop, state: ServerState, timeout: float) -> None:
    """One repeating timer per server closes connections whose head takes too long."""
    if getattr(state, "edge_sweep", False):
        return
    state.edge_sweep = True  # type: ignore[attr-defined]
    period = min(SWEEP_SECONDS, timeout / 4)

    def sweep() -> None:
        now = loop.time()
        for connection in list(state.connections):
            if isinstance(connection, EdgeProtocol):
                connection.head_expired(now)
        if not loop.is_closed():
            loop.call_later(period, sweep)

    loop.call_later(period, sweep)


def fit_open_files(settings: Settings) -> int:
    """Raise the open-file limit to what the settings need, or say which setting cannot fit.

    Needed: a descriptor per client connection and per storage connection, and
    :data:`RESERVED_FILES`. The soft limit is raised as far as the hard one (a
    service manager's default soft limit, 1024, is far below either).
    """
    needed = settings.max_connections + settings.s3_max_connections + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"EDGE_MAX_CONNECTIONS: {settings.max_connections} connections need {needed} open"
            f" files, and this process may open at most {hard} (raise LimitNOFILE or ulimit -n,"
            " or lower EDGE_MAX_CONNECTIONS)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed

"""One kept-alive HTTP/1.1 connection to storage, as a state machine fed by httptools.

A kept-alive connection carries one answer after another, so the one rule that
keeps each request's bytes its own: it is reused only at the end of an answer
(every byte of it received; what was not read is dropped), and a connection
holding anything else (part of a body, bytes no request asked for) is closed.
Each request gets a fresh parser. Every failure is raised from its row of
:mod:`edge.storage.failures`, chosen by where in the exchange it happened.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from typing import Any, NoReturn

import httptools

from edge.storage.failures import (
    BODY_CUT,
    BODY_TIMEOUT,
    CLOSED_BEFORE_ANSWER,
    MALFORMED,
    STALE_CONNECTION,
    Fault,
    Row,
)

#: Reading from storage pauses while this much body waits for a slow client, and
#: resumes below the low mark: memory per download stays bounded.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class State(enum.Enum):
    """Where a connection is in its one exchange at a time. Only IDLE may carry a request,
    and only :meth:`Connection.finish` leads back to it, from DONE: a connection is reused
    at the end of an answer, never in the middle of one."""

    IDLE = "idle"  # between exchanges, holding nothing of an answer
    WAITING = "waiting"  # a request sent, its answer's head not complete
    BODY = "body"  # the head in, the body arriving
    DONE = "done"  # the whole answer in; some of its body may still be unread


IDLE, WAITING, BODY, DONE = State.IDLE, State.WAITING, State.BODY, State.DONE


class Connection(asyncio.Protocol):
    """One connection, carrying one request and response at a time.

    Anything no answer to the request explains (a second answer, a body after a HEAD's
    head, a byte while idle, an interim 1xx) marks the connection failed: it is closed,
    never reused. The answer already in hand stays readable.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.state = IDLE
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.received = False  # a byte of the current answer has arrived
        self.exchanges = 0  # requests sent on this connection, the current one included
        self.idle_since = 0.0
        self._head_only = False
        self._left = -1  # body bytes still to come; -1 when the answer gives no length
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._error: Fault | None = None

    # -- used by Pool and Response --------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self._error

    def send(self, request: bytes, *, head_only: bool) -> asyncio.Future[None]:
        """Write ``request``; the future resolves when the answer's headers are in."""
        if self.state is not IDLE or self._chunks:
            # Pool hands out only idle connections: this is a bug, and the one thing it
            # must never do is let an earlier answer's bytes be read as this one's.
            raise RuntimeError(f"storage connection not idle ({self.state.value}): not reused")
        if self.transport is None or not self.usable:  # closed by the store since
            raise self._error or Fault(CLOSED_BEFORE_ANSWER, how="closed", when="before a request")
        self.parser = httptools.HttpResponseParser(self)  # no parser state carries over
        self.state, self.status, self.headers, self.received = WAITING, 0, {}, False
        self._head_only, self._left = head_only, -1
        self.exchanges += 1
        self._head = self.loop.create_future()
        self.transport.write(request)
        return self._head

    async def read(self, timeout: float) -> bytes:
        """The next piece of body; ``b""`` at its end."""
        while not self._chunks:
            if self.state is DONE:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self.loop.create_future()
            await wait(self._waiter, timeout, BODY_TIMEOUT)
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def unreceived(self) -> int:
        """Body bytes of the current answer still to arrive; -1 when unknown."""
        return 0 if self.state is DONE else self._left if self.state is BODY else -1

    def finish(self) -> bool:
        """End the exchange. True when the connection may carry another: the whole answer
        is in (what of it was not read is dropped here) and both sides keep it alive."""
        if self.state is not DONE or not self.keep_alive or not self.usable:
            return False
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()  # so a close or a stray byte is seen while idle
        self.state = IDLE
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._fail(self._closed_row(), how="closed", when="by edge", detail="closed by edge")

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.state is not WAITING and self.state is not BODY:
            self._fail(MALFORMED, detail=f"bytes while {self.state.value}")
        else:
            self.received = True
            try:
                self.parser.feed_data(data)
                return
            except httptools.HttpParserError as error:  # the first reason is kept
                what = f"a malformed answer: {type(error).__name__} ({error})"
                self._fail(self._broken_row(), detail=what)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        how = "reset" if isinstance(exc, ConnectionResetError) else "closed"
        when = "mid-answer" if self.received else "before answering"
        self._fail(self._closed_row(), how=how, when=when, detail=f"connection {how} {when}")

    def _closed_row(self) -> Row:
        """Which failure a closed connection is: only a kept-alive one found closed before
        a byte of its answer is tried again for free (the store dropped it while idle)."""
        if self.state is BODY:
            return BODY_CUT
        reused = self.exchanges > 1 if self.state is WAITING else self.exchanges > 0
        return STALE_CONNECTION if reused and not self.received else CLOSED_BEFORE_ANSWER

    def _broken_row(self) -> Row:
        return BODY_CUT if self.state is BODY else MALFORMED

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.state is not WAITING:
            self._refuse("a second answer to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # edge never asks for one (no Expect: 100-continue)
            self._refuse(f"an interim {status} answer")
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if self._head_only:
            self.state = DONE  # a HEAD's answer has no body, whatever its length says
        else:
            self.state = BODY
            length = self.headers.get("content-length", "")
            self._left = int(length) if length.isdigit() else -1
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.state is not BODY:
            self._refuse("a body after a HEAD's answer")
        self._chunks.append(body)
        self._buffered += len(body)
        if self._left > 0:
            self._left -= len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.state is BODY:
            self.state, self._left = DONE, 0
            self._wake()
        elif not (self.state is DONE and self._head_only):  # a HEAD's parser may end it too
            self._refuse("the end of an answer that was not under way")

    def _refuse(self, what: str) -> NoReturn:
        """Stop parsing: the connection carries something no answer to the request explains."""
        self._fail(self._broken_row(), detail=what)
        assert self._error is not None
        raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, row: Row, **facts: object) -> None:
        if self._error is None:
            self._error = Fault(row, **facts)
        for future in (self._head, self._waiter):
            if future is not None and not future.done():
                future.set_exception(self._error)
                future.exception()  # retrieved: nobody may be waiting any more


async def wait(future: asyncio.Future[Any], timeout: float, row: Row, **facts: object) -> None:
    """Await ``future`` for at most ``timeout`` seconds, then raise ``row``'s timeout; a
    timer handle costs less than ``asyncio.wait_for``, on a path every miss takes."""
    if future.done():
        future.result()
        return
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    except asyncio.CancelledError:
        if expired:
            raise row.exception(timeout=f"{timeout:g}", **facts) from None
        raise
    finally:
        timer.cancel()

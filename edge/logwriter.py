"""Log output that never blocks the event loop: lines queue in memory, a thread writes them.

A log collector that stalls (a full pipe, a paused container runtime) must not
stall the service: one blocking ``write`` from the event loop freezes every
request and ``/healthz`` with it. So nothing edge or its server logs is written
by the caller. Callers append bytes to a queue bounded in bytes (not lines: a
line may be 8 KiB of escaped path); a daemon thread writes what accumulated
every ``interval``; past the bound, new lines are dropped and counted, and the
writer says how many once output flows again.

Two writers run per process: the access log on stdout (:mod:`edge.accesslog`,
started and stopped by the app's lifespan)
and every other message (edge's warnings, uvicorn's, tracebacks) on stderr,
through :class:`QueueHandler`, which :func:`install_logging` puts in place of
the stream handlers uvicorn and ``logging.basicConfig`` would use.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

from edge.requestid import RequestIdFilter

#: Bytes of messages (stderr) queued at most. Messages are rare: this is minutes of
#: warnings at a high rate, and 4 MiB of memory.
MESSAGE_BUFFER_BYTES = 4 * 1024 * 1024
#: uvicorn's loggers: their stream handlers are replaced. Two are switched off, since each
#: would print every URL with its signature (edge logs requests itself, ``sig`` redacted):
#: uvicorn's access log, and at ``--log-level trace`` its ASGI message log, which prints
#: each request's scope, query string included.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error")
_SERVER_URL_LOGGERS = ("uvicorn.access", "uvicorn.asgi")
#: ``request_id`` is `` request_id=...`` while a request is served, else empty
#: (edge.requestid.RequestIdFilter, on the handler).
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(request_id)s"


class LineWriter:
    """Lines of bytes for one file descriptor, written by a daemon thread.

    Thread safety without a lock: exactly one producer at a time appends (the
    event loop for the access log; the logging module serialises handlers), and
    the writer thread only pops. Each side owns one monotonic counter
    (``accepted``, ``taken``), so their difference is the queued bytes. Lines
    taken by the writer count until written: at most ``max_bytes`` are held,
    plus the one joined copy of a batch while it is being written.
    """

    def __init__(
        self,
        fd: int,
        *,
        max_bytes: int,
        name: str,
        interval: float = 0.02,
        stamp: Callable[[], bytes] | None = None,
    ) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self.name = name
        self.interval = interval
        #: Called once per batch; its bytes go before every line of the batch.
        self.stamp = stamp
        self.lines: deque[bytes] = deque()
        self.accepted = 0  # bytes ever queued (producer side)
        self.taken = 0  # bytes ever written or given up (writer side)
        self.dropped = 0  # lines refused for want of room (producer side)
        self._reported = 0  # drops already announced (writer side)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"edge-{name}", daemon=True)

    def start(self) -> None:
        """Start writing (lines put before are kept and written then)."""
        if not self._thread.is_alive() and not self._closing.is_set():
            self._thread.start()

    @property
    def queued(self) -> int:
        """Bytes waiting or being written."""
        return self.accepted - self.taken

    def put(self, line: bytes) -> None:
        """Queue ``line`` (it ends with a newline), or drop it if the queue is full."""
        size = len(line)
        if self.accepted - self.taken + size > self.max_bytes:
            self.dropped += 1
            return
        self.accepted += size
        self.lines.append(line)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout``), then stop the thread."""
        self._closing.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing.wait(self.interval):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        lines = self.lines
        count = len(lines)
        if count:
            batch = [lines.popleft() for _ in range(count)]
            size = sum(map(len, batch))
            stamp = self.stamp() if self.stamp is not None else b""
            _write(self.fd, stamp + stamp.join(batch))
            self.taken += size
        dropped = self.dropped
        if dropped != self._reported:
            lost, self._reported = dropped - self._reported, dropped
            if self is _installed:  # the messages' own stream: the notice goes in it
                _write(self.fd, b"log output too slow: %d messages dropped\n" % lost)
            else:  # through the messages' stream, which never blocks either
                logging.getLogger("edge").warning(
                    "%s log output too slow: %d lines dropped", self.name, lost
                )


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except InterruptedError:
            continue
        except OSError:
            return  # the stream is gone: drop the log rather than the service


class QueueHandler(logging.Handler):
    """A logging handler that formats on the caller's thread and queues the line."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad format string in a log call: say so, never block or raise
            line = f"unformattable log record from {record.name}: {record.msg!r:.200}"
        self.writer.put(line.encode("utf-8", "backslashreplace") + b"\n")

    def handleError(self, record: logging.LogRecord) -> None:
        """logging would print to stderr here, blocking: errors are dropped instead."""


_installed: LineWriter | None = None


def install_logging(level: int = logging.INFO) -> LineWriter:
    """Route every message of the process through one stderr :class:`LineWriter`.

    Replaces the plain stream handlers of the root logger and of uvicorn's loggers
    (others, such as a test runner's capture handlers, stay), turns off uvicorn's access
    log and its trace of ASGI messages (both print URLs, signatures included), and
    captures :mod:`warnings`. Idempotent: called by every entry point.
    """
    global _installed
    if _installed is not None:
        return _installed
    writer = LineWriter(2, max_bytes=MESSAGE_BUFFER_BYTES, name="messages")
    writer.start()
    handler = QueueHandler(writer)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [*(h for h in root.handlers if not _plain_stream(h)), handler]
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server = logging.getLogger(name)
        server.handlers = [h for h in server.handlers if not _plain_stream(h)]
        server.propagate = True
    for name in _SERVER_URL_LOGGERS:
        off = logging.getLogger(name)
        off.handlers, off.propagate, off.disabled = [], False, True
    logging.captureWarnings(True)
    atexit.register(writer.close)
    _installed = writer
    return writer


def _plain_stream(handler: logging.Handler) -> bool:
    """A handler that writes to a stream from the caller's thread (uvicorn's, basicConfig's)."""
    return type(handler) in (logging.StreamHandler, logging.FileHandler)

"""The access log: one JSON line per request on stdout, ``sig`` redacted, never blocking.

Lines are built on the event loop (by :class:`edge.observe.Observer`, which keeps
each kind of request's text) and written by a :class:`edge.logwriter.LineWriter`
thread, started and stopped by the app's lifespan.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable

from orjson import dumps

from edge.errors import NO_SLUG
from edge.logwriter import LineWriter
from edge.memo import Memo
from edge.proxies import ProxyPolicy
from edge.record import outcome_and_reason

REDACTED = b"[redacted]"
MAX_LOGGED_TARGET = 2048
#: Characters of a referer or user agent logged at most; a longer one ends with TRUNCATED.
MAX_LOGGED_HEADER = 512
TRUNCATED = "[truncated]"
#: Bytes of access-log lines queued at most while stdout is slow: a line is at most about
#: 14 KiB (a 4 KiB target, a referer and a user agent of 512 characters, all escaped), so
#: this holds over 500 of the worst and tens of thousands of ordinary ones.
ACCESS_LOG_BUFFER_BYTES = 8 * 1024 * 1024


class AccessLog:
    """JSON lines on a file descriptor (stdout), written by a :class:`LineWriter` thread.

    The event loop hands each line's bytes to the writer's queue: no lock, no
    wake-up, never a blocking write. A slow stdout (a full pipe, a stalled
    collector) delays the log, never a request; if it stalls until the queue
    holds ``max_bytes``, new lines are dropped and a warning counts them. Lines
    carry the second at which they were written (at most ``interval`` after the
    response ended, as nginx logs the time a request ends), so the clock is read
    once per batch, not once per request.

    A line is its duration, the client's part (:meth:`client_part`), the request's ID,
    the referer's and the user agent's parts (kept in ``referers`` and ``agents``, made
    by :meth:`referer_part` and :meth:`agent_part`), then its text (:meth:`text`, formatted
    once per kind of request and kept by :class:`Observer`, which looks up every part and
    joins the line on the event loop). The request ID needs no escaping (edge.requestid's alphabet).
    Formatting stays on the loop on purpose: queueing the request's scope for the
    thread measured 5x dearer in wall-clock CPU than formatting it, because
    thousands of live dicts per batch slow Python's cyclic garbage collector
    (bytes are not tracked by it); and rendering queued (duration, text) pairs in
    the thread, in C calls per batch, cost more in all than the loop saved.
    """

    def __init__(
        self,
        fd: int = 1,
        *,
        proxies: ProxyPolicy | None = None,
        interval: float = 0.02,
        max_bytes: int = ACCESS_LOG_BUFFER_BYTES,
    ) -> None:
        self.proxies = proxies or ProxyPolicy()
        self.proxied = bool(self.proxies.trusted)
        self.writer = LineWriter(
            fd, max_bytes=max_bytes, name="access", interval=interval, stamp=_stamp
        )
        self.lines = self.writer.lines
        self.put = self.writer.put
        # Each client's, referer's and user agent's part of a line, by its raw value.
        self.clients: Memo[str, bytes] = Memo()
        self.referers: Memo[bytes, bytes] = Memo()
        self.agents: Memo[bytes, bytes] = Memo()

    def client_part(self, client: str) -> bytes:
        """The line's part from the client to the request ID's opening quote, kept per client
        (a client's address is at most 64 characters: edge.proxies)."""
        part = self.clients.get(client)
        if part is None:
            part = _CLIENT + dumps(client) + _ID
            self.clients.remember(client, part, sys.getsizeof(client) + sys.getsizeof(part))
        return part

    def referer_part(self, referer: bytes) -> bytes:
        """A referer's part of a line, made and kept (the caller looked in ``referers``):
        escaped by orjson, cut to :data:`MAX_LOGGED_HEADER`, kept per value, since browsers
        and pages repeat and escaping costs more than a lookup. A referer may be a signed URL
        (a scraper's last fetch), so its ``sig`` is redacted as the path's is (the key stays
        the raw value: a lookup, then, as for any referer)."""
        return _field(self.referers, _REFERER, referer, redact_url(referer))

    def agent_part(self, agent: bytes) -> bytes:
        """A user agent's part of a line, made and kept (the caller looked in ``agents``)."""
        return _field(self.agents, _AGENT, agent)

    @staticmethod
    def text(facts: Facts) -> bytes:
        """A line after its client: JSON with the ``sig`` value redacted. Values a client
        controls (scheme, method, path) are escaped by orjson; the rest are ours. A refusal's
        line ends with its ``reason`` (``Record.outcome`` carries it); no other line has one."""
        scheme, method, path, query, status, sent, outcome, cache = facts
        target = path[:MAX_LOGGED_TARGET] + b"?" + redact(query) if query else path
        outcome, reason = outcome_and_reason(outcome)
        return _TEXT % (
            dumps(scheme),
            dumps(method),
            dumps(target[: 2 * MAX_LOGGED_TARGET].decode("latin-1")),
            status,
            sent,
            outcome.encode(),
            cache.encode(),
            b"" if reason == NO_SLUG else _REASON % reason.encode(),
        )

    def start(self) -> None:
        """Start the writer thread (the lifespan's start-up)."""
        self.writer.start()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the thread (the lifespan's shutdown)."""
        self.writer.close(timeout)


def _field(memo: Memo[bytes, bytes], key: bytes, value: bytes, shown: bytes = b"") -> bytes:
    """A referer's or user agent's part of a line (``key`` then the JSON of ``shown``, by
    default ``value`` itself), kept in ``memo`` under ``value`` (the caller looked there
    first)."""
    found = key + _json(shown or value)
    if len(value) <= MAX_LOGGED_HEADER:  # longer ones are cut: free to vary, never kept
        memo.remember(value, found, sys.getsizeof(value) + sys.getsizeof(found))
    return found


def _json(value: bytes) -> bytes:
    """A header's value as a JSON string: ``"-"`` when empty, cut (and marked) when long."""
    if not value:
        return b'"-"'
    if len(value) > MAX_LOGGED_HEADER:
        return dumps(value[:MAX_LOGGED_HEADER].decode("latin-1") + TRUNCATED)
    return dumps(value.decode("latin-1"))


def _stamp() -> bytes:
    return time.strftime(STAMP, time.gmtime()).encode()


#: What a line says but its time, duration and client: scheme, method, raw path, query,
#: status, bytes sent, outcome (a refusal's with its reason), cache. The same facts from
#: many clients share one text; two reasons are two outcomes, so never one text.
Facts = tuple[str, str, bytes, bytes, int, int, str, str]
#: Each line starts with the batch's second, then its duration: see AccessLog._flush.
STAMP = '{"time":"%Y-%m-%dT%H:%M:%SZ","duration_ms":'
#: A line's parts between its duration and its text (edge.observe): the client, the
#: request's ID, the referer and the user agent.
_CLIENT = b',"client":'
_ID = b',"request_id":"'
_REFERER = b'","referer":'
_AGENT = b',"user_agent":'
#: Each part when its header did not come (or came empty: the same "-").
NO_REFERER = _REFERER + b'"-"'
NO_AGENT = _AGENT + b'"-"'
Headers = Iterable[tuple[bytes, bytes]]
_TEXT = (
    b',"scheme":%s,"method":%s,"path":%s,"status":%d,"bytes":%d,"outcome":"%s","cache":"%s"%s}\n'
)
_REASON = b',"reason":"%s"'


# A ``sig`` parameter, however its name is escaped (``%73ig`` is a ``sig``: the spec decodes
# names), and in any letter case: edge ignores ``SIG=``, but its value is a genuine signature
# one lower-casing away from use (the shipped nginx configs redact it too). Matched after an
# ``&`` that redact() puts in front, so the replacement is static: one C call, a quarter of
# a split-and-decode loop.
_SIG_PARAM = re.compile(rb"&(?:s|%73)(?:i|%69)(?:g|%67)=[^&]*", re.IGNORECASE)


def redact_url(url: bytes) -> bytes:
    """A URL with its query's ``sig`` values redacted (:func:`redact`); one without ``?``
    as it is."""
    head, mark, query = url.partition(b"?")
    return head + mark + redact(query) if mark else url


def redact(query: bytes) -> bytes:
    """The query with every ``sig`` value replaced (and its name written plainly, ``sig``)."""
    return _SIG_PARAM.sub(b"&sig=" + REDACTED, b"&" + query)[1:]

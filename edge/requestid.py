"""Request IDs: one per request, echoed as ``X-Request-ID``, logged with the request.

An ``X-Request-ID`` is kept only from a trusted proxy (``EDGE_TRUSTED_PROXIES``:
the connection's own peer is in the list) and only if well-formed: 1 to
:data:`MAX_ID_CHARS` characters of ``A-Z a-z 0-9 . _ : -`` (what UUIDs, ULIDs,
nginx's ``$request_id`` and Cloudflare ray IDs are written in; nothing that
needs escaping in a header, a JSON string or a log line). Otherwise one is made:
this process's random prefix (48 bits from ``os.urandom``, drawn once) then a
counter in hex, at least three digits, ``3f9a0c1b7e42-01a`` — unique across
processes and restarts with overwhelming probability. Making one is two
concatenations (the counter's last three digits come from a table, the rest is
formatted once per 4,096 IDs): ``os.urandom`` per request would be a system
call, and formatting the counter each time costs twice as much (bench/README.md).

Messages logged about a request carry ``request_id=`` (:class:`RequestIdFilter`,
installed by :func:`edge.logwriter.install_logging`), taken from :data:`current`,
a context variable (each request runs in a task of its own). Setting it costs
about 1,600 instructions, 5% of edge's own work on a cached hit, which logs
nothing: so it is set where a request leaves that path, before anything
that can warn (a storage read, a transform, a large body's streaming, a route
other than images and ``/auth``, which logs nothing; an unexpected error), by
:func:`name_in_logs`.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

from starlette.types import Scope

from edge.proxies import ProxyPolicy

#: The longest ``X-Request-ID`` kept from a trusted proxy.
MAX_ID_CHARS = 128
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_ID_CHARS)
HEADER = b"x-request-id"
#: A made ID's last three hex digits, by the counter's low 12 bits.
_LOW = tuple(b"%03x" % low for low in range(4096))

#: The ID of the request being served, in the task that serves it (b"" outside one).
current: ContextVar[bytes] = ContextVar("edge_request_id", default=b"")
#: Names the request that messages logged from here on in this task are about.
name_in_logs = current.set


def well_formed(value: bytes) -> bool:
    return _WELL_FORMED.fullmatch(value) is not None


class RequestIds:
    """Assigns each request its ID: a trusted proxy's, if well-formed, else a new one."""

    def __init__(self, proxies: ProxyPolicy | None = None) -> None:
        self.proxies = proxies or ProxyPolicy()
        self.prefix = os.urandom(6).hex().encode() + b"-"
        self.count = 0
        self._stem = self.prefix  # the prefix and the counter's digits above the last three

    def new(self) -> bytes:
        count = self.count = self.count + 1
        low = count & 0xFFF
        if not low:
            self._stem = b"%s%x" % (self.prefix, count >> 12)
        return self._stem + _LOW[low]

    def of(self, scope: Scope) -> bytes:
        """The request's ID: a trusted proxy's ``X-Request-ID``, else a new one (made here as
        :meth:`new` makes it: a second call would cost about 350 instructions)."""
        if self.proxies.trusted:
            kept = self._forwarded(scope)
            if kept is not None:
                return kept
        count = self.count = self.count + 1
        low = count & 0xFFF
        if not low:
            self._stem = b"%s%x" % (self.prefix, count >> 12)
        return self._stem + _LOW[low]

    def _forwarded(self, scope: Scope) -> bytes | None:
        """A trusted peer's well-formed ``X-Request-ID``, or None."""
        peer = scope.get("client")
        if peer and self.proxies.is_trusted(peer[0]):
            value: bytes
            for name, value in scope["headers"]:
                if name == HEADER:
                    return value if _WELL_FORMED.fullmatch(value) is not None else None
        return None


class RequestIdFilter(logging.Filter):
    """Gives a log record ``request_id``: `` request_id=...`` while a request is served,
    else empty (the format's ``%(request_id)s``). On edge's logger, so the ID is taken
    where the message is logged; on the stderr handler too, for every other logger's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = current.get()
            record.request_id = " request_id=" + rid.decode("ascii") if rid else ""
        return True


logging.getLogger("edge").addFilter(RequestIdFilter())

"""Request IDs: one per request, echoed as ``X-Request-ID``, logged with the request.

An ``X-Request-ID`` is kept only from a trusted proxy (``EDGE_TRUSTED_PROXIES``:
the connection's own peer is in the list) and only if well-formed: 1 to
:data:`MAX_ID_CHARS` characters of ``A-Z a-z 0-9 . _ : -`` (what UUIDs, ULIDs,
nginx's ``$request_id`` and Cloudflare ray IDs are written in; nothing that
needs escaping in a header, a JSON string or a log line). Otherwise one is made:
this process's random prefix (48 bits from ``os.urandom``, drawn once) then a
counter in hex, ``3f9a0c1b7e42-1a`` — unique across processes and restarts with
overwhelming probability, and a few hundred instructions, where ``os.urandom``
per request is a system call.

While a request is served, :data:`current` holds its ID (a context variable:
each request runs in a task of its own), so every message logged about it
carries ``request_id=`` (:class:`RequestIdFilter`, installed by
:func:`edge.logwriter.install_logging`).
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

#: The ID of the request being served, in the task that serves it (b"" outside one).
current: ContextVar[bytes] = ContextVar("edge_request_id", default=b"")


def well_formed(value: bytes) -> bool:
    return _WELL_FORMED.fullmatch(value) is not None


class RequestIds:
    """Assigns each request its ID: a trusted proxy's, if well-formed, else a new one."""

    def __init__(self, proxies: ProxyPolicy | None = None) -> None:
        self.proxies = proxies or ProxyPolicy()
        self.prefix = os.urandom(6).hex().encode() + b"-"
        self.count = 0

    def new(self) -> bytes:
        self.count += 1
        return b"%s%x" % (self.prefix, self.count)

    def of(self, scope: Scope) -> bytes:
        """The request's ID (and it becomes :data:`current` in the caller's context)."""
        proxies = self.proxies
        if proxies.trusted:
            peer = scope.get("client")
            if peer and proxies.is_trusted(peer[0]):
                value: bytes
                for name, value in scope["headers"]:
                    if name == HEADER:
                        if _WELL_FORMED.fullmatch(value) is not None:
                            current.set(value)
                            return value
                        break
        self.count += 1
        rid = b"%s%x" % (self.prefix, self.count)
        current.set(rid)
        return rid


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

"""``Server-Timing`` and ``Timing-Allow-Origin`` on image responses (``EDGE_SERVER_TIMING``,
``EDGE_TIMING_ALLOW_ORIGIN``).

``Server-Timing: cache;desc=hit, storage;dur=0.000, verify;dur=0.021`` and, when a
transform ran for this request, ``transform;dur=…``: milliseconds, to the
microsecond. ``cache`` is ``hit`` (the hot cache answered), ``miss`` (storage was
read, by this request or by the one it waited for) or ``none`` (refused before
any read). ``storage`` is the time this request spent getting its object or its
transform's source (a read slot's wait included), 0 on a hit.

Off (the default), the pipeline pays one attribute check before the signature
check and one at the response head: no clock read, no header.
``Timing-Allow-Origin`` lets a page of another origin read these (and the
Resource Timing details) in its performance tools: ``*``, or a list of origins,
of which the request's ``Origin`` is echoed when listed (with ``Vary: Origin``).
"""

from __future__ import annotations

import time

from starlette.types import Scope

from edge.image.request import ImageRequest
from edge.record import Record
from edge.responses import Header
from edge.signing import Grant, Verifier

_CACHE = {"hit": b"hit", "miss": b"miss", "shared": b"miss", "bypass": b"miss"}
VARY_ORIGIN: Header = (b"vary", b"Origin")


class Timings:
    """One request's durations, in seconds (``transform`` negative when none ran)."""

    __slots__ = ("storage", "transform", "verify")

    def __init__(self) -> None:
        self.verify = 0.0
        self.storage = 0.0
        self.transform = -1.0


class ServerTiming:
    """The headers ``EDGE_SERVER_TIMING`` and ``EDGE_TIMING_ALLOW_ORIGIN`` add."""

    def __init__(self, *, on: bool, allow_origin: tuple[str, ...]) -> None:
        self.on = on
        self.any_origin: tuple[Header, ...] = (
            ((b"timing-allow-origin", b"*"),) if "*" in allow_origin else ()
        )
        self.origins = frozenset(o.encode("ascii") for o in allow_origin if o != "*")

    def verify(self, verifier: Verifier, request: ImageRequest, record: Record) -> Grant | None:
        """The signature's verdict, timed."""
        timing = record.timing = Timings()
        started = time.perf_counter()
        try:
            return verifier.verify(request.path, request.query)
        finally:
            timing.verify = time.perf_counter() - started

    def headers(self, record: Record, scope: Scope) -> list[Header]:
        headers: list[Header] = []
        if self.on:
            timing = record.timing
            value = b"cache;desc=" + _CACHE.get(record.cache, b"none")
            if timing is not None:
                value += b", storage;dur=%.3f, verify;dur=%.3f" % (
                    timing.storage * 1000,
                    timing.verify * 1000,
                )
                if timing.transform >= 0:
                    value += b", transform;dur=%.3f" % (timing.transform * 1000)
            headers.append((b"server-timing", value))
        if self.any_origin:
            headers += self.any_origin
        elif self.origins:
            headers.append(VARY_ORIGIN)
            for name, origin in scope["headers"]:
                if name == b"origin":
                    if origin in self.origins:
                        headers.append((b"timing-allow-origin", origin))
                    break
        return headers


def server_timing(on: bool, allow_origin: tuple[str, ...]) -> ServerTiming | None:
    """What the settings ask for, or None: then the pipeline adds nothing."""
    return ServerTiming(on=on, allow_origin=allow_origin) if on or allow_origin else None

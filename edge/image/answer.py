"""Answer: the response head for what the read step found, by the header policy of
:mod:`edge.responses`, and the Cache-Control policy shared with ``/auth``.

A cached whole object keeps its headers (all but Cache-Control, which may depend
on the URL's ``exp``) on its cache entry, built by its first hit: a hit then
costs one list of prebuilt pairs.

Headers stored with an object (S3 metadata, checked safe to send by the storage): its
Content-Encoding is always sent on (the bytes are sent as stored, ranges and ETag over
them; edge never decodes, whatever the client's Accept-Encoding); Cache-Control,
Content-Disposition and Content-Language only of a public object, and only those
EDGE_S3_PASS_HEADERS names. A private object's Cache-Control is always edge's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache

from edge.http import effective_type
from edge.image.read import Found
from edge.responses import (
    ACCEPT_RANGES,
    ATTACHMENT,
    CORS_ANY,
    NOSNIFF,
    Header,
    last_modified_header,
)
from edge.responses import type_headers as content_type_headers
from edge.signing import Grant
from edge.storage import Stat


class CachePolicy:
    """Public: the configured max-age. Private: never past ``exp``, nor past the cap.
    ``/auth`` tells its proxy the same header, from the same object."""

    def __init__(
        self, *, public_max_age: int, private_max_age: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.public: Header = (b"cache-control", f"public, max-age={public_max_age}".encode())
        self.private_max_age = private_max_age
        self.clock = clock

    def __call__(self, *, private: bool, grant: Grant | None) -> Header:
        if private and grant is not None:
            return self.private_until(grant.exp)
        return self.public

    def private_until(self, expires: int) -> Header:
        """``private, max-age=`` the seconds left before ``expires``, capped."""
        left = expires - int(self.clock())
        if left > self.private_max_age:
            left = self.private_max_age
        elif left < 0:
            left = 0
        return (b"cache-control", b"private, max-age=%d" % left)


class Headers:
    """The response head of an image answer. (Plain methods, not ``__call__``: CPython 3.11
    calls an instance through a slower, generic path; 1,600 instructions of a hit.)"""

    def __init__(
        self, *, policy: CachePolicy, cors: bool, passed: frozenset[str] = frozenset()
    ) -> None:
        self.policy = policy
        # Headers every image response carries, computed once.
        self.common: tuple[Header, ...] = (ACCEPT_RANGES, NOSNIFF) + ((CORS_ANY,) if cors else ())
        self.stored_control = "cache-control" in passed  # a public object's, instead of ours
        self.passed = passed - {"cache-control"}  # the others, sent on by build()

    def head(self, found: Found, grant: Grant | None, path: str) -> list[Header]:
        policy = self.policy
        control = policy.private_until(grant.exp) if found.private and grant else policy.public
        if self.stored_control and not found.private:
            stored = found.reply.stat.stored("cache-control")
            if stored is not None:
                control = stored_header("cache-control", stored)
        entry = found.entry
        if entry is not None and found.reply.status == 200:  # a cached whole object
            kept = entry.headers
            if kept is None:
                kept = entry.headers = self.build(found, path)
            return [control, *kept]
        return [control, *self.build(found, path)]

    def build(self, found: Found, path: str) -> list[Header]:
        """Every header but Cache-Control."""
        reply = found.reply
        stat = reply.stat
        headers = [(b"etag", stat.etag.encode("latin-1")), *self.common]
        if stat.last_modified > 0:
            headers.append(last_modified_header(stat.last_modified))
        if reply.status == 304:
            return headers
        typed = content_type_headers(effective_type(stat.content_type, path))
        headers.extend(typed)
        if stat.metadata:
            headers.extend(self.stored(stat, private=found.private, typed=typed))
        if (length := reply.length) >= 0:  # else unknown (a store sent it chunked): so is ours
            headers.append((b"content-length", str(length).encode()))
        if reply.status == 206:
            headers.append(
                (b"content-range", f"bytes {reply.start}-{reply.end}/{stat.size}".encode())
            )
        return headers

    def stored(self, stat: Stat, *, private: bool, typed: tuple[Header, ...]) -> list[Header]:
        """The stored headers sent on (Cache-Control is :meth:`head`'s): Content-Encoding
        always; the others named by EDGE_S3_PASS_HEADERS, of a public object only, and a
        Content-Disposition never where edge's own ``attachment`` keeps a type that is no
        image from being rendered."""
        sent = []
        for name, value in stat.metadata:
            if name != "content-encoding":
                if private or name not in self.passed:
                    continue
                if name == "content-disposition" and ATTACHMENT in typed:
                    continue
            sent.append(stored_header(name, value))
        return sent


@lru_cache(maxsize=1024)
def stored_header(name: str, value: str) -> Header:
    """A stored header as sent (its value checked ASCII by the storage)."""
    return (name.encode("ascii"), value.encode("ascii"))

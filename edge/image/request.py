"""Parse: what an image request asks for, read from the ASGI scope before anything is judged.

The method, the path (decoded and checked against the v1 rules of
:mod:`edge.paths`), the query as sent (the signature parameters are the
verifier's to read), the headers that shape a read (``Range`` and the
conditionals; with the access log on, the same scan notes the referer and the
user agent on the request's record), and the transform parameters
(:mod:`edge.transform_params`), judged here, before the signature and before
any storage request: a malformed or repeated one is ``400``.
"""

from __future__ import annotations

import sys

from starlette.types import Scope

from edge.errors import MethodNotAllowed
from edge.http import parse_range
from edge.memo import Memo
from edge.paths import request_path
from edge.record import Record
from edge.storage.base import NO_CONDITIONS, Conditions
from edge.transform_params import ParsedTransforms, Transform

#: Longer raw paths are validated every time, never remembered.
PATH_MEMO_KEY_BYTES = 1024
#: Request headers that shape a read; most requests carry none of them.
_SHAPING = frozenset((b"range", b"if-none-match", b"if-modified-since", b"if-range"))
#: The same and the two the access log writes (edge.observe.Observer.finish).
_SHAPING_OR_LOGGED = _SHAPING | {b"referer", b"user-agent"}


class ImageRequest:
    """One parsed ``GET``/``HEAD /i/{user}/{file}``."""

    __slots__ = ("conditions", "head", "path", "plain", "query", "transform")

    def __init__(
        self,
        path: str,
        query: bytes,
        head: bool,
        conditions: Conditions,
        transform: Transform | None = None,
    ) -> None:
        self.path = path  # decoded and validated: "/i/{user}/{file}"
        self.query = query  # raw, as sent
        self.head = head
        self.conditions = conditions
        #: A GET of the whole object with no conditions: what a cache hit answers whole.
        self.plain = conditions is NO_CONDITIONS and not head
        self.transform = transform  # None: the stored object, as stored


class Parser:
    """Turns a scope into an :class:`ImageRequest`, or raises the error that refuses it."""

    def __init__(self, *, logged: bool = False) -> None:
        #: The access log is on: the one scan of the headers also notes the referer and the
        #: user agent on the request's record, so the observer need not scan them again.
        self.logged = logged
        # Raw path -> validated path. Paths repeat, and the rules cost as much as the rest
        # of a cached hit: measured saving in bench/README.md (the memos' table).
        self.paths: Memo[bytes, str] = Memo()
        self.transforms = ParsedTransforms()

    def parse(self, scope: Scope, record: Record | None = None) -> ImageRequest:
        method = scope["method"]
        head = method == "HEAD"
        if not head and method != "GET":
            raise MethodNotAllowed(f"method {method}")
        raw = scope.get("raw_path") or scope["path"].encode()
        path = self.paths.get(raw)
        if path is None:
            path = self.validate(raw)
        query = scope["query_string"]
        return ImageRequest(
            path,
            query,
            head,
            (
                conditions_noting(scope["headers"], record)
                if self.logged and record is not None
                else conditions(scope["headers"])
            ),
            self.transforms.parse(query) if query else None,
        )

    def validate(self, raw: bytes) -> str:
        """Decode and check a raw path (raising if it breaks the rules), kept for the next
        request of it unless it is long (free to pad: it would crowd the memo)."""
        path = request_path(raw)
        if len(raw) <= PATH_MEMO_KEY_BYTES:
            self.paths.remember(raw, path, sys.getsizeof(raw) + sys.getsizeof(path))
        return path


def conditions(headers: list[tuple[bytes, bytes]]) -> Conditions:
    """The headers that shape a read, in one pass over the request's headers."""
    for name, _ in headers:
        if name in _SHAPING:
            break
    else:
        return NO_CONDITIONS  # most requests: no object to build
    return _build(headers)


def conditions_noting(headers: list[tuple[bytes, bytes]], record: Record) -> Conditions:
    """:func:`conditions`, noting the raw ``Referer`` and ``User-Agent`` (the last of each,
    None when absent) on ``record`` for the access log, in the same one pass: a second
    scan by the observer cost about 400 instructions per header (bench/README.md)."""
    referer = agent = None
    shaped = False
    for name, value in headers:
        if name in _SHAPING_OR_LOGGED:  # one test per header: a browser sends a dozen
            if name == b"referer":
                referer = value
            elif name == b"user-agent":
                agent = value
            else:
                shaped = True
    record.referer = referer
    record.agent = agent
    return _build(headers) if shaped else NO_CONDITIONS


def _build(headers: list[tuple[bytes, bytes]]) -> Conditions:
    """The conditions of a request that sent at least one header that shapes a read."""
    ranges: list[bytes] = []
    if_range = if_none_match = if_modified_since = None
    for name, value in headers:
        if name == b"range":
            ranges.append(value)
        elif name == b"if-none-match":  # repeated fields form one list
            text = value.decode("latin-1")
            if_none_match = text if if_none_match is None else f"{if_none_match}, {text}"
        elif name == b"if-modified-since":
            if_modified_since = value.decode("latin-1")
        elif name == b"if-range":
            if_range = value.decode("latin-1")
    spec = parse_range(ranges[0].decode("latin-1")) if len(ranges) == 1 else None
    return Conditions(spec, if_range, if_none_match, if_modified_since)

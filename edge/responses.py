"""Response headers, computed once where possible, and the one place errors become HTTP.

Header policy is a set of named constants, each with its reason, so a reviewer
can see what every response promises and why.
"""

from __future__ import annotations

from functools import lru_cache

import orjson

from edge.errors import EdgeError, MethodNotAllowed, Overloaded, RangeNotSatisfiable
from edge.http import http_date

Header = tuple[bytes, bytes]

#: Browsers must never sniff a user's upload into HTML or script.
NOSNIFF: Header = (b"x-content-type-options", b"nosniff")
#: SVG can carry script and external references: opened directly, it runs
#: sandboxed, loads nothing, and keeps only inline styles.
SVG_POLICY: Header = (
    b"content-security-policy",
    b"default-src 'none'; style-src 'unsafe-inline'; sandbox",
)
#: What is not an image is downloaded, never rendered on the edge's origin.
ATTACHMENT: Header = (b"content-disposition", b"attachment")
OCTET_STREAM: Header = (b"content-type", b"application/octet-stream")
#: An error describes one request at one moment: no cache may keep it.
NO_STORE: Header = (b"cache-control", b"no-store")
#: Any page may draw our images into a canvas (<img crossorigin>); the value
#: never varies, so no `Vary: Origin` is needed.
CORS_ANY: Header = (b"access-control-allow-origin", b"*")
ACCEPT_RANGES: Header = (b"accept-ranges", b"bytes")
ALLOW: Header = (b"allow", b"GET, HEAD")
JSON: Header = (b"content-type", b"application/json")


@lru_cache(maxsize=256)
def type_headers(content_type: str) -> tuple[Header, ...]:
    """Content-Type and the safety headers that go with it."""
    if content_type == "image/svg+xml":
        return ((b"content-type", b"image/svg+xml"), SVG_POLICY)
    if content_type.startswith("image/"):
        return ((b"content-type", content_type.encode("latin-1")),)
    return (OCTET_STREAM, ATTACHMENT)


@lru_cache(maxsize=1024)
def last_modified_header(epoch: int) -> Header:
    return (b"last-modified", http_date(epoch).encode("ascii"))


def error_body(code: str, message: str, status: int) -> bytes:
    """The API's error shape."""
    return orjson.dumps({"error": {"code": code, "message": message, "status": status}})


_ERROR_PARTS: dict[tuple[type[EdgeError], bool], tuple[bytes, list[Header]]] = {}


def _error_parts(kind: type[EdgeError], cors: bool) -> tuple[bytes, list[Header]]:
    """Body and headers of an error kind, built once: they depend on nothing else."""
    parts = _ERROR_PARTS.get((kind, cors))
    if parts is None:
        parts = _ERROR_PARTS[kind, cors] = _build_error_parts(kind, cors)
    return parts


def _build_error_parts(kind: type[EdgeError], cors: bool) -> tuple[bytes, list[Header]]:
    body = error_body(kind.code, kind.message, kind.status)
    headers = [JSON, (b"content-length", str(len(body)).encode()), NO_STORE, NOSNIFF]
    if cors:
        headers.append(CORS_ANY)  # so a page's script can read why an image failed
    if kind is MethodNotAllowed:
        headers.append(ALLOW)
    return body, headers


def error_response(error: EdgeError, *, cors: bool) -> tuple[int, list[Header], bytes]:
    """Status, headers and body for an error: only its fixed code and message, never its reason."""
    body, headers = _error_parts(type(error), cors)
    if isinstance(error, RangeNotSatisfiable):
        headers = [*headers, (b"content-range", f"bytes */{error.size}".encode())]
    elif isinstance(error, Overloaded):
        headers = [*headers, (b"retry-after", str(error.retry_after).encode())]
    return error.status, headers, body

"""Image path rules of the v1 contract, as pure functions shared by signer, verifier and server.

The signed string holds the *decoded* path, so the edge decodes the raw request
path itself (strict UTF-8, unlike ``scope["path"]``, which replaces bad bytes)
and validates it before anything else looks at it. A validated path needs no
splitting on the hot path: its storage key is ``{visibility}/`` + ``path[3:]``.
"""

from __future__ import annotations

import re
from typing import NoReturn
from urllib.parse import quote, unquote_to_bytes

from edge.errors import BadRequest

PREFIX = "/i/"
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
MAX_USER_CHARS = 64

# The user, then a file part free of control bytes, DEL and backslash. Segment
# structure ("//", trailing "/", dot segments) is checked with plain string tests,
# which cost less than a regex that would express it.
_SHAPE = re.compile(r"/i/[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}/[^\x00-\x1f\x7f\\]+")
_USER = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


def decode_path(raw: bytes) -> str:
    """Percent-decode a raw request path into the string that gets signed.

    Invalid UTF-8 after decoding (``%ff``, overlong forms) is malformed, as the
    spec says; ``scope["path"]`` would have hidden it behind U+FFFD.
    """
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "path is not valid UTF-8 once percent-decoded", slug="path_not_utf8"
        ) from None


def validate_path(path: str) -> str:
    """Return a decoded ``/i/{user}/{file}`` path unchanged if the spec allows it, else raise."""
    if _SHAPE.fullmatch(path) is None or "//" in path or path[-1] == "/":
        _refuse_shape(path)
    if "/." in path and ("/./" in path or "/../" in path or path.endswith(("/.", "/.."))):
        raise BadRequest("path has a '.' or '..' segment", slug="dot_segment")
    if len(path) > MAX_SEGMENT_BYTES // 4:  # shorter paths cannot hold too long a segment
        size = len(path.encode("utf-8"))
        if size > MAX_PATH_BYTES:
            raise BadRequest(
                f"path is {size} bytes, the limit is {MAX_PATH_BYTES}", slug="path_too_long"
            )
        if size > MAX_SEGMENT_BYTES:
            for segment in path.split("/"):
                if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
                    raise BadRequest(
                        f"a segment is longer than {MAX_SEGMENT_BYTES} bytes",
                        slug="segment_too_long",
                    )
    return path


def request_path(raw: bytes) -> str:
    """Decode and validate a raw request path in one step: what the server calls."""
    if len(raw) > 3 * MAX_PATH_BYTES:  # too long even if every byte were escaped
        raise BadRequest(f"path is over {MAX_PATH_BYTES} bytes", slug="path_too_long")
    return validate_path(decode_path(raw))


def split_path(path: str) -> tuple[str, str]:
    """``(user, file)`` of a validated path."""
    user, _, file = path[len(PREFIX) :].partition("/")
    return user, file


def _refuse_shape(path: str) -> NoReturn:
    """Refuse a shape failure, saying which; only called on the error path, so it may be
    slow."""
    if not path.startswith(PREFIX):
        raise BadRequest("path does not start with /i/", slug="path_prefix")
    user, _, file = path[len(PREFIX) :].partition("/")
    if not _USER.fullmatch(user):
        raise BadRequest(
            f"user must be 1 to {MAX_USER_CHARS} characters of A-Z a-z 0-9 _ . -,"
            " not starting with '.'",
            slug="user_malformed",
        )
    if not file:
        raise BadRequest("path names no file", slug="no_file")
    if _FORBIDDEN.search(file):
        raise BadRequest("path holds a control byte or a backslash", slug="control_byte")
    raise BadRequest("path has an empty segment ('//' or a trailing '/')", slug="empty_segment")


def quote_path(path: str) -> str:
    """Percent-encode a decoded path for a URL, as signers must: only ``A-Za-z0-9-._~/`` stay."""
    return quote(path, safe="/")

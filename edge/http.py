"""HTTP semantics as pure functions: Range, conditional requests, dates, content-type policy.

Both storages answer through these (the filesystem one directly; the S3 one by
forwarding only what these functions accept), so the two behave the same and
nothing malformed ever reaches the storage server.
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

from edge.errors import RangeNotSatisfiable

#: A syntactic single byte range: ``(first, last)`` inclusive, ``(first, None)``
#: open-ended, or ``(None, n)`` for the last n bytes.
RangeSpec = tuple[int | None, int | None]

# One range; the unit is case-insensitive and a list may hold empty elements (RFC 9110 5.6.1).
_RANGE = re.compile(r"(?i:bytes)[ \t]*=[ \t,]*(\d{0,19})[ \t]*-[ \t]*(\d{0,19})[ \t,]*", re.ASCII)
_ETAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
# If-Range's entity-tag: exactly one, strong (RFC 9110 13.1.5).
_STRONG_ETAG = re.compile(r'[ \t]*("[\x21\x23-\x7e\x80-\xff]*")[ \t]*')
_FALLBACK_TYPE = "application/octet-stream"
# What S3 and similar stores report for objects uploaded without a type.
_UNTYPED = frozenset({"", "binary/octet-stream", "application/octet-stream"})
# A bare media type; a stored type is uploader-controlled, so anything else is ignored.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+\-]{0,126}")
# Image types by extension, fixed here: mimetypes reads /etc/mime.types, which
# differs from machine to machine, and the edge must answer the same everywhere.
IMAGE_TYPES = {
    "avif": "image/avif",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "ico": "image/vnd.microsoft.icon",
    "jpe": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "jxl": "image/jxl",
    "png": "image/png",
    "svg": "image/svg+xml",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
}


def parse_range(header: str) -> RangeSpec | None:
    """The one byte range a ``Range`` header asks for, or None to serve the whole body.

    Several ranges, another unit or anything unparsable are None: the whole body
    with 200 is always a correct answer to a Range request.
    """
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if not last:
            return (start, None)
        end = int(last)
        return (start, end) if start <= end else None
    return (None, int(last)) if last else None


def resolve_range(spec: RangeSpec, size: int) -> tuple[int, int]:
    """Clamp a range to an object of ``size`` bytes: ``(start, end)`` inclusive, or 416."""
    first, last = spec
    if first is None:
        assert last is not None
        if last == 0 or size == 0:
            raise RangeNotSatisfiable("empty suffix range or empty object", size=size)
        return (max(size - last, 0), size - 1)
    if first >= size:
        raise RangeNotSatisfiable(f"range starts at {first}, object has {size} bytes", size=size)
    return (first, size - 1 if last is None or last >= size else last)


def range_header(spec: RangeSpec) -> str:
    """The canonical form of a range, the only one forwarded to storage."""
    first, last = spec
    return f"bytes={'' if first is None else first}-{'' if last is None else last}"


def entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """``(weak, tag)`` pairs of an If-None-Match list; ``[]`` for ``*``; None for garbage."""
    header = header.strip()
    if header == "*":
        return []
    tags, pos = [], 0
    while pos < len(header):
        match = _ETAG.match(header, pos)
        if match is None or match.end() == pos:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        pos = match.end()
    return tags or None


def none_match(header: str | None, etag: str) -> bool | None:
    """Does If-None-Match match (weak comparison)? None when the header is absent or garbage."""
    if header is None:
        return None
    tags = entity_tags(header)
    if tags is None:
        return None
    opaque = etag.removeprefix("W/")
    return not tags or any(tag == opaque for _, tag in tags)


def parse_http_date(text: str | None) -> int | None:
    """Unix seconds of an HTTP date (IMF-fixdate, RFC 850 or asctime), None if not one."""
    if not text or len(text) > 64:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone: it is GMT by definition
        return int(when.replace(tzinfo=UTC).timestamp())
    return int(when.timestamp())


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def is_not_modified(
    *, if_none_match: str | None, if_modified_since: str | None, etag: str, last_modified: int
) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when it is usable, else If-Modified-Since."""
    matched = none_match(if_none_match, etag)
    if matched is not None:
        return matched
    since = parse_http_date(if_modified_since)
    return since is not None and last_modified <= since


def parse_if_range(header: str) -> str | int | None:
    """An If-Range's validator: one strong entity-tag (quoted, the form compared and sent on)
    or an HTTP date (Unix seconds). None for anything else (a list, a weak tag, garbage):
    such an If-Range never holds, so the whole object is the answer."""
    match = _STRONG_ETAG.fullmatch(header)
    if match is not None:
        return match.group(1)
    return parse_http_date(header.strip())


def if_range_holds(if_range: str | None, *, etag: str, last_modified: int) -> bool:
    """Whether a Range may be honoured: no If-Range, or one that matches strongly (a weak
    ETag, ``W/"..."``, equals no parsed tag; a date must equal Last-Modified)."""
    if if_range is None:
        return True
    validator = parse_if_range(if_range)
    if isinstance(validator, str):
        return validator == etag
    return validator is not None and validator == last_modified


def guess_type(name: str) -> str:
    """Media type from the file name: the fixed image table, else a download. Never the
    machine's mimetypes: which extensions render inline must not differ between hosts (nor
    between edge and the nginx config that reproduces this table)."""
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    return IMAGE_TYPES.get(extension, _FALLBACK_TYPE)


def effective_type(stored: str | None, name: str) -> str:
    """The stored type when it is a real, well-formed one (parameters dropped), else the name's."""
    if stored:
        bare = stored.partition(";")[0].strip().lower()
        if bare not in _UNTYPED and _MEDIA_TYPE.fullmatch(bare):
            return bare
    return guess_type(name)

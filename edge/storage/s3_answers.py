"""Reading S3's answers: a refusal classified into its row of the failure table, a body a
chunk at a time (a chunked one read ahead), the lengths and ranges an answer must get
right, and a listing's keys (each failure raised from its row of
:mod:`edge.storage.failures`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote_plus
from xml.parsers import expat

from edge.errors import EdgeError
from edge.http import parse_http_date
from edge.storage.base import CHUNK_BYTES, Prefixed, Reply, Stat
from edge.storage.failures import (
    BAD_LISTING,
    BODY_CUT,
    NO_LENGTH,
    NO_SUCH_BUCKET,
    NOT_THE_OBJECT,
    WRONG_PART,
    Fault,
    Row,
    Silence,
    answer_row,
)
from edge.storage.wire import Response

#: The longest error document read: S3's are a few hundred bytes; a longer body is not
#: read to its end (its connection is closed instead).
ERROR_DOCUMENT_BYTES = 4096
#: A listing asks for at most this many names (objects, and subfolders as one name each)
#: beginning with the stem and a dot: a folder holds a handful (photo.jpg, photo.webp...).
#: S3 returns names in order, so in a folder with more, a source that sorts after the
#: first LIST_KEYS is not seen (one request per listing, never a second page).
LIST_KEYS = 64
#: The longest listing read: LIST_KEYS entries of S3's longest key (1,024 bytes, each up
#: to 6 once escaped for XML as ``&quot;``, 3 once URL-encoded) with their other elements
#: (some 500 bytes), and the listing's own prefix, rounded up: 448 KiB. A longer answer
#: is no listing S3 sends: refused, never read whole.
LIST_BYTES = LIST_KEYS * 7 * 1024
#: Where a listing's keys are, and where it says how they are encoded.
_KEY = ("ListBucketResult", "Contents", "Key")
_ENCODING = ("ListBucketResult", "EncodingType")
_LENGTH = re.compile(r"[0-9]{1,20}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,20})-([0-9]{1,20})/([0-9]{1,20})")
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_REGION = re.compile(rb"<Region>([a-z0-9-]{1,32})</Region>")
_OBJECT_SIZE = re.compile(rb"<ActualObjectSize>(\d{1,20})</ActualObjectSize>")
#: The headers S3 stores with an object (set at upload) that edge may send on: the
#: Content-Encoding always, the others where EDGE_S3_PASS_HEADERS names them.
STORED_HEADERS = ("content-encoding", "cache-control", "content-disposition", "content-language")
#: A stored header's value edge sends on: visible ASCII and spaces, not starting or
#: ending with a space, at most 1,024 characters. No CR, LF or other control character
#: (a value that could end the header and start another is never sent), no byte past
#: ASCII (HTTP/1.1 gives them no meaning). A value that is not is dropped.
_SAFE_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?")
#: A Content-Encoding: a comma-separated list of codings (RFC 9110 tokens).
_CODINGS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An S3 answer that is not a success, read and classified."""

    row: Row
    status: int
    code: str  # S3's error code, "" when it sent no document (every HEAD)
    region: str  # the bucket's region, if S3 named it
    size: int  # the object's size, if a 416 said it; else -1
    headers: Mapping[str, str]
    attempts: int  # made, this one included

    def exception(self, **facts: object) -> EdgeError:
        """The row's error; ``facts`` add what S3 did not say (the key, the bucket...)."""
        answer = f"{self.status} {self.code}".rstrip()
        region = self.region or "(not named)"
        return self.row.exception(
            size=self.size, answer=answer, region=region, attempts=self.attempts, **facts
        )


def refusal(
    status: int,
    headers: Mapping[str, str],
    document: bytes,
    *,
    bucket: bool = False,
    attempts: int = 1,
) -> Refusal:
    """Classify an answer of status 300 or more. ``bucket``: it answers a HEAD of the bucket
    itself, where a 404 can only mean there is no such bucket."""
    found = _CODE.search(document)
    code = found.group(1).decode("latin-1") if found else ""
    region = headers.get("x-amz-bucket-region", "")
    if not region and (named := _REGION.search(document)):
        region = named.group(1).decode("ascii")
    size = _OBJECT_SIZE.search(document)
    if bucket and status == 404:
        row = NO_SUCH_BUCKET
    elif status == 404 and document and not found:  # a page, but no S3 error document
        row = NOT_THE_OBJECT
    else:
        row = answer_row(status, code)
    size_said = int(size.group(1)) if size else -1
    return Refusal(row, status, code, region, size_said, headers, attempts)


class S3Chunks:
    """An S3 body a chunk at a time; a short body is an error, never a clean end. A chunked
    body (``length`` -1) ends at its last chunk; one cut before it is BODY_CUT too."""

    def __init__(self, response: Response, length: int, key: str) -> None:
        self._response, self._left, self._key = response, length, key

    def __aiter__(self) -> S3Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left == 0:
            raise StopAsyncIteration
        try:
            data = await self._response.read()
        except (Fault, Silence) as error:  # BODY_TIMEOUT or BODY_CUT: the key is known here
            raise error.again(key=self._key) from None
        if not data:
            if self._left < 0:  # chunked: aiohttp saw its last chunk
                raise StopAsyncIteration
            detail = f"it ended {self._left} bytes early"
            endpoint = self._response.endpoint
            raise BODY_CUT.exception(key=self._key, endpoint=endpoint, detail=detail)
        if self._left > 0:
            self._left -= len(data)
        return data

    async def aclose(self) -> None:
        self._response.release()  # kept if the body is all in (even unread), else closed


async def unsized(response: Response, stat: Stat, key: str) -> Reply:
    """A whole object sent chunked, read ahead up to CHUNK_BYTES: one that ends there is an
    object of known size (read whole, its connection released); else the rest streams
    after what was read, its size unknown (``Stat.size`` and the reply's end -1)."""
    chunks = S3Chunks(response, -1, key)
    held: list[bytes] = []
    size = 0
    while size <= CHUNK_BYTES:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            response.release()
            data = b"".join(held)
            return Reply(200, replace(stat, size=len(data)), 0, len(data) - 1, None, data)
        held.append(chunk)
        size += len(chunk)
    return Reply(200, stat, 0, -1, Prefixed(b"".join(held), chunks))


async def error_document(response: Response) -> bytes:
    try:
        return await response.read_all(ERROR_DOCUMENT_BYTES)
    except (Fault, Silence):
        return b""


def length_of(headers: Mapping[str, str], key: str) -> int:
    text = headers.get("content-length")
    if text is None or not _LENGTH.fullmatch(text):
        raise NO_LENGTH.exception(key=key, detail=f"Content-Length {text!r:.40}")
    return int(text)


def span_of(text: str, key: str) -> tuple[int, int, int]:
    """First and last byte, and size, of a ``Content-Range``."""
    found = _CONTENT_RANGE.fullmatch(text)
    if found is None:
        raise WRONG_PART.exception(key=key, detail=f"Content-Range {text!r:.60}")
    first, last, size = found.groups()
    return int(first), int(last), int(size)


def stat_of(headers: Mapping[str, str], size: int) -> Stat:
    return Stat(
        size=size,
        etag=headers.get("etag", '""'),
        last_modified=parse_http_date(headers.get("last-modified")) or 0,
        content_type=headers.get("content-type"),
        metadata=stored_headers(headers),
    )


def not_modified_stat(headers: Mapping[str, str]) -> Stat:
    """What a ``304`` says of the object: its validators (an empty ETag, a 0 date where it
    names none: s3rver's name neither), and the stored headers it repeats."""
    return Stat(
        size=-1,
        etag=headers.get("etag", ""),
        last_modified=parse_http_date(headers.get("last-modified")) or 0,
        content_type=None,
        metadata=stored_headers(headers),
    )


def stored_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The :data:`STORED_HEADERS` an answer carries whose values are safe to send on (see
    :data:`_SAFE_VALUE`); a Content-Encoding must also be a list of codings, and is
    dropped when it says ``identity`` (no coding at all)."""
    found = []
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is None or not _SAFE_VALUE.fullmatch(value):
            continue
        if name == "content-encoding" and (
            not _CODINGS.fullmatch(value) or value.lower() == "identity"
        ):
            continue
        found.append((name, value))
    return tuple(found)


async def listing(response: Response, what: str) -> list[str]:
    """The keys of a ListObjectsV2 answer, as stored (see :func:`listed_keys`), read within
    :data:`LIST_BYTES`; ``what`` names the listing for the log. The answer is released."""
    try:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > LIST_BYTES:
            raise BAD_LISTING.exception(key=what, detail=f"{length} bytes, over {LIST_BYTES}")
        try:
            document = await response.read_all(LIST_BYTES + 1)
        except (Fault, Silence) as error:  # BODY_TIMEOUT or BODY_CUT
            raise error.again(key=what) from None
        if len(document) > LIST_BYTES:
            raise BAD_LISTING.exception(key=what, detail=f"over {LIST_BYTES} bytes")
    finally:
        response.release()  # kept if all of it was read, else closed
    return listed_keys(document, what)


def listed_keys(document: bytes, what: str) -> list[str]:
    """The ``<Contents><Key>`` of a ``ListBucketResult`` document, in its order, URL-decoded
    when the document says ``<EncodingType>url</EncodingType>`` (edge asks for it: XML
    1.0 cannot carry every character a key may hold; a store that ignores it sends keys
    as XML text). Common prefixes (subfolders) are not keys. A document with a DTD (the
    only way to declare an entity), or anything but such a document, is BAD_LISTING."""
    reader = _Listing()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = reader.refuse_doctype
    parser.EntityDeclHandler = reader.refuse_doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text.append
    try:
        parser.Parse(document, True)
    except expat.ExpatError as error:
        raise BAD_LISTING.exception(key=what, detail=f"not XML ({error})") from None
    except _NotAListing as refused:
        raise BAD_LISTING.exception(key=what, detail=str(refused)) from None
    if reader.encoding == "url":
        return [unquote_plus(key) for key in reader.keys]
    return reader.keys


class _NotAListing(Exception):
    pass


class _Listing:
    """The expat handlers of :func:`listed_keys`: what they found, where they are."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.encoding = ""
        self.path: list[str] = []  # the open elements' local names, the root first
        self.text: list[str] = []  # the text since the last tag

    def refuse_doctype(self, *_: object) -> None:
        raise _NotAListing("a document type declaration")

    def start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]  # namespace URI, space, local name
        if not self.path and local != "ListBucketResult":
            raise _NotAListing(f"a {local[:40]!r} document, not a ListBucketResult")
        self.path.append(local)
        self.text.clear()

    def end(self, name: str) -> None:
        where = tuple(self.path)
        if where == _KEY:
            self.keys.append("".join(self.text))
        elif where == _ENCODING:
            self.encoding = "".join(self.text)
        self.path.pop()
        self.text.clear()

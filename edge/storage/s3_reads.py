"""An object read from S3 under the request's conditions: a conditional GET, checked.

The Range and the conditions S3 evaluates reliably (a single ETag, a date) are
forwarded in their canonical form, and every condition is checked again here
on the reply (:func:`edge.storage.base.decide`), so the answers match the
filesystem backend's exactly: a ``304`` S3 sent without validators is
revalidated on a HEAD, an ``If-Range`` that did not hold reads the whole object,
a part is checked against the range asked and cut to it (:mod:`edge.storage.s3_parts`).

A body sent chunked (no ``Content-Length``) is read ahead (:func:`unsized`); a
Range is forwarded as ever: a part's ``Content-Range`` gives its length, and a
store that ignores the Range sends the whole object.

:class:`S3Reads` holds the bucket's :class:`edge.storage.s3_requests.S3Client`
(which signs, sends and retries) and the key prefix, nothing else: the bucket's
facade (:class:`edge.storage.s3.S3Storage`) hands it each read.
"""

from __future__ import annotations

from dataclasses import replace

from edge.errors import RangeNotSatisfiable
from edge.http import entity_tags, http_date, parse_http_date, parse_if_range, range_header
from edge.storage.base import CHUNK_BYTES, Conditions, Reply, Stat, decide, read_whole
from edge.storage.failures import (
    MISSING_PART,
    NO_LENGTH,
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    UNASKED_PART,
    WRONG_PART,
)
from edge.storage.s3_answers import (
    S3Chunks,
    length_of,
    not_modified_stat,
    span_of,
    stat_of,
    unsized,
)
from edge.storage.s3_parts import Slice, cut
from edge.storage.s3_requests import S3Client
from edge.storage.sigv4 import object_path
from edge.storage.wire import Response


class S3Reads:
    """GETs and HEADs of objects, their answers decided as the folder storage decides."""

    def __init__(self, client: S3Client, prefix: str) -> None:
        self._client = client
        self._prefix = prefix  # the storage's, empty or ending in ``/``

    async def head(self, key: str, conditions: Conditions) -> Reply:
        """A HEAD of ``key``, decided under ``conditions`` on the validators S3 sent."""
        response = await self._object("HEAD", key, [])
        response.release()
        stat = stat_of(response.headers, response.length)  # none: UNKNOWN_SIZE
        status, start, end = decide(stat, conditions)
        return Reply(status, stat, start, end, None)

    async def get(self, key: str, conditions: Conditions, *, again: bool = False) -> Reply:
        """A GET under ``conditions``; ``again``: a retry after a wrong part (see
        :mod:`edge.storage.s3_parts`), whose own wrong part is an error."""
        headers: list[tuple[str, str]] = []
        tags = entity_tags(conditions.if_none_match or "")
        if tags and len(tags) == 1:
            headers.append(("if-none-match", tags[0][1]))
        elif tags is None and (since := parse_http_date(conditions.if_modified_since)) is not None:
            headers.append(("if-modified-since", http_date(since)))
        use_range = conditions.range is not None
        if use_range and conditions.if_range is not None:
            validator = parse_if_range(conditions.if_range)
            if validator is None:
                use_range = False  # a list, a weak tag or garbage never holds: the whole object
            elif isinstance(validator, str):  # one strong tag, re-rendered: S3 says 412 if not
                headers.append(("if-match", validator))
        if use_range:
            headers.append(("range", range_header(conditions.range)))  # type: ignore[arg-type]
        try:
            response = await self._object("GET", key, headers)
        except _NotModified as not_modified:
            if not any(name.startswith("if-") and name != "if-match" for name, _ in headers):
                detail = "304 to a GET without If-None-Match or If-Modified-Since"
                raise UNASKED_PART.exception(key=key, detail=detail) from None
            if not_modified.stat.etag and not_modified.stat.last_modified:
                return Reply(304, not_modified.stat, 0, -1, None)
            return await self._revalidated(key, conditions)
        except _PreconditionFailed:  # If-Range did not hold: the whole object
            return await self.get(key, replace(conditions, range=None, if_range=None))
        except RangeNotSatisfiable as error:
            if error.size < 0:
                head = await self._object("HEAD", key, [])
                head.release()
                error.size = length_of(head.headers, key)
            raise
        try:
            return await self._reply(key, response, conditions, again=again)
        except BaseException:
            response.release()
            raise

    async def _reply(
        self, key: str, response: Response, conditions: Conditions, *, again: bool = False
    ) -> Reply:
        """The answer checked against what was asked (:mod:`edge.storage.s3_parts`): the
        decision the folder storage makes, on the validators S3 sent, and exactly its bytes."""
        headers = response.headers
        length = response.length
        if length < 0 and not response.chunked:  # ends when the connection does: a cut one too
            raise NO_LENGTH.exception(key=key, detail="neither a Content-Length nor chunked")
        content_range = headers.get("content-range")
        span = None if content_range is None else span_of(content_range, key)
        if span is not None and length < 0:  # a part, chunked: as long as its range
            length = span[1] - span[0] + 1
        stat = stat_of(headers, length if span is None else span[2])
        status, start, end = decide(stat, conditions)  # the decision the files backend makes
        if status == 304:  # a condition S3 did not evaluate (a list of ETags, "*")
            await response.drain()  # the object's bytes, unread: never the next answer's
            return Reply(304, stat, 0, -1, None)
        answered = (0, stat.size - 1) if span is None else span[:2]
        if length != answered[1] - answered[0] + 1:
            detail = f"{length} bytes for a span of {answered[1] - answered[0] + 1}"
            raise WRONG_PART.exception(key=key, detail=detail)
        if status == 200 and span is not None:
            if conditions.range is None:
                raise UNASKED_PART.exception(key=key, detail=f"{content_range:.60}")
            await response.drain()  # If-Range failed here: the whole object, once
            return await self.get(key, replace(conditions, range=None, if_range=None))
        if length < 0:  # a whole object sent chunked (its size unknown): read ahead
            whole = await unsized(response, stat, key)
            if whole.data is None:  # longer than a chunk: the whole object, streamed
                return whole
            status, start, end = decide(whole.stat, conditions)  # its size known now
            return Reply(status, whole.stat, start, end, None, whole.data[start : end + 1])
        chunks = S3Chunks(response, length, key)
        where = cut(answered, (start, end))
        if where is None:  # the store left out some of the asked bytes
            if again:
                detail = f"bytes {answered[0]}-{answered[1]} for a request of {start}-{end}"
                raise MISSING_PART.exception(key=key, detail=detail)
            await response.drain()
            return await self.get(key, replace(conditions, range=(start, end)), again=True)
        skip, take = where
        if length <= CHUNK_BYTES:
            data = await read_whole(chunks)
            return Reply(status, stat, start, end, None, data[skip : skip + take])
        if (skip, take) == (0, length):
            return Reply(status, stat, start, end, chunks)
        return Reply(status, stat, start, end, Slice(chunks, skip, take))

    async def _revalidated(self, key: str, conditions: Conditions) -> Reply:
        """A ``304`` naming no ETag or no Last-Modified (s3rver's name neither): the
        validators come from a HEAD of the object, and the conditions are decided on them
        here; if they no longer hold (the object changed in between), the object is read
        without them (a ``200`` is always a correct answer to a conditional GET)."""
        head = await self._object("HEAD", key, [])
        head.release()
        stat = stat_of(head.headers, length_of(head.headers, key))
        if decide(stat, conditions)[0] == 304:
            return Reply(304, stat, 0, -1, None)
        fresh = replace(conditions, if_none_match=None, if_modified_since=None)
        return await self.get(key, fresh)  # a 304 to it is UNASKED_PART: no loop

    async def _object(self, method: str, key: str, headers: list[tuple[str, str]]) -> Response:
        """A GET or HEAD of ``key``: a success, or the error its refusal's row says."""
        client = self._client
        path = client.bucket_path + object_path(None, self._prefix + key)
        answer = await client.send(method, path, headers, key=key)
        if isinstance(answer, Response):
            return answer
        if answer.row is NOT_MODIFIED:
            raise _NotModified(not_modified_stat(answer.headers))
        if answer.row is PRECONDITION_FAILED:
            raise _PreconditionFailed
        raise answer.exception(**client.facts(key))


class _NotModified(Exception):
    def __init__(self, stat: Stat) -> None:
        self.stat = stat


class _PreconditionFailed(Exception):
    pass

"""An S3 bucket (or MinIO, Ceph, R2...) as storage, through one aiobotocore client.

One client lives as long as the process (opened in the lifespan), with a pool
of connections, connect and read timeouts and bounded retries. A GET is one
request: the Range and the conditions S3 evaluates reliably (a single ETag, a
date) are forwarded in their canonical form, and every condition is checked
again here on the reply, so the answers match the filesystem backend's exactly.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from edge.errors import NotFound, RangeNotSatisfiable, StorageError, StorageTimeout
from edge.http import entity_tags, parse_http_date, range_header
from edge.storage.base import (
    CHUNK_BYTES,
    Conditions,
    Reply,
    Stat,
    Storage,
    decide,
    read_whole,
)

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_TIMEOUTS = (ConnectTimeoutError, ReadTimeoutError, asyncio.TimeoutError)


class S3Storage(Storage):
    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        max_connections: int = 64,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._endpoint_url = endpoint_url
        self._region = region
        self._config = AioConfig(
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # total_max_attempts counts the first request; botocore's max_attempts would not.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            # Custom endpoints (MinIO, moto, Ceph) rarely have wildcard DNS.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        client = get_session().create_client(
            "s3", endpoint_url=self._endpoint_url, region_name=self._region, config=self._config
        )
        self._client = await self._stack.enter_async_context(client)

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def check(self) -> None:
        await self._call("head_bucket", Bucket=self.bucket)

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        if head:
            response = await self._call("head_object", Bucket=self.bucket, Key=self.prefix + key)
            stat = _stat(response, response["ContentLength"])
            status, start, end = decide(stat, conditions)
            return Reply(status, stat, start, end, None)
        return await self._get(key, conditions)

    async def _get(self, key: str, conditions: Conditions) -> Reply:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key}
        tags = entity_tags(conditions.if_none_match or "")
        if tags and len(tags) == 1:
            request["IfNoneMatch"] = tags[0][1]
        elif tags is None and (since := parse_http_date(conditions.if_modified_since)) is not None:
            request["IfModifiedSince"] = datetime.fromtimestamp(since, UTC)
        use_range = conditions.range is not None
        if use_range and conditions.if_range is not None:
            if_range = conditions.if_range.strip()
            if if_range.startswith('"'):
                request["IfMatch"] = if_range
            elif parse_http_date(if_range) is None:
                use_range = False  # a weak or unreadable If-Range never holds
        if use_range:
            request["Range"] = range_header(conditions.range)  # type: ignore[arg-type]
        try:
            response = await self._call("get_object", **request)
        except _NotModified as not_modified:
            return Reply(304, not_modified.stat, 0, -1, None)
        except _PreconditionFailed:  # If-Range did not hold: the whole object
            return await self._get(key, replace(conditions, range=None, if_range=None))
        except RangeNotSatisfiable as error:
            if error.size < 0:
                head = await self._call("head_object", Bucket=self.bucket, Key=self.prefix + key)
                error.size = head["ContentLength"]
            raise
        return await self._reply(key, response, conditions)

    async def _reply(self, key: str, response: dict[str, Any], conditions: Conditions) -> Reply:
        body = response["Body"]
        content_range = response.get("ContentRange")
        size = int(content_range.rpartition("/")[2]) if content_range else response["ContentLength"]
        stat = _stat(response, size)
        status, _, _ = decide(stat, conditions)  # the decision the files backend makes
        if status == 304:  # a condition S3 did not evaluate (a list of ETags, "*")
            body.close()
            return Reply(304, stat, 0, -1, None)
        if status == 200 and content_range:  # If-Range failed here: the whole object, once
            body.close()
            return await self._get(key, replace(conditions, range=None, if_range=None))
        if content_range:
            span = content_range.removeprefix("bytes ").partition("/")[0]
            first, _, last = span.partition("-")
            status, start, end = 206, int(first), int(last)
        else:  # the whole object, also a correct answer to a Range a store ignored
            status, start, end = 200, 0, size - 1
        chunks = S3Chunks(body, end - start + 1, key)
        if end - start + 1 <= CHUNK_BYTES:
            data = await read_whole(chunks)
            return Reply(status, stat, start, end, None, data)
        return Reply(status, stat, start, end, chunks)

    async def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One S3 call, its failures turned into the edge's errors (retries are botocore's)."""
        try:
            result: dict[str, Any] = await getattr(self._client, operation)(**request)
        except ClientError as error:
            raise _client_error(error, request.get("Key", "")) from None
        except _TIMEOUTS as error:
            raise StorageTimeout(f"S3 {operation}: {type(error).__name__}") from None
        except (BotoCoreError, OSError) as error:
            raise StorageError(f"S3 {operation}: {type(error).__name__}: {error}") from None
        return result


class S3Chunks:
    """An S3 body a chunk at a time; a short body is an error, never a clean end."""

    def __init__(self, body: Any, length: int, key: str) -> None:
        self._body, self._left, self._key = body, length, key

    def __aiter__(self) -> S3Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            raise StopAsyncIteration
        try:
            data: bytes = await self._body.read(min(CHUNK_BYTES, self._left))
        except _TIMEOUTS:
            raise StorageTimeout(f"S3 body of {self._key} stalled") from None
        except Exception as error:  # aiohttp payload errors, IncompleteReadError, resets
            raise StorageError(f"S3 body of {self._key}: {type(error).__name__}") from None
        if not data:
            raise StorageError(f"S3 body of {self._key} ended {self._left} bytes early")
        self._left -= len(data)
        return data

    async def aclose(self) -> None:
        self._body.close()  # releases the pooled connection (closing it if unread)


class _NotModified(Exception):
    def __init__(self, stat: Stat) -> None:
        self.stat = stat


class _PreconditionFailed(Exception):
    pass


def _stat(response: dict[str, Any], size: int) -> Stat:
    modified = response.get("LastModified")
    return Stat(
        size=size,
        etag=response.get("ETag", '""'),
        last_modified=int(modified.timestamp()) if modified else 0,
        content_type=response.get("ContentType"),
    )


def _client_error(error: ClientError, key: str) -> Exception:
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _MISSING or status == 404:
        return NotFound(f"no object {key}")
    if code == "304" or status == 304:
        headers = error.response["ResponseMetadata"].get("HTTPHeaders", {})
        modified = parse_http_date(headers.get("last-modified")) or 0
        return _NotModified(Stat(-1, headers.get("etag", '""'), modified, None))
    if code == "PreconditionFailed" or status == 412:
        return _PreconditionFailed()
    if code == "InvalidRange" or status == 416:
        size = str(info.get("ActualObjectSize", ""))
        return RangeNotSatisfiable(
            "S3: range not satisfiable", size=int(size) if size.isdigit() else -1
        )
    return StorageError(f"S3 answered {status} {code} for {key}")

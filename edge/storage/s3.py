"""An S3 bucket (or MinIO, Ceph, R2...) as storage, read over edge's own HTTP client.

A cold miss is one GET: signed here (:mod:`edge.storage.sigv4`), sent on a
kept-alive connection from a bounded pool (:mod:`edge.storage.wire`). botocore
is no longer on that path: its generic request pipeline (hooks, models,
parsers) cost more CPU per object than the whole edge request around it. It
still finds the credentials (environment, profiles, web identity, instance
roles, refreshed before they expire) and the region.

The Range and the conditions S3 evaluates reliably (a single ETag, a date) are
forwarded in their canonical form, and every condition is checked again here
on the reply, so the answers match the filesystem backend's exactly.
Connection errors, timeouts before the answer, 500, 502, 503, 504 and 429 are
retried up to ``max_attempts`` in all, with a short jittered backoff: an image
request is better failed fast than held for seconds.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from edge.errors import ConfigError, NotFound, RangeNotSatisfiable, StorageError, StorageTimeout
from edge.http import entity_tags, http_date, parse_http_date, parse_if_range, range_header
from edge.storage.base import CHUNK_BYTES, Conditions, Reply, Stat, Storage, decide, read_whole
from edge.storage.config import S3Settings
from edge.storage.sigv4 import Credentials, Signer, object_path
from edge.storage.wire import Pool, Response

#: Answers worth another attempt (AWS's "transient" and throttling statuses).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Backoff before attempt n+1: a random share of min(BACKOFF_CAP, BACKOFF_BASE * 2**n).
BACKOFF_BASE, BACKOFF_CAP = 0.025, 0.5
#: Temporary credentials are looked at again this often (botocore refreshes them
#: well before expiry; a static key is read once).
CREDENTIALS_SECONDS = 60.0
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_OBJECT_SIZE = re.compile(rb"<ActualObjectSize>(\d{1,20})</ActualObjectSize>")
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def find_credentials() -> bool:
    """Whether the AWS chain holds credentials; checked before the server starts, so a
    missing one is a one-line error. (Temporary ones are only located, not fetched.)"""
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


class S3Storage(Storage):
    kind = "s3"

    def __init__(self, *, bucket: str, prefix: str = "", settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._endpoint_url = settings.endpoint_url
        self._region = settings.region
        self._max_connections = settings.max_connections
        self._connect_timeout = settings.connect_timeout
        self._read_timeout = settings.read_timeout
        self._max_attempts = settings.max_attempts
        self._pool: Pool | None = None
        self._signer = Signer(region=settings.region or "us-east-1")
        self._host = ""  # the Host header, port included when not the scheme's default
        self._bucket_path = ""  # "/bucket" for path-style addressing, "" for virtual-hosted
        self._source: Any = None  # botocore's credentials, refreshed by botocore
        self._credentials = Credentials("", "")
        self._credentials_until = 0.0

    async def open(self) -> None:
        from aiobotocore.session import get_session  # the credential chain only

        session = get_session()
        region = self._region or session.get_config_variable("region") or "us-east-1"
        self._signer = Signer(region=region)
        self._source = await session.get_credentials()
        if self._source is None:  # find_credentials() said there were some
            raise ConfigError("EDGE_STORAGE: the AWS credentials are gone")
        await self._fresh_credentials()
        if self._endpoint_url:  # MinIO, Ceph, moto: path-style, rarely wildcard DNS
            parts = urlsplit(self._endpoint_url)
            tls = parts.scheme == "https"
            host, port = parts.hostname or "", parts.port or (443 if tls else 80)
            self._bucket_path = object_path(None, self.bucket)
        elif _DNS_BUCKET.fullmatch(self.bucket):  # AWS, virtual-hosted
            tls, host, port = True, f"{self.bucket}.s3.{region}.amazonaws.com", 443
        else:  # dots in the name break the wildcard certificate: path-style
            tls, host, port = True, f"s3.{region}.amazonaws.com", 443
            self._bucket_path = object_path(None, self.bucket)
        self._host = host if port == (443 if tls else 80) else f"{host}:{port}"
        self._pool = Pool(
            host=host,
            port=port,
            tls=ssl.create_default_context() if tls else None,
            limit=self._max_connections,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def check(self) -> None:
        response = await self._send("HEAD", self._bucket_path or "/", [])
        response.release()
        if response.status != 200:
            raise StorageError(f"S3 answered {response.status} for bucket {self.bucket}")

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        if head:
            response = await self._object("HEAD", key, [])
            response.release()
            stat = _stat(response.headers, _int(response.headers.get("content-length")))
            status, start, end = decide(stat, conditions)
            return Reply(status, stat, start, end, None)
        return await self._get(key, conditions)

    async def _get(self, key: str, conditions: Conditions) -> Reply:
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
            return Reply(304, not_modified.stat, 0, -1, None)
        except _PreconditionFailed:  # If-Range did not hold: the whole object
            return await self._get(key, replace(conditions, range=None, if_range=None))
        except RangeNotSatisfiable as error:
            if error.size < 0:
                head = await self._object("HEAD", key, [])
                head.release()
                error.size = _int(head.headers.get("content-length"))
            raise
        try:
            return await self._reply(key, response, conditions)
        except BaseException:
            response.release()
            raise

    async def _reply(self, key: str, response: Response, conditions: Conditions) -> Reply:
        headers = response.headers
        content_range = headers.get("content-range")
        length = _int(headers.get("content-length"))
        size = int(content_range.rpartition("/")[2]) if content_range else length
        stat = _stat(headers, size)
        status, _, _ = decide(stat, conditions)  # the decision the files backend makes
        if status == 304:  # a condition S3 did not evaluate (a list of ETags, "*")
            await response.drain()  # the object's bytes, unread: never the next answer's
            return Reply(304, stat, 0, -1, None)
        if content_range and conditions.range is None:
            raise StorageError(f"S3 sent a part of {key} nobody asked for: {content_range:.60}")
        if status == 200 and content_range:  # If-Range failed here: the whole object, once
            await response.drain()
            return await self._get(key, replace(conditions, range=None, if_range=None))
        if content_range:
            span = content_range.removeprefix("bytes ").partition("/")[0]
            first, _, last = span.partition("-")
            status, start, end = 206, int(first), int(last)
        else:  # the whole object, also a correct answer to a Range a store ignored
            status, start, end = 200, 0, size - 1
        if length != end - start + 1:
            raise StorageError(f"S3 sent {length} bytes for a span of {end - start + 1}")
        chunks = S3Chunks(response, length, key)
        if length <= CHUNK_BYTES:
            return Reply(status, stat, start, end, None, await read_whole(chunks))
        return Reply(status, stat, start, end, chunks)

    async def _object(self, method: str, key: str, headers: list[tuple[str, str]]) -> Response:
        """A GET or HEAD of ``key`` with its answer's status mapped to edge's errors."""
        response = await self._send(
            method, self._bucket_path + object_path(None, self.prefix + key), headers
        )
        if response.status < 300:
            return response
        try:
            body = b"" if method == "HEAD" else await _error_document(response)
        finally:
            response.release()
        raise _status_error(response, body, key)

    async def _send(self, method: str, path: str, headers: list[tuple[str, str]]) -> Response:
        """One request, retried on connection errors, silence and transient statuses."""
        assert self._pool is not None, "S3Storage.open() was not awaited"
        if time.monotonic() >= self._credentials_until:
            await self._fresh_credentials()
        attempt = 1
        while True:
            signed = self._signer.headers(method, self._host, path, self._credentials)
            lines = [f"{method} {path} HTTP/1.1\r\nhost: {self._host}\r\n"]
            lines += [f"{name}: {value}\r\n" for name, value in (*signed, *headers)]
            request = "".join(lines).encode("latin-1") + b"\r\n"
            try:
                response = await self._pool.request(request, head_only=method == "HEAD")
            except (StorageError, StorageTimeout):
                if attempt >= self._max_attempts:
                    raise
            else:
                if response.status not in RETRY_STATUSES or attempt >= self._max_attempts:
                    return response
                try:
                    if method != "HEAD":
                        await _error_document(response)  # read, so the connection is kept
                finally:
                    response.release()
            await asyncio.sleep(random.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
            attempt += 1

    async def _fresh_credentials(self) -> None:
        try:
            frozen = await self._source.get_frozen_credentials()
        except Exception as error:  # an unreachable metadata service, a bad profile
            raise StorageError(f"S3 credentials: {type(error).__name__}") from None
        self._credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        refreshable = hasattr(self._source, "refresh_needed")
        self._credentials_until = time.monotonic() + CREDENTIALS_SECONDS if refreshable else 1e300


class S3Chunks:
    """An S3 body a chunk at a time; a short body is an error, never a clean end."""

    def __init__(self, response: Response, length: int, key: str) -> None:
        self._response, self._left, self._key = response, length, key

    def __aiter__(self) -> S3Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            raise StopAsyncIteration
        try:
            data = await self._response.read()
        except StorageTimeout:
            raise StorageTimeout(f"S3 body of {self._key} stalled") from None
        except StorageError as error:
            raise StorageError(f"S3 body of {self._key}: {error.reason}") from None
        if not data:
            raise StorageError(f"S3 body of {self._key} ended {self._left} bytes early")
        self._left -= len(data)
        return data

    async def aclose(self) -> None:
        self._response.release()  # kept if the body is all in (even unread), else closed


class _NotModified(Exception):
    def __init__(self, stat: Stat) -> None:
        self.stat = stat


class _PreconditionFailed(Exception):
    pass


async def _error_document(response: Response) -> bytes:
    try:
        return await response.read_all(4096)
    except (StorageError, StorageTimeout):
        return b""


def _int(text: str | None) -> int:
    if text is None or not text.isdigit():
        raise StorageError(f"S3 sent no usable length: {text!r:.40}")
    return int(text)


def _stat(headers: dict[str, str], size: int) -> Stat:
    return Stat(
        size=size,
        etag=headers.get("etag", '""'),
        last_modified=parse_http_date(headers.get("last-modified")) or 0,
        content_type=headers.get("content-type"),
    )


def _status_error(response: Response, body: bytes, key: str) -> Exception:
    status = response.status
    found = _ERROR_CODE.search(body)
    code = found.group(1).decode("latin-1") if found else ""
    if status == 404:
        return NotFound(f"no object {key}")
    if status == 304:
        headers = response.headers
        modified = parse_http_date(headers.get("last-modified")) or 0
        return _NotModified(Stat(-1, headers.get("etag", '""'), modified, None))
    if status == 412:
        return _PreconditionFailed()
    if status == 416:
        size = _OBJECT_SIZE.search(body)
        return RangeNotSatisfiable(
            "S3: range not satisfiable", size=int(size.group(1)) if size else -1
        )
    return StorageError(f"S3 answered {status} {code} for {key}".rstrip())

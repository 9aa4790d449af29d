"""An S3 bucket (or MinIO, Ceph, R2...) as storage, read over aiohttp with edge's signer.

A cold miss is one GET: signed here (:mod:`edge.storage.sigv4`), sent by aiohttp
on a kept-alive connection from a bounded pool (:mod:`edge.storage.wire`), with
the CA bundle and proxy botocore would use (:mod:`edge.storage.network`).
botocore is no longer on that path: its generic request pipeline (hooks,
models, parsers) cost more CPU per object than the whole edge request around
it. It still finds the credentials (environment, profiles, web identity,
instance roles, refreshed before they expire), the region and the CA bundle.

A body sent chunked (no ``Content-Length``) is read ahead (:func:`unsized`); a
Range is forwarded as ever: a part's ``Content-Range`` gives its length, and a
store that ignores the Range sends the whole object.

Where requests go (the endpoint as the AWS SDKs find it, path-style or
virtual-hosted addressing) is :mod:`edge.storage.endpoint`'s; the region signed for,
and how S3's answer changes it, :mod:`edge.storage.region`'s; the start-up check of the
bucket, and what a bare ``404`` is, :mod:`edge.storage.probe`'s.

Where a transform's source is looked for (:meth:`S3Storage.siblings`) is one
ListObjectsV2 of the names that begin with the requested stem and a dot, one
folder deep, at most ``LIST_KEYS`` of them, its answer read within ``LIST_BYTES``.

The Range and the conditions S3 evaluates reliably (a single ETag, a date) are
forwarded in their canonical form, and every condition is checked again here
on the reply, so the answers match the filesystem backend's exactly.
What each failure becomes (tried again or not, which error, what the log says)
is a row of :mod:`edge.storage.failures`: this client only raises and retries
from there.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import replace
from typing import Any

from edge.errors import ConfigError, RangeNotSatisfiable
from edge.http import entity_tags, http_date, parse_http_date, parse_if_range, range_header
from edge.storage.base import (
    CHUNK_BYTES,
    Conditions,
    Reply,
    Stat,
    Storage,
    decide,
    read_whole,
    sibling_names,
)
from edge.storage.config import S3Settings
from edge.storage.endpoint import Address, Endpoint, find_endpoint
from edge.storage.failures import (
    BACKOFF,
    CREDENTIALS,
    MISSING_PART,
    NO_LENGTH,
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    UNASKED_PART,
    WRONG_PART,
    Fault,
    Silence,
    Unconfirmed,
)
from edge.storage.network import ca_bundle, proxy_for, tls_context
from edge.storage.probe import BucketWatch, check_at_start
from edge.storage.region import bucket_region, first_region, region_named
from edge.storage.s3_answers import (
    LIST_KEYS,
    Refusal,
    S3Chunks,
    error_document,
    length_of,
    listing,
    not_modified_stat,
    refusal,
    span_of,
    stat_of,
    unsized,
)
from edge.storage.s3_parts import Slice, cut
from edge.storage.sigv4 import Credentials, Signer, canonical_query, object_path
from edge.storage.wire import Pool, Response

log = logging.getLogger("edge")

#: Backoff before attempt n+1: a random share of min(BACKOFF_CAP, BACKOFF_BASE * 2**n).
BACKOFF_BASE, BACKOFF_CAP = 0.025, 0.5
#: Temporary credentials are looked at again this often (botocore refreshes them
#: well before expiry; a static key is read once).
CREDENTIALS_SECONDS = 60.0


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
        self._addressing = settings.addressing
        self._check_bucket = settings.check_bucket
        self._pool: Pool | None = None
        self._retired: list[Pool] = []  # pools of an address left for another region's
        self._signer = Signer(region=settings.region or "us-east-1")
        self.region_source = ""  # where the first region signed for came from
        self.endpoint: Endpoint | None = None  # set by open()
        self.address: Address | None = None
        self._host = ""  # the Host header, port included when not the scheme's default
        self._bucket_path = ""  # "/bucket" for path-style addressing, "" for virtual-hosted
        self._ca_bundle: str | None = None  # AWS_CA_BUNDLE, else the profile's ca_bundle
        self._watch = BucketWatch(self.check)  # what a bare 404 is (edge/storage/probe.py)
        self._source: Any = None  # botocore's credentials, refreshed by botocore
        self._credentials = Credentials("", "")
        self._credentials_until = 0.0

    async def open(self) -> None:
        from aiobotocore.session import get_session  # the credential chain only

        session = get_session()
        region, self.region_source = first_region(self._region, session)
        self.endpoint = find_endpoint(self._endpoint_url, self._addressing, session)
        self._signer = Signer(region=region)
        self._source = await session.get_credentials()
        if self._source is None:  # find_credentials() said there were some
            raise ConfigError("EDGE_STORAGE: the AWS credentials are gone")
        await self._fresh_credentials()
        self._ca_bundle = ca_bundle(session)  # botocore's: trusted for an https endpoint
        self._reach(self.endpoint.address(self.bucket, region))
        if self._check_bucket:
            try:
                await check_at_start(lambda: self.first_key(""), self.bucket)
            except BaseException:  # no start: its connections end here, none left to the GC
                await self.aclose()
                raise

    def _reach(self, address: Address) -> None:
        """Send every request to ``address`` from now on, on a pool of its own (an earlier
        pool's connections end at aclose, their answers read)."""
        if self._pool is not None:
            self._retired.append(self._pool)
        self.address, self._host, self._bucket_path = (
            address,
            address.host_header,
            address.bucket_path,
        )
        self._pool = Pool(
            scheme="https" if address.tls else "http",
            host=address.host,
            port=address.port,
            name=address.endpoint,  # the name a log shows, not localhost's alias
            tls=tls_context(self._ca_bundle) if address.tls else None,
            proxy=proxy_for(address.url),
            limit=self._max_connections,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
        )

    def use_region(self, region: str) -> None:
        """Sign for ``region`` from now on, and on AWS's own endpoints go to its host."""
        if region == self._signer.region:
            return
        log.warning(
            "bucket %s is in region %s, not %s: edge signs for %s from now on (set"
            " EDGE_S3_REGION=%s to start with it)",
            *(self.bucket, region, self._signer.region, region, region),
        )
        self._signer = Signer(region=region)
        assert self.endpoint is not None
        address = self.endpoint.address(self.bucket, region)
        if address != self.address:
            self._reach(address)

    @property
    def region(self) -> str:
        return self._signer.region

    @property
    def credential_source(self) -> str:
        """botocore's name for where the credentials came from (``env``,
        ``shared-credentials-file``, ``assume-role``, ``iam-role``...): never a secret."""
        return str(getattr(self._source, "method", "") or "unknown")

    async def aclose(self) -> None:
        for pool in (*self._retired, self._pool):
            if pool is not None:
                await pool.aclose()
        self._pool, self._retired = None, []

    async def check(self) -> None:
        """A HEAD of the bucket: any refusal is its row's error (a 404 is NoSuchBucket)."""
        answer = await self._send("HEAD", self._bucket_path or "/", [], bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**self._facts(f"bucket {self.bucket}"))
        answer.release()

    async def first_key(self, folder: str) -> str | None:
        """A key stored under ``folder`` (``public/``; ``""``: anything under the prefix),
        or None: one listing of one key. A refusal is its row's error (a 404: no bucket).
        With no EDGE_S3_REGION, the answer's ``x-amz-bucket-region`` is the region signed
        for from then on. ListObjects (v1), the same permission as V2's: s3rver fails every
        truncated V2 listing (its continuation token is DES, which OpenSSL 3 refuses)."""
        what = f"s3://{self.bucket}/{self.prefix}{folder}"
        query = canonical_query(
            [("prefix", self.prefix + folder), ("max-keys", "1"), ("encoding-type", "url")]
        )
        path = self._bucket_path or "/"
        answer = await self._send("GET", path, [], query=query, key=what, bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**self._facts(what))
        if not self._region and (region := bucket_region(answer.headers)):
            self.use_region(region)
        keys = await listing(answer, what)
        return keys[0] if keys else None

    async def siblings(self, key: str) -> list[str]:
        """One ListObjectsV2 (path-style or virtual-hosted, as the reads): the names under
        the prefix ``{storage prefix}{folder}{stem}.``, ``/`` as the delimiter so nothing
        below the folder is a name, keys URL-encoded by S3 (where it does). A refusal is
        its row's error, a 404 meaning no bucket (the request is of the bucket)."""
        directory, stem, names = sibling_names(key)
        if not names:
            return []
        what = f"{directory}{stem}.*"  # the listing, as the log names it
        query = canonical_query(
            [
                ("list-type", "2"),
                ("prefix", f"{self.prefix}{directory}{stem}."),
                ("delimiter", "/"),
                ("max-keys", str(LIST_KEYS)),
                ("encoding-type", "url"),
            ]
        )
        path = self._bucket_path or "/"
        answer = await self._send("GET", path, [], query=query, key=what, bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**self._facts(what))
        start = self.prefix + directory
        listed = await listing(answer, what)
        found = {name[len(start) :] for name in listed if name.startswith(start)}
        return [directory + name for name in names if name in found]

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        try:
            if head:
                response = await self._object("HEAD", key, [])
                response.release()
                stat = stat_of(response.headers, response.length)  # none: UNKNOWN_SIZE
                status, start, end = decide(stat, conditions)
                return Reply(status, stat, start, end, None)
            return await self._get(key, conditions)
        except Unconfirmed:  # a 404 without a document (a HEAD's): is the bucket there?
            await self._watch.confirm()
            raise

    async def _get(self, key: str, conditions: Conditions, *, again: bool = False) -> Reply:
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
            return await self._get(key, replace(conditions, range=None, if_range=None))
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
            return await self._get(key, replace(conditions, range=None, if_range=None))
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
            return await self._get(key, replace(conditions, range=(start, end)), again=True)
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
        return await self._get(key, fresh)  # a 304 to it is UNASKED_PART: no loop

    async def _object(self, method: str, key: str, headers: list[tuple[str, str]]) -> Response:
        """A GET or HEAD of ``key``: a success, or the error its refusal's row says."""
        path = self._bucket_path + object_path(None, self.prefix + key)
        answer = await self._send(method, path, headers, key=key)
        if isinstance(answer, Response):
            return answer
        if answer.row is NOT_MODIFIED:
            raise _NotModified(not_modified_stat(answer.headers))
        if answer.row is PRECONDITION_FAILED:
            raise _PreconditionFailed
        raise answer.exception(**self._facts(key))

    async def _send(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        *,
        query: str = "",
        key: str = "",
        bucket: bool = False,
    ) -> Response | Refusal:
        """One request, tried again as its failure's row says: a success (2xx), or S3's
        refusal, read (its error document) and classified. ``query``: canonical
        (:func:`canonical_query`), sent as signed. ``bucket``: a request of the bucket
        itself (its HEAD, a listing), where a 404 means there is no such bucket."""
        assert self._pool is not None, "S3Storage.open() was not awaited"
        if time.monotonic() >= self._credentials_until:
            await self._fresh_credentials()
        target = f"{path}?{query}" if query else path
        attempt, moved = 1, False
        while True:
            signed = self._signer.headers(method, self._host, path, self._credentials, query)
            sent = {"host": self._host, **dict(signed), **dict(headers)}
            try:
                response = await self._pool.request(method, target, sent)
            except (Fault, Silence) as error:
                if error.row.retry is not BACKOFF or attempt >= self._max_attempts:
                    raise error.again(key=key, attempts=attempt) from None
            else:
                if response.status < 300:
                    return response
                try:  # read, so the connection is kept
                    document = b"" if method == "HEAD" else await error_document(response)
                finally:
                    response.release()
                answer = refusal(
                    response.status, response.headers, document, bucket=bucket, attempts=attempt
                )
                if not moved and (region := region_named(answer.row, answer.region)):
                    self.use_region(region)  # S3 named the bucket's region: once, signed for it
                    moved = True
                    continue
                if answer.row.retry is not BACKOFF or attempt >= self._max_attempts:
                    return answer
            await asyncio.sleep(random.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
            attempt += 1

    def _facts(self, key: str) -> dict[str, object]:
        """What a refusal's reason may name, besides what S3 said."""
        assert self._pool is not None
        endpoint, region = self._pool.endpoint, self._signer.region
        return {"key": key, "bucket": self.bucket, "endpoint": endpoint, "signing_region": region}

    async def _fresh_credentials(self) -> None:
        try:
            frozen = await self._source.get_frozen_credentials()
        except Exception as error:  # an unreachable metadata service, a bad profile
            raise CREDENTIALS.exception(detail=type(error).__name__) from None
        self._credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        refreshable = hasattr(self._source, "refresh_needed")
        self._credentials_until = time.monotonic() + CREDENTIALS_SECONDS if refreshable else 1e300


class _NotModified(Exception):
    def __init__(self, stat: Stat) -> None:
        self.stat = stat


class _PreconditionFailed(Exception):
    pass

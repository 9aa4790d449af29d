"""Requests to one bucket: signed, sent, tried again, and moved to the bucket's region.

A request is signed here (:mod:`edge.storage.sigv4`) and sent by aiohttp on a
kept-alive connection from a bounded pool (:mod:`edge.storage.wire`), with the
CA bundle and proxy botocore would use (:mod:`edge.storage.network`).
botocore is no longer on that path: its generic request pipeline (hooks,
models, parsers) cost more CPU per object than the whole edge request around
it. It still finds the credentials (environment, profiles, web identity,
instance roles, refreshed before they expire), looked at again here every
``CREDENTIALS_SECONDS``.

What each failure becomes (tried again or not, which error, what the log says)
is a row of :mod:`edge.storage.failures`: this part of the client only raises
and retries from there. When S3 names the bucket's region (:mod:`edge.storage.region`),
the request is signed for it once more, and sent to its host on AWS's own endpoints.

:class:`S3Client` owns all of that state (the pool, the signer, the credentials,
where requests go): :class:`edge.storage.s3.S3Storage` makes one, hands it the
endpoint and the credentials it found at start-up (:meth:`S3Client.connect`), and
it and the reads (:mod:`edge.storage.s3_reads`) send through it; so each of the
three reads in one sitting, and none sets another's attributes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from edge.storage.config import S3Settings
from edge.storage.endpoint import Address, Endpoint
from edge.storage.failures import BACKOFF, CREDENTIALS, Fault, Silence
from edge.storage.network import proxy_for, tls_context
from edge.storage.region import region_named
from edge.storage.s3_answers import Refusal, error_document, refusal
from edge.storage.sigv4 import Credentials, Signer
from edge.storage.wire import Pool, Response

log = logging.getLogger("edge")

#: Backoff before attempt n+1: a random share of min(BACKOFF_CAP, BACKOFF_BASE * 2**n).
BACKOFF_BASE, BACKOFF_CAP = 0.025, 0.5
#: Temporary credentials are looked at again this often (botocore refreshes them
#: well before expiry; a static key is read once).
CREDENTIALS_SECONDS = 60.0


class S3Client:
    """Signed requests to one bucket, retried as their failures' rows say. Made with the
    bucket and its settings; it sends once :meth:`connect` gave it where and as whom."""

    def __init__(self, *, bucket: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self._max_connections = settings.max_connections
        self._connect_timeout = settings.connect_timeout
        self._read_timeout = settings.read_timeout
        self._max_attempts = settings.max_attempts
        self._signer = Signer(region=settings.region or "us-east-1")
        self.endpoint: Endpoint | None = None  # set by connect()
        self.address: Address | None = None  # where requests go now (a region may move it)
        self.bucket_path = ""  # "/bucket" for path-style addressing, "" for virtual-hosted
        self._host = ""  # the Host header, port included when not the scheme's default
        self._pool: Pool | None = None
        self._retired: list[Pool] = []  # pools of an address left for another region's
        self._ca_bundle: str | None = None  # AWS_CA_BUNDLE, else the profile's ca_bundle
        self._source: Any = None  # botocore's credentials, refreshed by botocore
        self._credentials = Credentials("", "")
        self._credentials_until = 0.0

    async def connect(
        self, endpoint: Endpoint, region: str, source: Any, ca_bundle: str | None
    ) -> None:
        """Sign for ``region`` with ``source``'s credentials (botocore's, fetched now), and
        send to the bucket's address on ``endpoint``, trusting ``ca_bundle`` for https."""
        self.endpoint = endpoint
        self._signer = Signer(region=region)
        self._source = source
        await self._fresh_credentials()
        self._ca_bundle = ca_bundle
        self._reach(endpoint.address(self.bucket, region))

    def _reach(self, address: Address) -> None:
        """Send every request to ``address`` from now on, on a pool of its own (an earlier
        pool's connections end at aclose, their answers read)."""
        if self._pool is not None:
            self._retired.append(self._pool)
        self.address, self._host, self.bucket_path = (
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

    async def send(
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

    def facts(self, key: str) -> dict[str, object]:
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

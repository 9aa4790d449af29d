"""An S3 bucket (or MinIO, Ceph, R2...) as storage, read over aiohttp with edge's signer.

:class:`S3Storage` is the bucket as the rest of edge sees it: set up and checked
at start (:meth:`S3Storage.open`), its HEAD (:meth:`S3Storage.check`), listings,
and reads. It composes two parts, each owning its state: the requests themselves
(signed, sent on a bounded pool, retried, moved to the bucket's region), an
:class:`edge.storage.s3_requests.S3Client`; and the reads under conditions
(conditional GET, ``304``, Range, each reply checked), an
:class:`edge.storage.s3_reads.S3Reads` sending through that client. botocore only
finds the credentials, the region and the CA bundle, here at start-up.

Where requests go (the endpoint as the AWS SDKs find it, path-style or
virtual-hosted addressing) is :mod:`edge.storage.endpoint`'s; the region signed for,
and how S3's answer changes it, :mod:`edge.storage.region`'s; the start-up check of the
bucket, and what a bare ``404`` is, :mod:`edge.storage.probe`'s.

Where a transform's source is looked for (:meth:`S3Storage.siblings`) is one
ListObjectsV2 of the names that begin with the requested stem and a dot, one
folder deep, at most ``LIST_KEYS`` of them, its answer read within ``LIST_BYTES``.

What each failure becomes (tried again or not, which error, what the log says)
is a row of :mod:`edge.storage.failures`: this client only raises and retries
from there.
"""

from __future__ import annotations

from edge.errors import ConfigError
from edge.storage.base import Conditions, Reply, Storage, sibling_names
from edge.storage.config import S3Settings
from edge.storage.endpoint import Address, Endpoint, find_endpoint
from edge.storage.failures import Unconfirmed
from edge.storage.network import ca_bundle
from edge.storage.probe import BucketWatch, check_at_start
from edge.storage.region import bucket_region, first_region
from edge.storage.s3_answers import LIST_KEYS, Refusal, listing
from edge.storage.s3_reads import S3Reads
from edge.storage.s3_requests import S3Client
from edge.storage.sigv4 import canonical_query


def find_credentials() -> bool:
    """Whether the AWS chain holds credentials; checked before the server starts, so a
    missing one is a one-line error. (Temporary ones are only located, not fetched.)"""
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


class S3Storage(Storage):
    """The bucket (under ``prefix``) as storage: a facade over its client and its reads."""

    kind = "s3"

    def __init__(self, *, bucket: str, prefix: str = "", settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._settings = settings  # the endpoint, region and addressing asked; the check
        self.region_source = ""  # where the first region signed for came from
        self._client = S3Client(bucket=bucket, settings=settings)
        self._reads = S3Reads(self._client, prefix)
        self._watch = BucketWatch(self.check)  # what a bare 404 is (edge/storage/probe.py)

    @property
    def region(self) -> str:
        """The region signed for now (the bucket's, once S3 named it)."""
        return self._client.region

    @property
    def credential_source(self) -> str:
        """Where the credentials came from (botocore's name for it): never a secret."""
        return self._client.credential_source

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint in use and where it was found; None until :meth:`open`."""
        return self._client.endpoint

    @property
    def address(self) -> Address | None:
        """Where requests go now (the bucket's region may move it); None until :meth:`open`."""
        return self._client.address

    def use_region(self, region: str) -> None:
        """Sign for ``region`` from now on, and on AWS's own endpoints go to its host."""
        self._client.use_region(region)

    async def open(self) -> None:
        from aiobotocore.session import get_session  # the credential chain only

        settings = self._settings
        session = get_session()
        region, self.region_source = first_region(settings.region, session)
        endpoint = find_endpoint(settings.endpoint_url, settings.addressing, session)
        source = await session.get_credentials()
        if source is None:  # find_credentials() said there were some
            raise ConfigError("EDGE_STORAGE: the AWS credentials are gone")
        # botocore's CA bundle: trusted for an https endpoint
        await self._client.connect(endpoint, region, source, ca_bundle(session))
        if settings.check_bucket:
            try:
                await check_at_start(lambda: self.first_key(""), self.bucket)
            except BaseException:  # no start: its connections end here, none left to the GC
                await self.aclose()
                raise

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check(self) -> None:
        """A HEAD of the bucket: any refusal is its row's error (a 404 is NoSuchBucket)."""
        client = self._client
        answer = await client.send("HEAD", client.bucket_path or "/", [], bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**client.facts(f"bucket {self.bucket}"))
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
        client = self._client
        path = client.bucket_path or "/"
        answer = await client.send("GET", path, [], query=query, key=what, bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**client.facts(what))
        if not self._settings.region and (region := bucket_region(answer.headers)):
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
        client = self._client
        path = client.bucket_path or "/"
        answer = await client.send("GET", path, [], query=query, key=what, bucket=True)
        if isinstance(answer, Refusal):
            raise answer.exception(**client.facts(what))
        start = self.prefix + directory
        listed = await listing(answer, what)
        found = {name[len(start) :] for name in listed if name.startswith(start)}
        return [directory + name for name in names if name in found]

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        try:
            if head:
                return await self._reads.head(key, conditions)
            return await self._reads.get(key, conditions)
        except Unconfirmed:  # a 404 without a document (a HEAD's): is the bucket there?
            await self._watch.confirm()
            raise

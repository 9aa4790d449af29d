"""A loopback S3 that checks a request as S3 does: its Host and path (path-style or
virtual-hosted), and its SigV4 signature, recomputed by botocore's signer for the region
the request's credential scope names; a bucket in another region is answered as S3
answers it (``301 PermanentRedirect`` with ``x-amz-bucket-region``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.canned import s3_error
from tests.support.stores import tiny_store

_CREDENTIAL = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,"
    r" SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)
BODY = b"hello"


@dataclass(frozen=True)
class Seen:
    """One request as the store judged it."""

    method: str
    host: str
    path: str
    region: str  # the region its signature names
    valid: bool  # the signature is botocore's for that region


@dataclass
class SignedStore:
    port: int
    seen: list[Seen] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://localhost:{self.port}"


def verify(method: str, target: str, headers: dict[str, str], secret: str) -> tuple[str, bool]:
    """(the region the request is signed for, whether botocore computes the same signature)."""
    found = _CREDENTIAL.fullmatch(headers.get("authorization", ""))
    if found is None:
        return "", False
    access, _, region, signed, signature = found.groups()
    parts = urlsplit(target)
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{parts.path}",
        headers={name: headers[name] for name in signed.split(";")},
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(
        Credentials(access, secret, headers.get("x-amz-security-token")), "s3", region
    )
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    return region, expected == signature


@contextlib.contextmanager
def signed_store(*, bucket: str, region: str, secret: str, virtual: bool) -> Iterator[SignedStore]:
    """The store of ``bucket`` in ``region``, reached at ``localhost``: virtual-hosted (the
    Host ``bucket.localhost:port``, paths without the bucket) or path-style (the Host
    ``localhost:port``, paths under ``/bucket``). Any other Host or path is
    ``400 InvalidRequest``, a bad signature ``403 SignatureDoesNotMatch``."""
    holder: list[SignedStore] = []

    async def answer(connection: int, number: int, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        store = holder[0]
        signed_for, valid = verify(method, target, headers, secret)
        path = urlsplit(target).path
        host = headers.get("host", "")
        store.seen.append(Seen(method, host, path, signed_for, valid))
        want_host = f"{bucket}.localhost:{store.port}" if virtual else f"localhost:{store.port}"
        prefix = "/" if virtual else f"/{bucket}"
        if host != want_host or not path.startswith(prefix):
            return s3_error("400 Bad Request", "InvalidRequest")
        moved = f"x-amz-bucket-region: {region}"
        if signed_for != region:  # as S3 answers a request signed for another region
            if method == "HEAD":
                return f"HTTP/1.1 301 Moved Permanently\r\n{moved}\r\n\r\n".encode()
            return s3_error("301 Moved Permanently", "PermanentRedirect", moved)
        if not valid:
            return s3_error("403 Forbidden", "SignatureDoesNotMatch")
        if path.rstrip("/") == prefix.rstrip("/"):  # the bucket itself: a listing, or its HEAD
            listing = (
                b"<ListBucketResult><Contents><Key>public/a.png</Key></Contents></ListBucketResult>"
            )
            return b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: %d\r\n\r\n%s" % (
                moved.encode(),
                len(listing),
                b"" if method == "HEAD" else listing,
            )
        body = b"" if method == "HEAD" else BODY
        return b'HTTP/1.1 200 OK\r\nETag: "e1"\r\nContent-Length: 5\r\n\r\n' + body

    with tiny_store(answer) as (port, _):
        holder.append(SignedStore(port))
        yield holder[0]

"""AWS Signature Version 4 for the requests edge makes of S3: GET and HEAD of an object,
HEAD of the bucket, and one listing (a GET of the bucket with a query string); no body.

botocore signs a request in about a third of the CPU an edge cold miss can
spend in all, because it builds a generic request model first; this module
signs the one shape edge sends. The day's signing key is derived once per
(secret, day, region) and only ``host``, ``x-amz-content-sha256``, ``x-amz-date``
(and ``x-amz-security-token`` for temporary credentials) are signed: S3 accepts
Range and the conditional headers unsigned, and every signed header is a line
the store must rebuild exactly. A query string is signed in its canonical form
(:func:`canonical_query`), which is also the form sent, so what is signed is what
goes. ``tests/test_storage_sigv4.py`` checks the result against AWS's published
examples and against botocore's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
#: The SHA-256 of an empty body: a GET and a HEAD send none.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of AWS credentials; ``token`` is set for temporary (STS, IRSA) ones."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never a secret in a log or a traceback
        return f"Credentials(access_key={self.access_key!r}, secret_key=..., token=...)"


def object_path(bucket: str | None, key: str) -> str:
    """The request path of ``key``, percent-encoded once as S3 expects (``/`` kept);
    ``bucket`` is given for path-style addressing, None for virtual-hosted."""
    return ("/" + quote(bucket, safe="") if bucket else "") + "/" + quote(key, safe="/~")


def canonical_query(parameters: Iterable[tuple[str, str]]) -> str:
    """The canonical query string of SigV4: each name and value percent-encoded as UTF-8
    (only RFC 3986's unreserved ``A-Z a-z 0-9 - _ . ~`` kept, ``/`` and space encoded
    too, hex in upper case), the pairs sorted by name then value, ``name=value`` joined
    with ``&`` (a parameter without a value is ``name=``). Send it as it is."""
    pairs = sorted((quote(name, safe=""), quote(value, safe="")) for name, value in parameters)
    return "&".join(f"{name}={value}" for name, value in pairs)


class Signer:
    """Signs GET and HEAD requests for one region; the per-day key is kept."""

    def __init__(
        self, *, region: str, service: str = "s3", clock: Callable[[], float] = time.time
    ) -> None:
        self.region = region
        self.service = service
        self._clock = clock
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, key)
        self._stamp: tuple[int, str] = (-1, "")  # (second, x-amz-date)

    def headers(
        self, method: str, host: str, path: str, credentials: Credentials, query: str = ""
    ) -> list[tuple[str, str]]:
        """The headers that sign ``method host path?query`` (no body) now; ``query`` is
        already canonical (:func:`canonical_query`), empty for none."""
        amz_date = self._amz_date()
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        token = credentials.token
        if token is None:
            signed = "host;x-amz-content-sha256;x-amz-date"
            canonical_headers = (
                f"host:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n"
            )
        else:
            signed = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
            canonical_headers = (
                f"host:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n"
                f"x-amz-security-token:{token}\n"
            )
        canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{EMPTY_SHA256}"
        to_sign = (
            f"{ALGORITHM}\n{amz_date}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
        )
        signature = hmac.digest(
            self._signing_key(credentials.secret_key, day), to_sign.encode(), "sha256"
        ).hex()
        headers = [
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", amz_date),
            (
                "authorization",
                f"{ALGORITHM} Credential={credentials.access_key}/{scope},"
                f" SignedHeaders={signed}, Signature={signature}",
            ),
        ]
        if token is not None:
            headers.append(("x-amz-security-token", token))
        return headers

    def _amz_date(self) -> str:
        now = int(self._clock())
        second, stamp = self._stamp
        if now != second:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            self._stamp = (now, stamp)
        return stamp

    def _signing_key(self, secret: str, day: str) -> bytes:
        kept_secret, kept_day, key = self._key
        if kept_secret != secret or kept_day != day:
            key = ("AWS4" + secret).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (secret, day, key)
        return key

"""The typed errors inner code raises, each knowing its HTTP status and public message.

Inner code raises these with a ``reason`` meant for logs and operators; the one
place that turns them into responses (``edge.responses``) shows clients only the
fixed ``code`` and ``message``, so a reason can never leak into a body. A refusal
(``400``, ``403``, ``405``, ``422``) also carries a ``slug``: a short, stable,
machine-readable name of its cause (``dot_segment``, ``kid_unknown``...), set where it
is raised and written as the access-log line's ``reason``. Slugs hold no request data,
so they can never carry a signature or key material; docs/troubleshooting.md lists
every one (a test keeps the list equal to the slugs written here and at raise sites).
"""

from __future__ import annotations

from typing import ClassVar

#: The access log's ``reason`` for a request that was not refused, or a cause with no slug.
NO_SLUG = "-"


class EdgeError(Exception):
    """Base of every error the edge answers a request with."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"
    message: ClassVar[str] = "Internal error"
    #: The cause's stable name for the access log's ``reason`` ("-": none given), a class
    #: default that the raise site may refine (``slug=``).
    slug: str = NO_SLUG

    def __init__(self, reason: str = "", slug: str = "") -> None:
        super().__init__(reason or self.message)
        #: Why, for logs and `edge verify`; never sent to a client.
        self.reason = reason or self.message
        if slug:
            self.slug = slug


class BadRequest(EdgeError):
    """The URL breaks the spec's rules: the path (dot segments, control bytes, bad user...)
    or a transform parameter (malformed, repeated, a second preset)."""

    status = 400
    code = "BAD_REQUEST"
    message = "Malformed image path"


class BadTransform(BadRequest):
    """A transform parameter is malformed or repeated, a preset is unknown or malformed, or
    a transform asks for an output format no extension names."""

    message = "Malformed transform parameter or preset"


class TransformElsewhere(BadRequest):
    """``/auth`` was asked about a transform URL: the proxy that asks serves stored files
    itself, so it would answer a signed thumbnail with the whole original."""

    message = "Transforms are not served here"
    slug = "transform_elsewhere"


class NotFound(EdgeError):
    """No such image, or a private one asked for without a valid signature."""

    status = 404
    code = "NOT_FOUND"
    message = "Image not found"


class SignatureError(EdgeError):
    """A request carried a signature, and it does not grant access."""

    status = 403
    code = "SIGNATURE_INVALID"
    message = "Signed URL is invalid"


class SignatureInvalid(SignatureError):
    """Malformed, duplicated or unknown parameters, wrong signature, or exp beyond max TTL."""


class SignatureExpired(SignatureError):
    """A genuine signature whose ``exp`` has passed."""

    code = "SIGNATURE_EXPIRED"
    message = "Signed URL has expired"
    slug = "expired"

    def __init__(self, *, exp: int, now: float, kid: str) -> None:
        # The reason is written only if someone reads it: an expired URL is refused
        # often (pages cached past their links), and almost never logged.
        Exception.__init__(self, exp, now, kid)
        self.exp, self._now, self._kid = exp, now, kid

    @property
    def reason(self) -> str:  # type: ignore[override]
        return f"expired {int(self._now) - self.exp} s ago (key {self._kid!r})"

    def __str__(self) -> str:
        return self.reason


class MethodNotAllowed(EdgeError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    message = "Only GET and HEAD are allowed"
    slug = "method_not_allowed"


class RangeNotSatisfiable(EdgeError):
    status = 416
    code = "RANGE_NOT_SATISFIABLE"
    message = "Requested range not satisfiable"

    def __init__(self, reason: str = "", *, size: int) -> None:
        super().__init__(reason)
        self.size = size


class UnprocessableImage(EdgeError):
    """A transform's source cannot be decoded (truncated, corrupt, not an image edge reads), or
    it, or the output asked for, is over a transform limit (``EDGE_TRANSFORM_*``). The reason
    says which, for the log; the client sees one fixed message whichever it is."""

    status = 422
    code = "UNPROCESSABLE_IMAGE"
    message = "Image cannot be processed"


class HeadersTooLarge(EdgeError):
    """The request head (request line and headers) is over ``EDGE_MAX_HEADER_BYTES``."""

    status = 431
    code = "HEADERS_TOO_LARGE"
    message = "Request headers too large"


class StorageError(EdgeError):
    """Storage answered with an error, or could not be reached."""

    status = 502
    code = "STORAGE_ERROR"
    message = "Storage error"


class StorageTimeout(EdgeError):
    status = 504
    code = "STORAGE_TIMEOUT"
    message = "Storage did not answer in time"


class Overloaded(EdgeError):
    status = 503
    code = "OVERLOADED"
    message = "Too many requests in flight, retry shortly"

    def __init__(self, reason: str = "", *, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class TransformTimeout(Overloaded):
    """A transform ran past ``EDGE_TRANSFORM_TIMEOUT`` and was stopped. ``503`` with
    ``Retry-After``, not ``422``: a transform's time depends on how busy the cores are, so
    the same image may well be made on a retry, and a CDN caches neither answer."""

    code = "TRANSFORM_TIMEOUT"
    message = "Image took too long to process, retry later"
    slug = "transform_too_slow"


class ConfigError(ValueError):
    """A setting or key entry is unusable; the message names it and never holds key material."""


class NotReady(EdgeError):
    """``/readyz``: storage did not answer the last check."""

    status = 503
    code = "NOT_READY"
    message = "Storage is unreachable"

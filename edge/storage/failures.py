"""Every way a storage read (or a listing) can fail, in one table: what happened, whether
it is tried again, what the client is answered, and what the log says.

The storage clients decide nothing on their own: the connection (:mod:`.wire`) and
the S3 client (:mod:`.s3`) raise and retry from these rows, the folder (:mod:`.files`)
raises from its own, so reading this file tells the whole truth.
docs/troubleshooting.md carries the tables (:mod:`.failure_docs` writes them; a test
keeps them equal), and every row is produced by a real fault in
tests/test_failure_table.py.
"""

from __future__ import annotations

import enum
import errno
import socket
import ssl
from collections.abc import Collection
from dataclasses import dataclass
from typing import Self

from edge.errors import EdgeError, NotFound, RangeNotSatisfiable, StorageError, StorageTimeout


class Retry(enum.Enum):
    """What the S3 client does after a failure (the folder retries nothing)."""

    #: Again after a short jittered backoff, up to EDGE_S3_MAX_ATTEMPTS attempts in all:
    #: an image request is better failed fast than held for seconds.
    BACKOFF = "yes, with backoff"
    #: Again at once on another connection, not counted: nothing was lost but a connection.
    AT_ONCE = "at once, uncounted"
    #: Once, signed for the region S3's answer names (edge/storage/region.py), uncounted.
    REGION = "once, in the region S3 names"
    #: Again once, asked otherwise (a wrong part: as the explicit range), 2 attempts in all.
    ONCE = "once, otherwise asked"
    NO = "no"


@dataclass(frozen=True, slots=True, eq=False)
class Row:
    """One failure and its rule. ``log`` names facts in braces, filled where it happens."""

    failure: str  # what happened, for the docs
    retry: Retry
    error: type[EdgeError] | None  # what the client is answered; None: not a failure
    log: str  # the reason in the log (never sent to a client)
    statuses: Collection[int] = ()  # the S3 statuses this row is the answer to...
    codes: frozenset[str] = frozenset()  # ...with one of these error codes (empty: any)
    body: bool = False  # happens mid-body: a download already streaming is cut instead
    instead: str = ""  # what edge does instead, when no error reaches the client

    def reason(self, **facts: object) -> str:
        """The log line's reason; a fact not known yet stays a ``{placeholder}``."""
        text = self.log.format_map(_Facts(facts))
        attempts = facts.get("attempts")
        if isinstance(attempts, int) and attempts > 1:
            text += f" ({attempts} attempts)"
        return text

    def exception(self, **facts: object) -> EdgeError:
        """The error this row raises (a 416's ``size`` fact is the object's size)."""
        if self.error is StorageError:
            return Fault(self, **facts)
        if self.error is StorageTimeout:
            return Silence(self, **facts)
        if self.error is RangeNotSatisfiable:
            size = facts.get("size")
            return RangeNotSatisfiable(
                self.reason(**facts), size=size if isinstance(size, int) else -1
            )
        if self.error is None:
            raise TypeError(f"not a failure: {self.failure}")
        return self.error(self.reason(**facts))


class _Facts(dict[str, object]):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


class Unconfirmed(NotFound):
    """A ``404`` that did not say ``NoSuchKey`` (a HEAD's has no document): the S3 client
    checks that the bucket answers before it stands (:class:`edge.storage.probe.BucketWatch`)."""


class Fault(StorageError):
    """A storage error raised from its row: the caller reads there whether to try again."""

    def __init__(self, row: Row, **facts: object) -> None:
        super().__init__(row.reason(**facts))
        self.row, self.facts = row, facts

    def again(self, **facts: object) -> Self:
        """The same failure, with more facts (the key, the attempts made)."""
        return type(self)(self.row, **{**self.facts, **facts})


class Silence(StorageTimeout):
    """A storage timeout raised from its row (see :class:`Fault`)."""

    def __init__(self, row: Row, **facts: object) -> None:
        super().__init__(row.reason(**facts))
        self.row, self.facts = row, facts

    def again(self, **facts: object) -> Self:
        return type(self)(self.row, **{**self.facts, **facts})


BACKOFF, AT_ONCE, REGION, ONCE, NO = (
    Retry.BACKOFF, Retry.AT_ONCE, Retry.REGION, Retry.ONCE, Retry.NO
)  # fmt: skip

# --- S3: reaching the endpoint, and waiting for its answer ----------------------------
# fmt: off
CONNECT_REFUSED = Row(
    "connection refused (nothing listens at the endpoint)", BACKOFF, StorageError,
    "cannot connect to storage at {endpoint}: connection refused")
DNS_FAILURE = Row(
    "the endpoint's host name does not resolve", BACKOFF, StorageError,
    "cannot connect to storage at {endpoint}: {host} does not resolve ({detail})")
TLS_UNTRUSTED = Row(
    "TLS verification fails: the endpoint's certificate is not signed by the system's"
    " CAs (or `SSL_CERT_FILE`'s; by `AWS_CA_BUNDLE`'s alone when it is set), or names"
    " another host", BACKOFF, StorageError,
    "cannot connect to storage at {endpoint}: TLS certificate not trusted ({detail})")
CONNECT_FAILED = Row(
    "any other failure to connect: a reset, an unreachable network, a failed TLS handshake",
    BACKOFF, StorageError, "cannot connect to storage at {endpoint}: {detail}")
CONNECT_TIMEOUT = Row(
    "connect timeout: no connection (TCP, then TLS) within `EDGE_S3_CONNECT_TIMEOUT`",
    BACKOFF, StorageTimeout, "no connection to storage at {endpoint} within {timeout} s")
POOL_BUSY = Row(
    "all `EDGE_S3_MAX_CONNECTIONS` connections stay busy for `EDGE_S3_CONNECT_TIMEOUT`",
    BACKOFF, StorageTimeout, "no free storage connection (of {limit}) for {timeout} s")
STALE_CONNECTION = Row(
    "a kept-alive connection turns out closed by S3, before any byte of the answer",
    AT_ONCE, StorageError, "storage had closed the kept-alive connection",
    instead="nothing: the request goes on another connection")
READ_TIMEOUT = Row(
    "silence before the answer: no status line and headers within `EDGE_S3_READ_TIMEOUT`",
    BACKOFF, StorageTimeout, "storage at {endpoint} silent for {timeout} s before answering")
CLOSED_BEFORE_ANSWER = Row(
    "the connection is closed or reset before the answer's headers are complete",
    BACKOFF, StorageError, "storage connection to {endpoint} {how} {when}")
MALFORMED = Row(
    "a malformed answer: not HTTP/1.x, a bad status line or header (an interim `1xx` is"
    " skipped)", BACKOFF, StorageError, "storage at {endpoint} sent {detail}")

# --- S3: its answer's status (first row that matches wins) ----------------------------
NOT_MODIFIED = Row(
    "`304`: the object matches `If-None-Match` or `If-Modified-Since`", NO, None, "",
    statuses=(304,), instead="`304 Not Modified` (not a failure)")
PRECONDITION_FAILED = Row(
    "`412`: `If-Range` (sent as `If-Match`) does not hold", NO, None, "",
    statuses=(412,), instead="the whole object, asked for again without the range (not a failure)")
RANGE_NOT_SATISFIABLE = Row(
    "`416`: the range starts past the end", NO, RangeNotSatisfiable,
    "S3: range not satisfiable for {key}", statuses=(416,))
WRONG_REGION = Row(
    "`301 PermanentRedirect` (or `307`): the bucket is in another region than the one edge"
    " signs for; S3 names it in `x-amz-bucket-region`. Edge signs for that region from then"
    " on and asks again, once; this row is a second such answer (or one naming no region)",
    REGION, StorageError,
    "S3 answered {answer} for {key}: the bucket is in region {region}, edge signs for"
    " {signing_region}; set EDGE_S3_REGION", statuses=(301, 307))
REDIRECT = Row(
    "any other `3xx`", NO, StorageError,
    "S3 answered {answer} for {key}: edge follows no redirect", statuses=range(300, 400))
NO_SUCH_BUCKET = Row(
    "`404 NoSuchBucket`, or a `404` to a request of the bucket itself (the start-up"
    " listing, `/readyz`'s HEAD of the bucket, the check a bare `404` brings): no bucket of"
    " that name at the endpoint", NO, StorageError,
    "S3 answered {answer} for {key}: no bucket {bucket} at {endpoint}; check EDGE_STORAGE",
    statuses=(404,), codes=frozenset({"NoSuchBucket"}))
NO_SUCH_KEY = Row(
    "`404 NoSuchKey`: no such object", NO, NotFound, "no object {key}", statuses=(404,),
    codes=frozenset({"NoSuchKey"}))
BARE_NOT_FOUND = Row(
    "`404` without an error document: every HEAD's (a HEAD has no body to say why), or an"
    " empty one. Edge asks whether the bucket answers (a HEAD of the bucket, its answer kept"
    " for 5 s): a bucket gone is `NO_SUCH_BUCKET`, else the object is missing", NO,
    Unconfirmed, "no object {key}", statuses=(404,), codes=frozenset({""}))
NOT_THE_OBJECT = Row(
    "`404` with any other error document (not `NoSuchKey`), or a page that is no S3 error"
    " document (a proxy's, a website's): not about the object, so never `404`", NO,
    StorageError, "S3 answered {answer} for {key}: a 404 that does not say NoSuchKey, so"
    " not about the object (check EDGE_STORAGE and the endpoint)", statuses=(404,))
BAD_CREDENTIALS = Row(
    "`403 SignatureDoesNotMatch`, `InvalidAccessKeyId`, `ExpiredToken`: S3 refuses the"
    " credentials (a wrong secret, a deleted key)", NO, StorageError,
    "S3 answered {answer} for {key}: S3 refuses the credentials edge signs with",
    statuses=(403,), codes=frozenset(
        {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken"}))
CLOCK_SKEWED = Row(
    "`403 RequestTimeTooSkewed`: this host's clock is off", NO, StorageError,
    "S3 answered {answer} for {key}: this host's clock is over 15 minutes off S3's",
    statuses=(403,), codes=frozenset({"RequestTimeTooSkewed"}))
ACCESS_DENIED = Row(
    "`403 AccessDenied`, or any other `403`: the policy does not let edge read the object"
    " (without `s3:ListBucket`, S3 says this for a missing key too)", NO, StorageError,
    "S3 answered {answer} for {key}: not allowed to read it (check the bucket policy and"
    " the role)", statuses=(403,))
SIGNED_FOR_ANOTHER_REGION = Row(
    "`400 AuthorizationHeaderMalformed`: signed for another region than the bucket's (MinIO"
    " and S3's global endpoint name the right one in `<Region>`). Edge signs for that region"
    " from then on and asks again, once; this row is a second such answer (or one naming"
    " no region)", REGION, StorageError,
    "S3 answered {answer} for {key}: the bucket is in region {region}, edge signs for"
    " {signing_region}; set EDGE_S3_REGION", statuses=(400,),
    codes=frozenset({"AuthorizationHeaderMalformed"}))
TOO_MANY_REQUESTS = Row(
    "`429`", BACKOFF, StorageError, "S3 answered {answer} for {key}", statuses=(429,))
CLIENT_ERROR = Row(
    "`400`, or any other `4xx`", NO, StorageError, "S3 answered {answer} for {key}",
    statuses=range(400, 500))
INTERNAL_ERROR = Row(
    "`500`", BACKOFF, StorageError, "S3 answered {answer} for {key}", statuses=(500,))
BAD_GATEWAY = Row(
    "`502`", BACKOFF, StorageError, "S3 answered {answer} for {key}", statuses=(502,))
SLOW_DOWN = Row(
    "`503 SlowDown`, or any other `503`", BACKOFF, StorageError,
    "S3 answered {answer} for {key}", statuses=(503,))
GATEWAY_TIMEOUT = Row(
    "`504` (an answer from S3, so `502`, not `504`)", BACKOFF, StorageError,
    "S3 answered {answer} for {key}", statuses=(504,))
SERVER_ERROR = Row(
    "`501`, or any other `5xx` and beyond", NO, StorageError,
    "S3 answered {answer} for {key}", statuses=range(500, 1000))

# --- S3: the answer's shape, and its body ----------------------------------------------
NO_LENGTH = Row(
    "neither a `Content-Length` nor a chunked body: a body that ends when the connection"
    " does, so a cut one cannot be told from a whole one", NO, StorageError,
    "S3 sent no usable length for {key}: {detail}")
UNASKED_PART = Row(
    "a `206` where the whole object was asked; a `304` to a GET without conditions", NO,
    StorageError, "S3 sent an answer for {key} nobody asked for: {detail}")
WRONG_PART = Row(
    "a `Content-Range` that does not parse, or disagrees with `Content-Length`", NO,
    StorageError, "S3 sent the wrong part of {key}: {detail}")
WIDER_PART = Row(
    "a part holding more than the range asked: a wider `Content-Range` (s3rver answers"
    " `bytes=0-0` with the whole object), or a `200` with the whole object (a store that"
    " ignores `Range`)", NO, None, "",
    instead="the asked bytes, cut out of it (not a failure)")
MISSING_PART = Row(
    "a `Content-Range` that leaves out bytes of the range asked (s3rver answers a suffix"
    " `bytes=-5` with the first six bytes), twice: edge asks again once, for the explicit"
    " range (`bytes=5-9`)", ONCE, StorageError, "S3 sent the wrong part of {key}: {detail}")
BARE_NOT_MODIFIED = Row(
    "a `304` without `ETag` or `Last-Modified` (s3rver's)", NO, None, "",
    instead="`304 Not Modified` with the validators of a HEAD of the object, the conditions"
    " decided on them (not a failure)")
BAD_LISTING = Row(
    "a listing (where a transform's source is looked for) that is not a `ListBucketResult`"
    " XML document (a DTD is refused), or is longer than 448 KiB (`LIST_BYTES`)", NO,
    StorageError, "S3 sent an unreadable listing of {key}: {detail}")
BODY_TIMEOUT = Row(
    "silence mid-body for `EDGE_S3_READ_TIMEOUT`", NO, StorageTimeout,
    "S3 body of {key} from {endpoint} stalled for {timeout} s", body=True)
BODY_CUT = Row(
    "a truncated body: the connection closed or reset mid-body (before a chunked body's"
    " last chunk), or the body stops parsing",
    NO, StorageError, "S3 body of {key} from {endpoint} cut short: {detail}", body=True)
CREDENTIALS = Row(
    "the AWS credential chain fails to refresh (metadata service unreachable, a bad"
    " profile, a failing `credential_process`)", NO, StorageError, "S3 credentials: {detail}")

# --- both storages ----------------------------------------------------------------------
CHANGED = Row(
    "the object changed while its download was paused for a slow client", NO, StorageError,
    "{key} changed during a download", body=True)

# --- a folder ---------------------------------------------------------------------------
FILE_MISSING = Row(
    "no such file, or a file where a folder should be (`ENOENT`, `ENOTDIR`)", NO, NotFound,
    "no file for {key}")
FILE_OUTSIDE = Row(
    "the path resolves (through a symlink) outside its own `public/` or `private/` folder",
    NO, NotFound, "{key} resolves outside {folder}")
FILE_NOT_REGULAR = Row(
    "not a regular file: a folder, a FIFO, a device, a socket", NO, NotFound,
    "{key} is not a regular file")
FILE_DENIED = Row(
    "permission denied (`EACCES`, `EPERM`)", NO, StorageError, "cannot open {key}: {detail}")
FILE_OPEN_FAILED = Row(
    "any other error opening it (`EIO`, `ELOOP`, `EMFILE`...)", NO, StorageError,
    "cannot open {key}: {detail}")
FILE_SHRANK = Row(
    "the file shrinks while it is read", NO, StorageError, "{key} shrank while being read",
    body=True)
FILE_READ_FAILED = Row(
    "a read fails: `EIO` (a failing disk, a network filesystem)", NO, StorageError,
    "cannot read {key}: {detail}", body=True)
FILE_ROOT = Row(
    "`/readyz` finds the folder gone", NO, StorageError, "{root} is not a directory",
    instead="`/readyz` answers `503 NOT_READY`")
# fmt: on

#: Statuses, in the order they are matched.
S3_ANSWERS: tuple[Row, ...] = (
    NOT_MODIFIED, PRECONDITION_FAILED, RANGE_NOT_SATISFIABLE, WRONG_REGION, REDIRECT,
    NO_SUCH_BUCKET, NO_SUCH_KEY, BARE_NOT_FOUND, NOT_THE_OBJECT, BAD_CREDENTIALS, CLOCK_SKEWED,
    ACCESS_DENIED, SIGNED_FOR_ANOTHER_REGION, TOO_MANY_REQUESTS, CLIENT_ERROR, INTERNAL_ERROR,
    BAD_GATEWAY, SLOW_DOWN, GATEWAY_TIMEOUT, SERVER_ERROR,
)  # fmt: skip
S3_ROWS: tuple[Row, ...] = (
    CONNECT_REFUSED, DNS_FAILURE, TLS_UNTRUSTED, CONNECT_FAILED, CONNECT_TIMEOUT, POOL_BUSY,
    STALE_CONNECTION, READ_TIMEOUT, CLOSED_BEFORE_ANSWER, MALFORMED, *S3_ANSWERS,
    BARE_NOT_MODIFIED, NO_LENGTH, UNASKED_PART, WRONG_PART, WIDER_PART, MISSING_PART,
    BAD_LISTING, BODY_TIMEOUT, BODY_CUT, CREDENTIALS, CHANGED,
)  # fmt: skip
FILE_ROWS: tuple[Row, ...] = (
    FILE_MISSING, FILE_OUTSIDE, FILE_NOT_REGULAR, FILE_DENIED, FILE_OPEN_FAILED, FILE_SHRANK,
    FILE_READ_FAILED, CHANGED, FILE_ROOT,
)  # fmt: skip


def answer_row(status: int, code: str) -> Row:
    """The first row of :data:`S3_ANSWERS` for this status and error code."""
    for row in S3_ANSWERS:
        if status in row.statuses and (not row.codes or code in row.codes):
            return row
    raise ValueError(f"no row for status {status}: a success is no failure")


def connect_row(error: OSError) -> Row:
    """The row of an error connecting (TCP, then TLS)."""
    if isinstance(error, ConnectionRefusedError):
        return CONNECT_REFUSED
    if isinstance(error, socket.gaierror):
        return DNS_FAILURE
    if isinstance(error, ssl.SSLCertVerificationError):
        return TLS_UNTRUSTED
    return CONNECT_FAILED


def connect_detail(error: OSError) -> str:
    """The part of a connection error an operator needs: no errno, no C source line."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return str(error.verify_message)
    if isinstance(error, ssl.SSLError):
        return f"{type(error).__name__}: {error.reason}"
    return f"{type(error).__name__}: {error.strerror}" if error.strerror else type(error).__name__


def file_open_row(error: OSError) -> Row:
    """The row of an error opening a stored file."""
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
        return FILE_MISSING
    if error.errno in (errno.EACCES, errno.EPERM):
        return FILE_DENIED
    return FILE_OPEN_FAILED

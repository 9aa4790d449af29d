"""edge.storage.failures: the failure table tells the truth about the storage clients.

Each row's mapping, as a unit (the statuses and codes it matches, the connection and file
errors it takes, the error and the reason it builds); then each row's failure produced for
real, through the real client (S3Storage over loopback stores, moto, s3rver; FileStorage
over a real folder): the error is the row's, tried again as often as the row says, with
the row's reason. Whole edge processes meeting one fault per outcome:
tests/test_failure_outcomes.py.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
from pathlib import Path

import pytest

from edge.errors import NotFound, RangeNotSatisfiable, StorageError, StorageTimeout
from edge.storage import failures
from edge.storage.failures import (
    AT_ONCE,
    BACKOFF,
    ONCE,
    REGION,
    Fault,
    Row,
    Silence,
    answer_row,
    connect_row,
    file_open_row,
)
from edge.storage.s3_answers import refusal
from tests.support import folder_faults, part_faults, s3_faults
from tests.support.fault_rig import ATTEMPTS, ROWS, SCENARIOS, name
from tests.support.servers import S3RVER_KEY

#: Where the scenarios are registered (imported for that).
SCENARIO_MODULES = (s3_faults, part_faults, folder_faults)


# --- the mapping, as units -------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=name)
def test_each_row_builds_its_error_with_its_reason(row: Row) -> None:
    facts = {fact: f"<{fact}>" for fact in re.findall(r"{(\w+)}", row.log)}
    if row.error is None:  # 304 and 412: answers, not failures
        assert row.instead and row.retry is not BACKOFF
        with pytest.raises(TypeError):
            row.exception(**facts)
        return
    tries = ATTEMPTS if row.retry is BACKOFF else 2 if row.retry is ONCE else 1
    error = row.exception(attempts=tries, **facts)
    assert type(error).status == row.error.status and type(error).code == row.error.code
    assert isinstance(error, row.error)
    expected = row.log.format(**facts) + (f" ({tries} attempts)" if tries > 1 else "")
    assert error.reason == expected
    if isinstance(error, Fault | Silence):
        assert error.row is row
        assert error.again(attempts=1).reason == row.log.format(**facts), "facts are merged"


STATUSES = [
    (304, "", "NOT_MODIFIED"),
    (412, "PreconditionFailed", "PRECONDITION_FAILED"),
    (416, "InvalidRange", "RANGE_NOT_SATISFIABLE"),
    (301, "PermanentRedirect", "WRONG_REGION"),
    (307, "TemporaryRedirect", "WRONG_REGION"),
    (302, "", "REDIRECT"),
    (308, "", "REDIRECT"),
    (404, "NoSuchBucket", "NO_SUCH_BUCKET"),
    (404, "NoSuchKey", "NO_SUCH_KEY"),
    (404, "", "BARE_NOT_FOUND"),
    (404, "NoSuchUpload", "NOT_THE_OBJECT"),
    (404, "NoSuchWebsiteConfiguration", "NOT_THE_OBJECT"),
    (403, "SignatureDoesNotMatch", "BAD_CREDENTIALS"),
    (403, "InvalidAccessKeyId", "BAD_CREDENTIALS"),
    (403, "ExpiredToken", "BAD_CREDENTIALS"),
    (403, "RequestTimeTooSkewed", "CLOCK_SKEWED"),
    (403, "AccessDenied", "ACCESS_DENIED"),
    (403, "", "ACCESS_DENIED"),
    (400, "AuthorizationHeaderMalformed", "SIGNED_FOR_ANOTHER_REGION"),
    (429, "", "TOO_MANY_REQUESTS"),
    (400, "InvalidArgument", "CLIENT_ERROR"),
    (405, "MethodNotAllowed", "CLIENT_ERROR"),
    (500, "InternalError", "INTERNAL_ERROR"),
    (502, "", "BAD_GATEWAY"),
    (503, "SlowDown", "SLOW_DOWN"),
    (503, "ServiceUnavailable", "SLOW_DOWN"),
    (504, "", "GATEWAY_TIMEOUT"),
    (501, "NotImplemented", "SERVER_ERROR"),
    (599, "", "SERVER_ERROR"),
]


@pytest.mark.parametrize(("status", "code", "expected"), STATUSES)
def test_statuses_map_to_their_rows(status: int, code: str, expected: str) -> None:
    assert name(answer_row(status, code)) == expected


def test_every_status_row_is_mapped_above() -> None:
    mapped = {expected for _, _, expected in STATUSES}
    assert mapped == {name(row) for row in ROWS if row.statuses}


def test_a_refusal_is_read_from_its_document_and_headers() -> None:
    redirect = refusal(301, {"x-amz-bucket-region": "eu-west-1"}, b"")
    assert redirect.row is failures.WRONG_REGION and redirect.region == "eu-west-1"
    malformed = b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-3</Region>"
    signed = refusal(400, {}, malformed)
    assert signed.row is failures.SIGNED_FOR_ANOTHER_REGION and signed.region == "eu-west-3"
    size = b"<Error><Code>InvalidRange</Code><ActualObjectSize>42</ActualObjectSize></Error>"
    range_error = refusal(416, {}, size).exception(key="k")
    assert isinstance(range_error, RangeNotSatisfiable) and range_error.size == 42
    assert refusal(404, {}, b"").row is failures.BARE_NOT_FOUND, "a HEAD's 404 says no more"
    page = refusal(404, {}, b"<html><body>404 Not Found</body></html>")
    assert page.row is failures.NOT_THE_OBJECT, "a proxy's page is not S3 saying NoSuchKey"
    assert refusal(404, {}, b"", bucket=True).row is failures.NO_SUCH_BUCKET
    assert refusal(503, {}, b"", attempts=3).exception(key="k").reason.endswith("(3 attempts)")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "CONNECT_REFUSED"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "DNS_FAILURE"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "TLS_UNTRUSTED"),
        (ssl.SSLError(1, "wrong version number"), "CONNECT_FAILED"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "CONNECT_FAILED"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "CONNECT_FAILED"),
    ],
)
def test_connection_errors_map_to_their_rows(error: OSError, expected: str) -> None:
    assert name(connect_row(error)) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (errno.ENOENT, "FILE_MISSING"),
        (errno.ENOTDIR, "FILE_MISSING"),
        (errno.EISDIR, "FILE_MISSING"),
        (errno.EACCES, "FILE_DENIED"),
        (errno.EPERM, "FILE_DENIED"),
        (errno.EIO, "FILE_OPEN_FAILED"),
        (errno.ELOOP, "FILE_OPEN_FAILED"),
        (errno.EMFILE, "FILE_OPEN_FAILED"),
    ],
)
def test_file_errors_map_to_their_rows(number: int, expected: str) -> None:
    assert name(file_open_row(OSError(number, os.strerror(number)))) == expected


# --- each row produced by a real fault ---------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=name)
def test_every_row_is_produced_by_a_real_fault(
    row: Row, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row's failure, for real: its error class (and row), its retries, its reason."""
    for variable, value in {
        "AWS_ACCESS_KEY_ID": S3RVER_KEY,  # s3rver knows this one; moto takes any
        "AWS_SECRET_ACCESS_KEY": S3RVER_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(variable, value)
    outcome = SCENARIOS[row](request, row)
    if row.error is None or row.retry is AT_ONCE:
        assert outcome.reply is not None and outcome.error is None, "no failure reaches edge"
        return
    error = outcome.error
    assert error is not None, f"no failure: {outcome.reply}"
    assert isinstance(error, row.error) and type(error).code == row.error.code, error
    if isinstance(error, Fault | Silence):
        assert error.row is row, error.reason
    tries = ATTEMPTS if row.retry is BACKOFF else 2 if row.retry in (REGION, ONCE) else 1
    if outcome.requests is not None:
        assert outcome.requests == tries, f"{outcome.requests} requests, {tries} expected"
    pattern = ".+?".join(re.escape(part) for part in re.split(r"{\w+}", row.log))
    suffix = re.escape(f" ({tries} attempts)") if row.retry is BACKOFF else ""
    assert re.fullmatch(pattern + suffix, error.reason), error.reason
    assert "{" not in error.reason, "every fact of the reason is known where it is raised"


def test_every_row_has_a_real_fault() -> None:
    assert set(SCENARIOS) == set(ROWS)


def test_no_storage_error_escapes_the_table() -> None:
    """The storage clients build their errors only from rows: outside the table, no
    module of the storage package makes an error of edge.errors itself."""
    kinds = (NotFound, RangeNotSatisfiable, StorageError, StorageTimeout)
    made = re.compile(r"\b(" + "|".join(kind.__name__ for kind in kinds) + r")\(")
    for module in Path(failures.__file__).parent.glob("*.py"):
        if module.name != "failures.py":
            assert not made.findall(module.read_text(encoding="utf-8")), module.name

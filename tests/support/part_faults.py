"""The failure table's rows for answers that do not match what edge asked (a part wider or
narrower than the range, a ``304`` without validators), produced by s3rver, which sends
them to ordinary requests, and by a loopback store where s3rver cannot be made to."""

from __future__ import annotations

import pytest

from edge.storage import failures
from edge.storage.base import Conditions
from edge.storage.failures import Fault, Row
from tests.support.fault_rig import Outcome, produces, read_canned, read_s3
from tests.support.servers import BUCKET, S3RVER_KEY, S3rver, s3_client

DIGITS = b"0123456789"


def s3rver_key(server: S3rver, data: bytes) -> str:
    """A key in s3rver's bucket holding ``data``."""
    key = f"parts/{len(data)}-{data[:8].hex()}.png"
    s3_client(server.endpoint_url, S3RVER_KEY).put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


@produces(failures.WIDER_PART)
def wider_part(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """s3rver answers ``bytes=0-0`` with the whole object (as ``206 bytes 0-9/10``); a store
    ignoring the Range answers ``200`` with the whole object: edge cuts the asked bytes out."""
    server: S3rver = request.getfixturevalue("s3rver_server")
    key = s3rver_key(server, DIGITS)
    first = read_s3(server.endpoint_url, key=key, conditions=Conditions(range=(0, 0)))
    assert first.reply is not None and first.reply.data == b"0", first
    assert (first.reply.status, first.reply.start, first.reply.end) == (206, 0, 0)
    whole = b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: "e1"\r\n\r\n' + DIGITS
    outcome = read_canned(whole, conditions=Conditions(range=(2, 5)))
    assert outcome.reply is not None and outcome.reply.data == b"2345", outcome
    assert (outcome.reply.status, outcome.reply.start, outcome.reply.end) == (206, 2, 5)
    return outcome


@produces(failures.MISSING_PART)
def missing_part(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """s3rver answers a suffix ``bytes=-5`` with the first six bytes, and the explicit range
    edge then asks for rightly; a store wrong twice is the row's error."""
    server: S3rver = request.getfixturevalue("s3rver_server")
    key = s3rver_key(server, DIGITS)
    suffix = read_s3(server.endpoint_url, key=key, conditions=Conditions(range=(None, 5)))
    assert suffix.reply is not None and suffix.reply.data == b"56789", suffix
    assert (suffix.reply.status, suffix.reply.start, suffix.reply.end) == (206, 5, 9)
    wrong = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nContent-Range: bytes 0-3/9"
    return read_canned(wrong + b"\r\n\r\nabcd", conditions=Conditions(range=(2, 5)))


@produces(failures.BARE_NOT_MODIFIED)
def bare_not_modified(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """s3rver's ``304`` names neither ETag nor Last-Modified: edge's carries both."""
    server: S3rver = request.getfixturevalue("s3rver_server")
    key = s3rver_key(server, DIGITS[::-1])
    plain = read_s3(server.endpoint_url, key=key)
    assert plain.reply is not None and plain.reply.stat.last_modified > 0
    stat = plain.reply.stat
    by_date = read_s3(
        server.endpoint_url, key=key, conditions=Conditions(if_modified_since="Fri, 01 Jan 2100")
    )
    assert by_date.reply is not None and by_date.reply.status == 200, "not a date: no condition"
    for conditions in (
        Conditions(if_none_match=stat.etag),
        Conditions(if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT"),
    ):
        outcome = read_s3(server.endpoint_url, key=key, conditions=conditions)
        assert outcome.reply is not None and outcome.reply.status == 304, outcome
        assert outcome.reply.stat.etag == stat.etag
        assert outcome.reply.stat.last_modified == stat.last_modified
    always = read_canned(  # a store whose HEAD disagrees, and that answers 304 to anything
        b"HTTP/1.1 304 Not Modified\r\n\r\n", conditions=Conditions(if_none_match='"e1"')
    )
    assert isinstance(always.error, Fault) and always.error.row is failures.UNASKED_PART
    assert always.requests == 2, "the conditional GET, then one without its conditions"
    return outcome

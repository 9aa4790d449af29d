"""Each row of the S3 failure table produced by a real fault in front of a real S3Storage:
a loopback store playing S3's answers, moto, s3rver, TLS and TCP endpoints that fail."""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from edge.errors import NotFound, RangeNotSatisfiable
from edge.storage import failures
from edge.storage.base import NO_CONDITIONS, Conditions, Reply, Storage
from edge.storage.failures import Fault, Row
from edge.storage.s3 import S3Storage
from tests.support.canned import OBJECT, STATUS_ANSWERS, full_backlog, resetting_server, s3_error
from tests.support.fault_rig import (
    ATTEMPTS,
    KEY,
    SHORT,
    Outcome,
    name,
    produces,
    read_canned,
    read_folder,
    read_s3,
)
from tests.support.faults import fault_proxy
from tests.support.servers import BUCKET, S3RVER_KEY, MotoServer, S3rver, free_port
from tests.support.stores import tiny_store
from tests.support.tls import certificate_authority

#: A date a complete 304 names (as S3's do, with the ETag).
LAST_MODIFIED = b"Wed, 21 Oct 2015 07:28:00 GMT"

_keys = itertools.count()


@produces(
    failures.WRONG_REGION,
    failures.REDIRECT,
    failures.SIGNED_FOR_ANOTHER_REGION,
    failures.CLOCK_SKEWED,
    failures.ACCESS_DENIED,
    failures.TOO_MANY_REQUESTS,
    failures.CLIENT_ERROR,
    failures.INTERNAL_ERROR,
    failures.BAD_GATEWAY,
    failures.SLOW_DOWN,
    failures.GATEWAY_TIMEOUT,
    failures.SERVER_ERROR,
    failures.MALFORMED,
    failures.NO_LENGTH,
    failures.UNASKED_PART,
    failures.BODY_CUT,
)
def canned_answer(request: pytest.FixtureRequest, row: Row) -> Outcome:
    return read_canned(STATUS_ANSWERS[name(row)])


@produces(failures.READ_TIMEOUT, failures.BODY_TIMEOUT)
def silent_answer(request: pytest.FixtureRequest, row: Row) -> Outcome:
    return read_canned(STATUS_ANSWERS[name(row)], read_timeout=SHORT)


@produces(failures.CLOSED_BEFORE_ANSWER)
def hang_up(request: pytest.FixtureRequest, row: Row) -> Outcome:
    return read_canned(None)


@produces(failures.WRONG_PART)
def wrong_part(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A Content-Range of four bytes over a body of three (a part narrower or wider than
    asked has rows of its own: tests/support/part_faults.py)."""
    reply = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nContent-Range: bytes 2-5/9"
    return read_canned(reply + b"\r\n\r\ncde", conditions=Conditions(range=(2, 5)))


@produces(failures.BAD_LISTING)
def unreadable_listing(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A listing (Storage.siblings) answered 200 with a page that is no ListBucketResult."""
    page = b"<html>busy</html>"

    async def answer(connection: int, number: int, head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)

    async def list_siblings(storage: S3Storage) -> Reply:
        found = await storage.siblings(KEY)
        raise AssertionError(f"an unreadable listing was read: {found}")

    with tiny_store(answer) as (port, seen):
        outcome = read_s3(f"http://127.0.0.1:{port}", then=list_siblings)
    outcome.requests = len(seen)
    return outcome


@produces(failures.NOT_MODIFIED)
def not_modified(request: pytest.FixtureRequest, row: Row) -> Outcome:
    outcome = read_canned(
        b'HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\nLast-Modified: %s\r\n\r\n' % LAST_MODIFIED,
        conditions=Conditions(if_none_match='"e1"'),
    )
    assert outcome.reply is not None and outcome.reply.status == 304
    return outcome


@produces(failures.PRECONDITION_FAILED)
def precondition_failed(request: pytest.FixtureRequest, row: Row) -> Outcome:
    async def answer(connection: int, request: int, head: bytes) -> bytes:
        if b"if-match:" in head.lower():
            return s3_precondition_failed
        return OBJECT

    s3_precondition_failed = s3_error("412 Precondition Failed", "PreconditionFailed")
    with tiny_store(answer) as (port, seen):
        outcome = read_s3(
            f"http://127.0.0.1:{port}", conditions=Conditions(range=(1, 2), if_range='"e0"')
        )
    assert outcome.reply is not None and (outcome.reply.status, outcome.reply.data) == (
        200,
        b"hello",
    ), "If-Range did not hold: the whole object"
    outcome.requests = len(seen)
    return outcome


@produces(failures.STALE_CONNECTION)
def stale_connection(request: pytest.FixtureRequest, row: Row) -> Outcome:
    async def answer(connection: int, number: int, head: bytes) -> bytes | None:
        return None if (connection, number) == (0, 1) else OBJECT  # dropped as edge reused it

    async def twice(storage: S3Storage) -> Reply:
        first = await storage.read(KEY, NO_CONDITIONS, head=False)
        assert first.data == b"hello"
        return await storage.read(KEY, NO_CONDITIONS, head=False)

    with tiny_store(answer) as (port, seen):
        outcome = read_s3(f"http://127.0.0.1:{port}", then=twice, max_attempts=1)
    assert outcome.reply is not None and outcome.reply.data == b"hello", "nothing failed"
    assert len(seen) == 3, "the dropped request went again on a new connection"
    return outcome


@produces(failures.POOL_BUSY)
def pool_busy(request: pytest.FixtureRequest, row: Row) -> Outcome:
    size = 1024 * 1024

    async def answer(connection: int, number: int, head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"b" * size

    async def second_while_first_streams(storage: S3Storage) -> Reply:
        first = await storage.read(KEY, NO_CONDITIONS, head=False)
        assert first.body is not None, "a streamed body holds the one connection"
        try:
            return await storage.read(KEY, NO_CONDITIONS, head=False)
        finally:
            await first.body.aclose()

    with tiny_store(answer) as (port, seen):
        endpoint = f"http://127.0.0.1:{port}"
        outcome = read_s3(
            endpoint, then=second_while_first_streams, max_connections=1, connect_timeout=SHORT
        )
    assert len(seen) == 1, "the second read never had a connection"
    return outcome


@produces(failures.CONNECT_REFUSED)
def refused(request: pytest.FixtureRequest, row: Row) -> Outcome:
    return read_s3(f"http://127.0.0.1:{free_port()}")


@produces(failures.DNS_FAILURE)
def unresolvable(request: pytest.FixtureRequest, row: Row) -> Outcome:
    outcome = read_s3("http://edge-test.invalid:9")  # .invalid never resolves (RFC 6761)
    assert outcome.error is not None and "edge-test.invalid" in outcome.error.reason
    return outcome


@produces(failures.CONNECT_FAILED)
def reset_at_once(request: pytest.FixtureRequest, row: Row) -> Outcome:
    with resetting_server() as port:
        return read_s3(f"https://127.0.0.1:{port}")


@produces(failures.CONNECT_TIMEOUT)
def never_accepted(request: pytest.FixtureRequest, row: Row) -> Outcome:
    with full_backlog() as port:
        started = time.monotonic()
        outcome = read_s3(f"http://127.0.0.1:{port}", connect_timeout=SHORT)
    assert time.monotonic() - started < ATTEMPTS * (SHORT + 0.5)
    return outcome


@produces(failures.TLS_UNTRUSTED)
def untrusted(request: pytest.FixtureRequest, row: Row) -> Outcome:
    moto: MotoServer = request.getfixturevalue("moto_server")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    _, server_tls = certificate_authority(tmp_path)
    with fault_proxy(urlsplit(moto.endpoint_url).port or 0, tls=server_tls) as proxy:
        outcome = read_s3(f"https://127.0.0.1:{proxy.port}")
    assert proxy.seen == [], "no request goes to a store whose certificate fails"
    return outcome


def moto_key(moto: MotoServer, data: bytes | None = None) -> str:
    """A fresh key in moto's bucket, holding ``data`` if given."""
    key = f"failures/{next(_keys)}/x.png"
    if data is not None:
        client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


def moto_requests(moto: MotoServer, key: str, before: int) -> int:
    return len([seen for seen in moto.seen[before:] if seen.path.endswith(key)])


@produces(failures.NO_SUCH_KEY)
def no_such_key(request: pytest.FixtureRequest, row: Row) -> Outcome:
    moto: MotoServer = request.getfixturevalue("moto_server")
    key, before = moto_key(moto), len(moto.seen)
    head = read_s3(moto.endpoint_url, key=key, head=True)
    assert isinstance(head.error, NotFound), "a HEAD's 404 too"
    outcome = read_s3(moto.endpoint_url, key=key)
    outcome.requests = moto_requests(moto, key, before) - 1
    return outcome


@produces(failures.BARE_NOT_FOUND)
def head_of_a_missing_key(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A HEAD's 404 has no document: the bucket's HEAD says whether the object's stands."""
    moto: MotoServer = request.getfixturevalue("moto_server")
    gone = read_s3(moto.endpoint_url, bucket="no-such-bucket", head=True)
    assert isinstance(gone.error, Fault) and gone.error.row is failures.NO_SUCH_BUCKET, (
        "no bucket: 502, never 404"
    )
    key, before = moto_key(moto), len(moto.seen)
    outcome = read_s3(moto.endpoint_url, key=key, head=True)
    asked = [seen.method for seen in moto.seen[before:]]
    assert asked == ["HEAD", "HEAD"], f"the object's HEAD, then the bucket's: {asked}"
    outcome.requests = moto_requests(moto, key, before)
    return outcome


@produces(failures.NOT_THE_OBJECT)
def not_about_the_object(request: pytest.FixtureRequest, row: Row) -> Outcome:
    page = b"<html><body>404 Not Found</body></html>"
    proxy = read_canned(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
    )
    assert isinstance(proxy.error, Fault) and proxy.error.row is row, "a proxy's page"
    return read_canned(s3_error("404 Not Found", "NoSuchWebsiteConfiguration"))


@produces(failures.NO_SUCH_BUCKET)
def no_such_bucket(request: pytest.FixtureRequest, row: Row) -> Outcome:
    moto: MotoServer = request.getfixturevalue("moto_server")

    async def check(storage: S3Storage) -> Reply:
        await storage.check()
        raise AssertionError("no bucket, and the check passed")

    checked = read_s3(moto.endpoint_url, bucket="no-such-bucket", then=check)
    assert isinstance(checked.error, Fault) and checked.error.row is failures.NO_SUCH_BUCKET
    outcome = read_s3(moto.endpoint_url, bucket="no-such-bucket")
    assert outcome.error is not None and "no bucket no-such-bucket at" in outcome.error.reason
    outcome.requests = 1  # moto answered it: a refusal, never tried again
    return outcome


@produces(failures.RANGE_NOT_SATISFIABLE)
def range_past_the_end(request: pytest.FixtureRequest, row: Row) -> Outcome:
    moto: MotoServer = request.getfixturevalue("moto_server")
    key = moto_key(moto, b"12345")
    outcome = read_s3(moto.endpoint_url, key=key, conditions=Conditions(range=(10, None)))
    assert isinstance(outcome.error, RangeNotSatisfiable) and outcome.error.size == 5
    return outcome


@produces(failures.BAD_CREDENTIALS)
def unknown_access_key(request: pytest.FixtureRequest, row: Row) -> Outcome:
    server: S3rver = request.getfixturevalue("s3rver_server")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOT-" + S3RVER_KEY)
    outcome = read_s3(server.endpoint_url)
    assert outcome.error is not None and "403 InvalidAccessKeyId" in outcome.error.reason
    return outcome


@produces(failures.CREDENTIALS)
def failing_credential_process(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A `credential_process` that gives credentials expiring within botocore's mandatory
    refresh window once, then fails: the refresh edge asks for fails."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    given = tmp_path / "given"
    script = tmp_path / "credentials.py"
    script.write_text(
        "import pathlib, sys\n"
        f"given = pathlib.Path({str(given)!r})\n"
        "if given.exists():\n"
        "    sys.exit('no more credentials')\n"
        "given.touch()\n"
        'print(\'{"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "SK",'
        f' "SessionToken": "T", "Expiration": "{expires}"}}\')\n'
    )
    config = tmp_path / "config"
    config.write_text(f"[profile edge]\ncredential_process = {sys.executable} {script}\n")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "edge")
    outcome = read_s3(f"http://127.0.0.1:{free_port()}")
    assert given.exists(), "the process gave credentials once"
    return outcome


@produces(failures.CHANGED)
def changed_while_paused(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """Both storages: an object replaced between a read and its resumption."""
    moto: MotoServer = request.getfixturevalue("moto_server")
    key = moto_key(moto, b"A" * 100)

    async def resume_after_a_swap(storage: S3Storage) -> Reply:
        first = await storage.read(key, NO_CONDITIONS, head=False)
        moto_put(moto, key, b"B" * 100)
        body = await storage.resume(key, first.stat, 10, 99)
        return Reply(206, first.stat, 10, 99, body)

    outcome = read_s3(moto.endpoint_url, then=resume_after_a_swap)
    assert isinstance(outcome.error, Fault) and outcome.error.row is failures.CHANGED
    root = request.getfixturevalue("tmp_path") / "folder"
    (root / "public").mkdir(parents=True)
    (root / "public" / "x.png").write_bytes(b"A" * 100)
    return read_folder(root, then=lambda storage: folder_resume_after_a_swap(storage, root))


def moto_put(moto: MotoServer, key: str, data: bytes) -> None:
    client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key=key, Body=data)


async def folder_resume_after_a_swap(storage: Storage, root: Path) -> Reply:
    first = await storage.read("public/x.png", NO_CONDITIONS, head=False)
    staged = root / "public" / ".x.tmp"
    staged.write_bytes(b"B" * 100)
    os.utime(staged, (1, 1))  # another mtime, so another ETag
    os.replace(staged, root / "public" / "x.png")
    body = await storage.resume("public/x.png", first.stat, 10, 99)
    return Reply(206, first.stat, 10, 99, body)

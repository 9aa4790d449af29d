"""Each outcome of the failure table (docs/troubleshooting.md, "Every storage failure"),
met by a whole edge process: `edge serve` started as an operator would, a real fault
behind it (a loopback store, moto, a folder), the client's answer, the requests storage
saw, and the warning on stderr. One fault per distinct outcome: tried again then 502,
tried again then 504, tried again at once (no failure), 502 at once, 404, 416, a 304,
and a body that fails (answered if read whole, cut if streaming); then the two answers
the table changed: a missing bucket, and a bucket in another region.

These tests name no table row: they hold against any version of edge, and show which
outcomes a change moves.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.support.canned import HEAD_OK, OBJECT, SILENCE, STATUS_ANSWERS, UNPRIVILEGED
from tests.support.client import TLS, assert_error
from tests.support.processes import EDGE, clean_env, stop, wait_ready
from tests.support.servers import BUCKET, MotoServer, free_port
from tests.support.stores import Hangup, Parts, tiny_store
from tests.support.world import AWS

#: Loopback stores answer this key (edge reads public/alice/x.png for /i/alice/x.png).
PATH = "/i/alice/x.png"
#: How long a warning may take to reach stderr (its writer thread flushes every 20 ms).
LOG_SECONDS = 5.0
_prefixes = itertools.count()


class Edge:
    """`edge serve` in a process of its own, its stderr and stdout in a file."""

    def __init__(self, tmp_path: Path, stack: contextlib.ExitStack) -> None:
        self.tmp_path, self.stack = tmp_path, stack
        self.log = tmp_path / "edge.log"

    def serve(self, env: dict[str, str], wrapper: list[str] | None = None) -> str:
        """Start `edge serve` (run by ``wrapper``, if given) with these settings."""
        port = free_port()
        settings = {"EDGE_ACCESS_LOG": "off", "EDGE_CACHE_TTL": "0", **env}
        output = self.stack.enter_context(self.log.open("ab"))
        process = subprocess.Popen(
            [*(wrapper or []), *EDGE, "serve", "--port", str(port)],
            env=clean_env(**settings),
            cwd=self.tmp_path,
            stdout=output,
            stderr=output,
        )
        self.stack.callback(stop, process)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process)
        return base

    def s3(self, endpoint: str, *, bucket: str = BUCKET, prefix: str = "", **env: str) -> str:
        """Start edge on a bucket at ``endpoint`` (without the start-up check of the bucket:
        a loopback store answers every GET, a listing's too, with its fault)."""
        storage = {
            "EDGE_STORAGE": f"s3://{bucket}/{prefix}",
            "EDGE_S3_ENDPOINT_URL": endpoint,
            "EDGE_S3_REGION": "us-east-1",
            "EDGE_S3_CHECK_BUCKET": "off",
        }
        return self.serve({**storage, **AWS, **env})

    def said(self, text: str) -> str:
        """The log line holding ``text``, once the process has written it."""
        deadline = time.monotonic() + LOG_SECONDS
        while True:
            for line in self.log.read_text(errors="replace").splitlines():
                if text in line:
                    return line
            assert time.monotonic() < deadline, f"never logged {text!r}:\n{self.log.read_text()}"
            time.sleep(0.05)


@pytest.fixture
def edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Edge]:
    for name, value in AWS.items():  # for the objects a test puts in moto
        monkeypatch.setenv(name, value)
    with contextlib.ExitStack() as stack:
        yield Edge(tmp_path, stack)


Answer = bytes | Parts | None


@contextlib.contextmanager
def store(get: Callable[[int, int], Answer]) -> Iterator[tuple[str, list[bytes]]]:
    """A loopback store answering HEADs (readiness) and GETs with ``get(connection,
    request)``; yields its endpoint and the request lines it saw."""

    async def answer(connection: int, request: int, head: bytes) -> Answer:
        return HEAD_OK if head.startswith(b"HEAD") else get(connection, request)

    with tiny_store(answer) as (port, seen):
        yield f"http://127.0.0.1:{port}", seen


def gets(seen: list[bytes]) -> int:
    return len([line for line in seen if line.startswith(b"GET")])


def test_tried_again_then_502(edge: Edge) -> None:
    with store(lambda connection, request: STATUS_ANSWERS["SLOW_DOWN"]) as (endpoint, seen):
        base = edge.s3(endpoint, EDGE_S3_MAX_ATTEMPTS="3")
        assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 502, "STORAGE_ERROR")
        assert gets(seen) == 3
    edge.said("S3 answered 503 SlowDown for public/alice/x.png (3 attempts)")


def test_tried_again_then_504(edge: Edge) -> None:
    with store(lambda connection, request: Parts([SILENCE])) as (endpoint, seen):
        base = edge.s3(endpoint, EDGE_S3_MAX_ATTEMPTS="2", EDGE_S3_READ_TIMEOUT="0.3")
        assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 504, "STORAGE_TIMEOUT")
        assert gets(seen) == 2
    host = endpoint.removeprefix("http://")
    edge.said(f"storage at {host} silent for 0.3 s before answering (2 attempts)")


def test_tried_again_at_once_is_no_failure(edge: Edge) -> None:
    """S3 drops a kept-alive connection as edge reuses it: sent again, uncounted."""
    with store(lambda c, r: None if (c, r) == (0, 1) else OBJECT) as (endpoint, seen):
        base = edge.s3(endpoint, EDGE_S3_MAX_ATTEMPTS="1")
        for _ in range(3):
            response = httpx.get(base + PATH, timeout=10, verify=TLS)
            assert response.status_code == 200 and response.content == b"hello"
        assert gets(seen) == 4


def test_a_refusal_is_502_at_once(edge: Edge) -> None:
    with store(lambda connection, request: STATUS_ANSWERS["ACCESS_DENIED"]) as (endpoint, seen):
        base = edge.s3(endpoint, EDGE_S3_MAX_ATTEMPTS="3")
        response = httpx.get(base + PATH, timeout=10, verify=TLS)
        assert_error(response, 502, "STORAGE_ERROR")
        assert gets(seen) == 1
    line = edge.said("S3 answered 403 AccessDenied for public/alice/x.png")
    assert "AccessDenied" not in response.text, "the reason is the operator's"
    assert "(1 attempts)" not in line


def moto_prefix(moto: MotoServer, objects: dict[str, bytes]) -> str:
    prefix = f"outcomes{next(_prefixes)}/"
    client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    for key, data in objects.items():
        client.put_object(Bucket=BUCKET, Key=prefix + key, Body=data)
    return prefix


def test_no_such_key_is_404_and_a_range_past_the_end_416(
    edge: Edge, moto_server: MotoServer
) -> None:
    prefix = moto_prefix(moto_server, {"public/alice/five.png": b"12345"})
    base = edge.s3(moto_server.endpoint_url, prefix=prefix)
    assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 404, "NOT_FOUND")
    beyond = httpx.get(
        base + "/i/alice/five.png", headers={"range": "bytes=10-"}, timeout=10, verify=TLS
    )
    assert_error(beyond, 416, "RANGE_NOT_SATISFIABLE")
    assert beyond.headers["content-range"] == "bytes */5"


def test_a_condition_that_holds_is_304_not_a_failure(edge: Edge, moto_server: MotoServer) -> None:
    prefix = moto_prefix(moto_server, {"public/alice/five.png": b"12345"})
    base = edge.s3(moto_server.endpoint_url, prefix=prefix)
    etag = httpx.get(base + "/i/alice/five.png", timeout=10, verify=TLS).headers["etag"]
    again = httpx.get(
        base + "/i/alice/five.png", headers={"if-none-match": etag}, timeout=10, verify=TLS
    )
    assert again.status_code == 304


BIG = 300 * 1024  # streamed: over the 64 KiB read whole before answering


@pytest.mark.parametrize(
    ("size", "fault", "status", "code"),
    [
        (9, "silence", 504, "STORAGE_TIMEOUT"),
        (9, "hang-up", 502, "STORAGE_ERROR"),
        (BIG, "silence", None, None),
        (BIG, "hang-up", None, None),
    ],
    ids=["small silence", "small hang-up", "streaming silence", "streaming hang-up"],
)
def test_a_failing_body_is_answered_if_read_whole_else_cut(
    edge: Edge, size: int, fault: str, status: int | None, code: str | None
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    part = head + b"p" * min(size // 2, 128 * 1024)
    reply = Parts([part, SILENCE, b""]) if fault == "silence" else Hangup(part)
    with store(lambda connection, request: reply) as (endpoint, seen):
        base = edge.s3(endpoint, EDGE_S3_MAX_ATTEMPTS="3", EDGE_S3_READ_TIMEOUT="0.3")
        if status is None:
            with pytest.raises(httpx.RemoteProtocolError):  # fewer bytes than promised
                httpx.get(base + PATH, timeout=10, verify=TLS)
        else:
            assert code is not None
            assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), status, code)
        assert gets(seen) == 1, "a body under way is never asked for again"
    edge.said("stalled for 0.3 s" if fault == "silence" else "cut short: connection closed")


def test_the_folder_refused_is_502_and_a_fifo_404(edge: Edge, tmp_path: Path) -> None:
    """Permission denied (in a process root's capabilities do not override), and a FIFO,
    which a blocking open would wait on forever."""
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private").mkdir()
    (root / "public" / "alice" / "x.png").write_bytes(b"x")
    (root / "public" / "alice" / "x.png").chmod(0)
    os.mkfifo(root / "public" / "alice" / "pipe.png")
    base = edge.serve({"EDGE_STORAGE": str(root)}, wrapper=UNPRIVILEGED)
    assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 502, "STORAGE_ERROR")
    edge.said("cannot open public/alice/x.png: Permission denied")
    assert_error(httpx.get(base + "/i/alice/pipe.png", timeout=5, verify=TLS), 404, "NOT_FOUND")


def test_a_missing_bucket_is_502_not_404(edge: Edge, moto_server: MotoServer) -> None:
    """A mistyped bucket is the operator's error, not a missing image: 502 with a reason
    naming the bucket, and /readyz fails. A HEAD of an image name, whose 404 S3 sends
    bare, is told too: edge then looks for a source to convert, and the listing says
    NoSuchBucket."""
    base = edge.s3(moto_server.endpoint_url, bucket="no-such-bucket")
    assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 502, "STORAGE_ERROR")
    edge.said("404 NoSuchBucket for public/alice/x.png: no bucket no-such-bucket")
    assert httpx.head(base + PATH, timeout=10, verify=TLS).status_code == 502
    assert_error(httpx.get(base + "/readyz", timeout=10, verify=TLS), 503, "NOT_READY")


def test_a_store_that_redirects_whatever_the_region_is_502_naming_it(edge: Edge) -> None:
    """A 301 naming eu-west-1 is followed once (tests/test_storage_config.py: then served);
    a second one, signed for eu-west-1 already, is the error."""
    with store(lambda connection, request: STATUS_ANSWERS["WRONG_REGION"]) as (endpoint, seen):
        base = edge.s3(endpoint)
        assert_error(httpx.get(base + PATH, timeout=10, verify=TLS), 502, "STORAGE_ERROR")
        assert gets(seen) == 2
    assert "edge signs for eu-west-1 from now on" in edge.said("is in region eu-west-1, not")
    line = edge.said("301 PermanentRedirect for public/alice/x.png")
    assert "the bucket is in region eu-west-1, edge signs for eu-west-1" in line, line

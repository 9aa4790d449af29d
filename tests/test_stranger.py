"""A stranger's end-to-end attack on a real edge (uvicorn on a loopback port), and through
real nginx with deploy/nginx/edge-proxy.conf: every private object holds a canary made for
this run, and no answer to a request that is not entitled to it (unsigned, expired, forged,
another user's or another path's signature, a signature moved between paths or transforms,
escaped, doubled or dotted paths, ranges, conditionals, transforms and conversions of a
private image, odd headers, smuggling shapes, kept-alive and pipelined connections mixing
the owner's requests with a stranger's) carries a byte of it, a 5xx, a traceback or an
error outside the API's shape. The memos keyed on queries and paths (verdicts, parsed
transforms, variant keys, validated paths) are filled by the owner's signed requests first,
then asked by strangers sharing their query or path.
"""

from __future__ import annotations

import random
import secrets
import socket
import time
from pathlib import Path

import httpx
import pytest

from edge.signing import sign_url
from tests.support.client import TLS
from tests.support.nginx import run_nginx
from tests.support.raw_http import Answer, exchange, read_answer, send_raw
from tests.support.stranger import (
    PRIVATE,
    WIDTH,
    Ask,
    Signer,
    asks,
    judge,
    log_problems,
    png_size,
    populate,
)
from tests.support.world import BEFORE_STORAGE, World, folder_world


def signer(world: World) -> Signer:
    """Sign with the world's key (tests.support.stranger.Signer)."""

    def sign(
        path: str, transform: str | None = None, exp: int | None = None, kid: bool = False
    ) -> str:
        expires = int(time.time()) + 600 if exp is None else exp
        return sign_url(path, key=world.key, exp=expires, transform=transform, include_kid=kid)

    return sign


def attack(base: str, every: list[Ask], canary: bytes, *, pipelined: bool) -> list[str]:
    """Every ask on kept-alive connections (a new one wherever the server closed one): what
    was wrong with each answer."""
    problems: list[str] = []
    left = every
    while left:
        answers = exchange(base, left, pipelined=pipelined)
        if not answers:
            problems.append(f"{left[0].label}: {left[0].target[:80]!r}: no answer at all")
            answers = [Answer(0, [], b"", b"")]
        for ask, answer in zip(left, answers, strict=False):
            problems += [
                f"{ask.label}: {ask.method} {ask.target[:90]!r}: {p}"
                for p in judge(ask, answer, canary)
                if answer.status
            ]
        left = left[len(answers) :]
    return problems


def one_by_one(base: str, every: list[Ask], canary: bytes) -> list[str]:
    """Each ask on a connection of its own: what was wrong with each answer."""
    problems: list[str] = []
    for ask in every:
        answers = exchange(base, [ask], pipelined=False)
        if not answers:
            problems.append(f"{ask.label}: {ask.target[:80]!r}: no answer")
        for answer in answers:
            problems += [
                f"{ask.label}: {ask.method} {ask.target[:90]!r}: {p}"
                for p in judge(ask, answer, canary)
            ]
    return problems


@BEFORE_STORAGE
def test_no_stranger_request_gets_a_private_byte(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each request alone, in order (the owner's first: memos full), then all of them mixed
    on kept-alive connections, one at a time and pipelined."""
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    base = world.serve(EDGE_ACCESS_LOG="json")
    every = list(asks(signer(world), int(time.time())))
    assert len(every) > 400
    problems = one_by_one(base, every, canary)
    if world.kind == "file":  # the connection's handling is the same whatever the storage
        mixed = random.Random(7).sample(every, len(every))
        problems += attack(base, mixed, canary, pipelined=False)
        problems += attack(base, mixed[::-1], canary, pipelined=True)
    assert not problems, "\n".join(problems[:40])
    time.sleep(0.3)  # the access log's thread writes every 20 ms
    out, logged = capfd.readouterr()
    assert "Traceback" not in logged and "ERROR" not in logged, logged[-3000:]
    refused = sum("huge header" in ask.label for ask in every)  # by the connection, unlogged
    assert out.count('"status":') >= len(every) - refused
    problems = log_problems(out, every)
    assert not problems, "\n".join(problems[:40])


def test_memos_filled_by_the_owner_answer_no_stranger(tmp_path: Path) -> None:
    """Each memo filled by a signed request, then asked by an unsigned or differently signed
    one sharing its query or its path; with Server-Timing on (its own path to the verdict)."""
    world = folder_world(tmp_path)
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    sign = signer(world)
    with world.stack:
        base = world.serve(EDGE_SERVER_TIMING="on")

        def get(target: str) -> httpx.Response:
            return httpx.get(base + target, timeout=10, verify=TLS)

        # A private variant first, then the same query unsigned: the public variant.
        owner = get(sign("/i/alice/both.png", transform=f"w={WIDTH}"))
        assert owner.status_code == 200 and png_size(owner.content) == (WIDTH, 15)
        stranger = get(f"/i/alice/both.png?w={WIDTH}")
        assert stranger.status_code == 200 and png_size(stranger.content) == (WIDTH, WIDTH)
        # The unsigned verdict and parse of "w=20", remembered from a public image, on a
        # private one.
        assert get(f"/i/alice/pub.png?w={WIDTH}").status_code == 200
        assert get(f"/i/alice/secret.png?w={WIDTH}").status_code == 404
        # A genuine query asked first on another path (refused, remembered), then on its own.
        good = sign("/i/alice/secret.png")
        query = good.partition("?")[2]
        assert get(f"/i/bob/secret.png?{query}").status_code == 403
        mine = get(good)
        assert mine.status_code == 200 and canary in mine.content
        # Remembered as genuine: the same query on the other path still refused, the same
        # decoded path escaped still granted, the path without it still 404.
        assert get(f"/i/bob/secret.png?{query}").status_code == 403
        assert canary in get(f"/i/alice/%73ecret.png?{query}").content
        assert get("/i/alice/secret.png").status_code == 404
        # A remembered grant is judged anew in time: past its exp it is refused.
        soon = sign("/i/alice/secret.png", exp=int(time.time()) + 2)
        assert get(soon).status_code == 200
        time.sleep(max(0.0, int(soon.rpartition("=")[2]) - time.time()) + 0.05)
        late = get(soon)
        assert late.status_code == 403 and canary not in late.content
        assert late.json()["error"]["code"] == "SIGNATURE_EXPIRED"


SMUGGLED = [
    ("CL and TE", "Content-Length: 4\r\nTransfer-Encoding: chunked", "0\r\n\r\n"),
    ("TE and CL", "Transfer-Encoding: chunked\r\nContent-Length: 40", "0\r\n\r\n"),
    ("two CLs", "Content-Length: 0\r\nContent-Length: 50", ""),
    ("TE list", "Transfer-Encoding: chunked, identity", "0\r\n\r\n"),
    ("TE tab", "Transfer-Encoding:\tchunked", "0\r\n\r\n"),
    ("TE folded", "X-A: b\r\n Transfer-Encoding: chunked", "0\r\n\r\n"),
    ("TE xchunked", "Transfer-Encoding: xchunked", "0\r\n\r\n"),
    ("bad chunk", "Transfer-Encoding: chunked", "zz\r\n"),
    ("a body", "Content-Length: 5", "hello"),
    ("two hosts", "Host: other.test", ""),
]


def smuggling_shapes(sign: Signer) -> list[tuple[str, bytes, bool]]:
    """(label, bytes, whether the first request is the owner's): each shape hides an
    unsigned request for a private image after a first request, the owner's or not."""
    hidden = b"GET /i/alice/secret.png HTTP/1.1\r\nHost: edge.test\r\n\r\n"
    shapes = []
    for owner in (False, True):
        first = sign("/i/alice/secret.png") if owner else "/i/alice/pub.png"
        for label, headers, body in SMUGGLED:
            head = f"GET {first} HTTP/1.1\r\nHost: edge.test\r\n{headers}\r\n\r\n{body}"
            shapes.append((f"{label}, owner first: {owner}", head.encode() + hidden, owner))
    big = sign("/i/alice/big.png").encode()
    behind = b"GET %s HTTP/1.1\r\nHost: edge.test\r\n\r\n" % big
    bad = b"GET /i/alice/pub.png HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
    return [
        *shapes,
        ("refused behind the owner's download", behind + bad, True),
        ("garbage behind the owner's download", behind + b"GARBAGE\r\n\r\n", True),
        ("a huge head behind the owner's", behind + b"GET /" + b"x" * 20_000, True),
        (
            "absolute form",
            b"GET http://edge.test/i/alice/secret.png HTTP/1.1\r\nHost: x\r\n\r\n",
            False,
        ),
        *(
            (f"{kind} upgrade, owner first: {owner}", upgrade(kind, target), owner)
            for kind in ("websocket", "h2c")
            for owner, target in ((False, "/i/alice/secret.png"), (True, big.decode()))
        ),
        ("HTTP/1.0", b"GET /i/alice/secret.png HTTP/1.0\r\n\r\n", False),
        ("HTTP/0.9", b"GET /i/alice/secret.png\r\n\r\n", False),
        ("LF only", b"GET /i/alice/secret.png HTTP/1.1\nHost: x\n\n", False),
        ("NUL in a header", b"GET /i/alice/secret.png HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", False),
        ("space in the target", b"GET /i/alice/secret.png HTTP/1.1 x\r\nHost: x\r\n\r\n", False),
    ]


def upgrade(kind: str, target: str) -> bytes:
    """A request asking to switch protocols: edge answers it as HTTP/1.1, then closes."""
    extra = {
        "websocket": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13",
        "h2c": "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
    }[kind]
    head = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: {kind}\r\n"
    return f"{head}{extra}\r\n\r\n".encode()


def smuggle(base: str, shapes: list[tuple[str, bytes, bool]], canary: bytes) -> list[str]:
    problems: list[str] = []
    for label, data, owner_first in shapes:
        answers = send_raw(base, data)
        if not answers:
            problems.append(f"{label}: the connection closed without an answer")
        for index, answer in enumerate(answers):
            entitled = owner_first and index == 0
            ask = Ask(label, "", entitled=entitled)
            problems += [f"{label}, answer {index}: {p}" for p in judge(ask, answer, canary)]
    return problems


@BEFORE_STORAGE
def test_smuggling_shapes_reach_no_private_byte(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each shape is answered (a refusal after the answers already under way, which go
    out whole), and the server logs no error: a stranger sets that rate."""
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    base = world.serve()
    problems = smuggle(base, smuggling_shapes(signer(world)), canary)
    assert not problems, "\n".join(problems)
    logged = capfd.readouterr().err
    assert not any(word in logged for word in ("Traceback", "ERROR", "WARNING")), logged[-3000:]


def test_through_nginx_no_private_byte_and_none_cached(tmp_path: Path) -> None:
    """The same attack through nginx and its cache (the owner's requests first, so private
    answers pass through it), then every private image asked unsigned again: nginx's cache
    holds no private byte for any URL a stranger sent."""
    (tmp_path / "world").mkdir()
    world = folder_world(tmp_path / "world")
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    sign = signer(world)
    with world.stack:
        edge = world.serve()
        with run_nginx(
            "edge-proxy.conf", tmp_path / "nginx", upstreams=[edge.removeprefix("http://")]
        ) as base:
            every = list(asks(sign, int(time.time())))
            problems = one_by_one(base, every, canary)
            problems += attack(base, every[::-1], canary, pipelined=True)
            problems += smuggle(base, smuggling_shapes(sign), canary)
            again = [
                Ask(f"again: {a.label}", a.target, a.method)
                for a in every
                if not a.entitled and a.method in ("GET", "HEAD")
            ]
            again += [Ask(f"again unsigned: {path}", path) for path in PRIVATE]
            problems += one_by_one(base, again, canary)
    assert not problems, "\n".join(problems[:40])
    logged = (tmp_path / "nginx" / "edge-proxy-access.log").read_text()
    assert logged.count('"status":') >= len(every)
    problems = log_problems(logged, every)
    assert not problems, "\n".join(problems[:40])


def test_a_body_refused_while_its_answer_streams_leaves_that_answer_whole(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The owner's download announces a chunked body, then sends a malformed chunk once its
    answer has begun: the answer still ends whole, nothing is logged as an error, and
    nothing but a JSON refusal may follow it before the connection closes."""
    world = folder_world(tmp_path)
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    world.send_buffer = 8192  # the answer (200 KB) waits for the client to read it
    with world.stack:
        base = world.serve()
        host, port = base.removeprefix("http://").split(":")
        target = signer(world)("/i/alice/big.png")
        head = f"GET {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
            sock.makefile("rb") as stream,
        ):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            sock.settimeout(10)
            sock.connect((host, int(port)))
            sock.sendall(head.encode())
            assert stream.peek(1)  # the answer has begun
            sock.sendall(b"zz\r\n")
            answers = []
            while (answer := read_answer(stream, head=False)) is not None:
                answers.append(answer)
    owner = Ask("owner", target, entitled=True, whole=True)
    assert answers and not judge(owner, answers[0], canary)
    for answer in answers[1:]:
        assert answer.status == 400 and not judge(Ask("after", ""), answer, canary)
    logged = capfd.readouterr().err
    assert "Traceback" not in logged and "ERROR" not in logged, logged[-3000:]


def test_through_nginx_auth_request_no_private_byte(tmp_path: Path) -> None:
    """The same requests through nginx in auth_request mode (deploy/nginx/auth-request.conf):
    nginx serves the files itself on edge's verdict, and no stranger gets a private byte."""
    (tmp_path / "world").mkdir()
    world = folder_world(tmp_path / "world")
    canary = secrets.token_hex(16).encode()
    populate(world, canary)
    with world.stack:
        edge = world.serve()
        with run_nginx(
            "auth-request.conf",
            tmp_path / "nginx",
            upstreams=[edge.removeprefix("http://")],
            root=world.root,
        ) as base:
            every = list(asks(signer(world), int(time.time())))
            problems = one_by_one(base, every, canary)
    assert not problems, "\n".join(problems[:40])

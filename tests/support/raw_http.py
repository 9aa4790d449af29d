"""A raw HTTP/1.1 client for what no client library sends: requests written exactly as
given, several on one kept-alive connection (each after the last answer, or all at once,
pipelined), and whatever bytes a smuggling test wants on the wire; every answer read back
with its head as sent (tests/test_stranger.py)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


class Request(Protocol):
    """What :func:`exchange` sends: the request's bytes, and its method (a HEAD's answer
    has no body to read)."""

    @property
    def method(self) -> str: ...

    def wire(self) -> bytes: ...


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


def never_shown(status: int, raw: bytes, *, canary: bytes, entitled: bool) -> list[str]:
    """What no answer may show, whatever was asked: a 5xx, a traceback, or a private
    object's bytes (``canary``) to a request not ``entitled`` to them."""
    found = []
    if status >= 500:
        found.append(f"status {status}")
    if b"Traceback" in raw or b'File "' in raw:
        found.append("a traceback")
    if canary in raw and not entitled:
        found.append("PRIVATE BYTES to a request not entitled to them")
    return found


def read_answer(reader: BinaryIO, *, head: bool) -> Answer | None:
    """One response from a buffered socket file, or None if the server closed first."""
    raw = [status_line := reader.readline()]
    if not status_line:
        return None
    if not status_line.startswith(b"HTTP/"):  # an HTTP/0.9 answer: the body alone
        rest = status_line + reader.read()
        return Answer(0, [], rest, rest)
    headers = []
    while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
        raw.append(line)
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    status = int(status_line.split()[1])
    found = dict(headers)
    body = b""
    if head or status in (204, 304):
        pass
    elif found.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int(reader.readline().split(b";")[0], 16):
            parts.append(reader.read(size))
            reader.readline()
        reader.readline()
        body = b"".join(parts)
    elif "content-length" in found:
        body = reader.read(int(found["content-length"]))
    else:
        body = reader.read()
    return Answer(status, headers, body, b"".join(raw) + b"\r\n" + body)


def exchange(
    base: str, asks: Sequence[Request], *, pipelined: bool, timeout: float = 10
) -> list[Answer]:
    """Every ask on one kept-alive connection, written all at once (``pipelined``) or each
    after the last answer; the answers, fewer if the server closed the connection."""
    host, port = base.removeprefix("http://").split(":")
    answers: list[Answer] = []
    with (
        socket.create_connection((host, int(port)), timeout=timeout) as sock,
        sock.makefile("rb") as stream,
    ):
        if pipelined:
            sock.sendall(b"".join(ask.wire() for ask in asks))
        for ask in asks:
            if not pipelined:
                sock.sendall(ask.wire())
            try:
                answer = read_answer(stream, head=ask.method == "HEAD")
            except ConnectionResetError:  # closed with our next requests unread
                answer = None
            if answer is None:
                break
            answers.append(answer)
    return answers


#: Sent after a smuggling shape: its answer (then the server's close) ends the exchange, so
#: the client never half-closes (a server may drop pipelined requests when it sees that).
LAST = b"GET /healthz HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"


def send_raw(base: str, request: bytes, *, timeout: float = 5) -> list[Answer]:
    """Bytes written as they are (a smuggling shape), then :data:`LAST`; every answer until
    the server closes (or goes quiet for ``timeout``)."""
    host, port = base.removeprefix("http://").split(":")
    answers: list[Answer] = []
    with (
        socket.create_connection((host, int(port)), timeout=timeout) as sock,
        sock.makefile("rb") as stream,
    ):
        sock.sendall(request + LAST)
        for _ in range(5):  # at most a request, the ones hidden in it, and LAST
            try:
                answer = read_answer(stream, head=False)
            except (TimeoutError, ConnectionResetError):
                break
            if answer is None:
                break
            answers.append(answer)
    return answers

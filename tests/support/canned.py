"""Canned storage answers and hostile endpoints, for driving each row of the failure table
through a real fault: what S3 sends (error documents, bad lengths, wrong parts, silence,
hang-ups), and endpoints that refuse, reset or never accept."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator

from tests.support.faults import ERROR_XML
from tests.support.stores import Hangup, Parts

OBJECT = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e1"\r\nContent-Type: image/png\r\n'
OBJECT += b"Last-Modified: Wed, 25 Nov 2026 10:00:00 GMT\r\n\r\nhello"
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
#: A pause longer than any read timeout the tests set, short enough to end soon after.
SILENCE = 1.5
#: Runs a command without the capabilities that let root read any file, so that a file's
#: mode bits apply to it as to any other user (the tests may run as root).
UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)


def s3_error(status: str, code: str, *headers: str, extra: str = "") -> bytes:
    """An S3 error answer with its XML document (``extra``: more elements in it)."""
    xml = ERROR_XML % code.encode()
    xml = xml.replace(b"</Error>", extra.encode() + b"</Error>")
    lines = "".join(f"{header}\r\n" for header in headers)
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {len(xml)}\r\n"
        f"{lines}\r\n"
    ).encode() + xml


#: What a store sends for each failure of the S3 table that a loopback store can play.
STATUS_ANSWERS: dict[str, bytes | Parts] = {
    "WRONG_REGION": s3_error(
        "301 Moved Permanently", "PermanentRedirect", "x-amz-bucket-region: eu-west-1"
    ),
    "REDIRECT": s3_error("302 Found", "Found", "Location: http://elsewhere/"),
    "SIGNED_FOR_ANOTHER_REGION": s3_error(  # as MinIO says it
        "400 Bad Request", "AuthorizationHeaderMalformed", extra="<Region>eu-west-3</Region>"
    ),
    "CLOCK_SKEWED": s3_error("403 Forbidden", "RequestTimeTooSkewed"),
    "ACCESS_DENIED": s3_error("403 Forbidden", "AccessDenied"),
    "TOO_MANY_REQUESTS": s3_error("429 Too Many Requests", "TooManyRequests"),
    "CLIENT_ERROR": s3_error("400 Bad Request", "InvalidArgument"),
    "INTERNAL_ERROR": s3_error("500 Internal Server Error", "InternalError"),
    "BAD_GATEWAY": s3_error("502 Bad Gateway", "BadGateway"),
    "SLOW_DOWN": s3_error("503 Slow Down", "SlowDown"),
    "GATEWAY_TIMEOUT": s3_error("504 Gateway Timeout", "GatewayTimeout"),
    "SERVER_ERROR": s3_error("501 Not Implemented", "NotImplemented"),
    "MALFORMED": b"HTTP/9.9 200 OK\r\n\r\n",
    "NO_LENGTH": Hangup(b'HTTP/1.1 200 OK\r\nETag: "e1"\r\n\r\nhello'),
    "UNASKED_PART": b"HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n"
    b"Content-Range: bytes 0-1/5\r\n\r\nhe",
    "BODY_CUT": Hangup(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
    "BODY_TIMEOUT": Parts([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", SILENCE, b"-XYZ"]),
    "READ_TIMEOUT": Parts([SILENCE]),
}


@contextlib.contextmanager
def resetting_server() -> Iterator[int]:
    """A port whose every connection is reset as soon as it is accepted."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)
    stop = threading.Event()

    def reset() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = sock.accept()
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    thread = threading.Thread(target=reset, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port that never completes a connection: it listens with a backlog of one that a
    connection nobody accepts already fills, so the kernel drops every new SYN."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        yield port

"""A fault proxy in front of moto: answers 500 or SlowDown, truncates or resets bodies.

Client connections are kept alive, as S3 keeps them; each request is fetched from moto
on a connection of its own.
`faults` is a list consumed one per request; when empty, requests pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

ERROR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
    b"<Message>injected</Message></Error>"
)


_ERRORS = {
    "500": (b"500 Internal Server Error", b"InternalError"),
    "slowdown": (b"503 Slow Down", b"SlowDown"),
}


@dataclass
class FaultProxy:
    upstream_port: int
    port: int = 0
    faults: list[str] = field(default_factory=list)  # "500", "slowdown", "truncate", "reset"
    seen: list[tuple[str, str]] = field(default_factory=list)  # (request line, fault)
    connections: int = 0  # client connections accepted
    writers: set[asyncio.StreamWriter] = field(default_factory=set)  # to end them at stop

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests on one client connection, kept alive as S3 does, each fetched from moto
        on a connection of its own (moto's server closes after every answer)."""
        self.connections += 1
        self.writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must end."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = _content_length(head)
        body = await reader.readexactly(length) if length else b""
        fault = self.faults.pop(0) if self.faults else "pass"
        self.seen.append((head.split(b"\r\n")[0].decode(), fault))
        if fault in ("500", "slowdown"):
            status, code = _ERRORS[fault]
            xml = ERROR_XML % code
            writer.write(
                b"HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                % (status, len(xml), xml)
            )
            await writer.drain()
            return True
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(_with_close(head) + body)
        await up_writer.drain()
        response = await up_reader.read()  # moto closes after one response
        up_writer.close()
        split = response.index(b"\r\n\r\n") + 4
        response_head, response_body = _without_close(response[:split]), response[split:]
        if fault == "pass" or not response_body:
            writer.write(response_head + response_body)
            await writer.drain()
            return True
        writer.write(response_head + response_body[: len(response_body) // 2])
        await writer.drain()
        if fault == "reset":  # RST instead of FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _with_close(head: bytes) -> bytes:
    return _without_close(head)[:-2] + b"Connection: close\r\n\r\n"


def _without_close(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join(lines[:-2]) + b"\r\n\r\n"


@contextlib.contextmanager
def fault_proxy(upstream_port: int, *, tls: ssl.SSLContext | None = None) -> Iterator[FaultProxy]:
    """The proxy on a loop of its own thread; with ``tls``, clients must speak TLS to it."""
    proxy = FaultProxy(upstream_port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[asyncio.base_events.Server] = []

    async def start() -> None:
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, ssl=tls)
        proxy.port = server.sockets[0].getsockname()[1]
        holder.append(server)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(5)
    try:
        yield proxy
    finally:

        async def stop() -> None:
            for writer in proxy.writers:  # kept-alive connections: servers leave them open
                writer.transport.abort()
            holder[0].close()
            await holder[0].wait_closed()
            await asyncio.sleep(0.05)  # the aborted transports close their sockets

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

"""A fault proxy in front of moto: answers 500 or SlowDown, truncates or resets bodies.

One request per connection (it answers `Connection: close`), enough for aiobotocore.
`faults` is a list consumed one per request; when empty, requests pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
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

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            body = await reader.readexactly(length) if length else b""
            fault = self.faults.pop(0) if self.faults else "pass"
            self.seen.append((head.split(b"\r\n")[0].decode(), fault))
            if fault in ("500", "slowdown"):
                status, code = _ERRORS[fault]
                xml = ERROR_XML % code
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (status, len(xml), xml)
                )
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(_with_close(head) + body)
            await up_writer.drain()
            response = await up_reader.read()  # moto closes after one response
            up_writer.close()
            split = response.index(b"\r\n\r\n") + 4
            response_head, response_body = response[:split], response[split:]
            if fault == "pass" or not response_body:
                writer.write(response)
                await writer.drain()
                return
            writer.write(response_head + response_body[: len(response_body) // 2])
            await writer.drain()
            if fault == "reset":  # RST instead of FIN
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _with_close(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join(lines[:-2]) + b"\r\nConnection: close\r\n\r\n"


@contextlib.contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[asyncio.base_events.Server] = []

    async def start() -> None:
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
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
            holder[0].close()
            await holder[0].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

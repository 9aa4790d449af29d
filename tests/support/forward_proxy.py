"""A loopback forward proxy, as a corporate one is: plain HTTP requests in absolute form
(``GET http://host:port/path``) sent on to their host, and ``CONNECT host:port`` tunnels
for HTTPS. It records the request line of every request it carries (a tunnel's is its
CONNECT: what goes through a tunnel is not for a proxy to read)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Proxy:
    port: int
    seen: list[str] = field(default_factory=list)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def forward_proxy() -> Iterator[Proxy]:
    loop = asyncio.new_event_loop()
    proxy = Proxy(0)
    writers: set[asyncio.StreamWriter] = set()
    pipes: set[asyncio.Future[None]] = set()  # held, so none is collected mid-way

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            for _ in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, version = head.split(b"\r\n")[0].decode().split(" ")
                proxy.seen.append(f"{method} {target}")
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    up_reader, upstream = await asyncio.open_connection(host, int(port))
                    writers.add(upstream)
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
                    return
                parts = urlsplit(target)  # absolute form: the proxy's own request
                if upstream is None:
                    up_reader, upstream = await asyncio.open_connection(
                        parts.hostname, parts.port or 80
                    )
                    writers.add(upstream)
                    pipes.add(asyncio.ensure_future(_pipe(up_reader, writer)))
                origin = parts.path + (f"?{parts.query}" if parts.query else "")
                rest = head.split(b"\r\n", 1)[1]
                upstream.write(f"{method} {origin} {version}\r\n".encode() + rest)
                await upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    proxy.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:

        async def stop() -> None:
            for writer in writers:
                writer.transport.abort()
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

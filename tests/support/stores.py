"""A loopback store: an HTTP/1.1 server that keeps connections alive, as S3 does, and
answers each request as the test says (bytes, bytes in parts with pauses between, or a
hang-up)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator


class Hangup(bytes):
    """A reply after which the store closes the connection."""


class Parts(list[bytes | float]):
    """A reply sent in parts: bytes are written, a number is a pause of that many seconds."""


Handler = Callable[[int, int, bytes], Awaitable[bytes | Parts | None]]


@contextlib.contextmanager
def tiny_store(answer: Handler) -> Iterator[tuple[int, list[bytes]]]:
    """A loopback HTTP/1.1 server that keeps connections alive: ``answer(connection,
    request, head)`` gives what to send for each request on each connection (numbered from
    0), or None to hang up."""
    seen: list[bytes] = []
    loop = asyncio.new_event_loop()
    connections = iter(range(1000))
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(connections)
        writers.add(writer)
        try:
            for request in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head.split(b"\r\n")[0])
                reply = await answer(connection, request, head)
                if reply is None:
                    return
                for part in reply if isinstance(reply, Parts) else [reply]:
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                    else:
                        writer.write(part)
                        await writer.drain()
                if isinstance(reply, Hangup):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:

        async def stop() -> None:
            for writer in writers:  # edge keeps its connections: end them here
                writer.transport.abort()
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)  # the handlers see their connections end

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

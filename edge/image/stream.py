"""Stream: a large body, sent as fast as the client takes it and no faster.

(A small body, read whole or cached, is one message the pipeline sends itself.)
A large one flows chunk by chunk from storage at the client's pace; a client
that stops reading lets go of storage meanwhile (see :meth:`Streamer.stream`).
Returning without completing the response makes the server close the
connection: a client always sees a short body as an error, never as a clean
end.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Receive, Send

from edge.errors import EdgeError, Overloaded, RangeNotSatisfiable
from edge.image.read import Found
from edge.metrics import Metrics
from edge.record import Record
from edge.storage import Body, Storage
from edge.storage.base import CHUNK_BYTES

log = logging.getLogger("edge")

#: Seconds a client may leave a chunk untaken before its download lets go of storage and
#: of its read slot until the client reads again. A client faster than 64 KiB a second
#: never pauses; a slower one costs a ranged read per pause.
STALL_SECONDS = 1.0


class Streamer:
    def __init__(
        self, *, storage: Storage, send_timeout: float, metrics: Metrics | None = None
    ) -> None:
        self.storage = storage
        self.send_timeout = send_timeout
        self.metrics = metrics

    async def stream(self, found: Found, receive: Receive, send: Send, record: Record) -> None:
        """Send a large body chunk by chunk, reading storage only as fast as the client takes it.

        A client that has not taken a chunk after :data:`STALL_SECONDS` is not reading:
        the download lets go of storage (its connection or file) and gives its read
        slot back while it waits, up to ``EDGE_SEND_TIMEOUT``, for the client to take
        that chunk; then it takes a slot again and reads on from where it was, with
        the object's ETag as a condition. So a slot bounds storage work, and clients
        that never read cannot hold every slot. (uvicorn's ``send`` waits for the
        client before it writes anything, so a send given up has written nothing.)
        """
        reply, lease = found.reply, found.lease
        assert reply.body is not None and lease is not None, "a stream is read under a lease"
        body: Body | None = reply.body
        chunks = aiter(reply.body)
        position = reply.start  # the next byte to send
        unsized = reply.length < 0  # sent chunked by the store: its last chunk is the end
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            while unsized or position <= reply.end:
                if body is None:  # read on, from where the client is
                    await lease.take()
                    try:
                        body = await self.storage.resume(
                            found.key, reply.stat, position, -1 if unsized else reply.end
                        )
                    except RangeNotSatisfiable as past:
                        if unsized and past.size == position:  # paused after the last byte
                            break
                        raise
                    chunks = aiter(body)
                    if self.metrics is not None:
                        self.metrics.stats.resumed += 1
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    if unsized:  # the store's last chunk: a clean end
                        break
                    raise
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                try:
                    async with asyncio.timeout(STALL_SECONDS):
                        await send(message)
                except TimeoutError:  # the client is not reading: let go meanwhile
                    await body.aclose()
                    body = None
                    lease.give_back()
                    async with asyncio.timeout(self.send_timeout):
                        await send(message)
                position += len(chunk)
                record.sent += len(chunk)
                if gone.done():
                    return  # the client went away: stop reading storage
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            record.outcome = "client_too_slow"
            log.warning("client took over %ss for one chunk: disconnected", self.send_timeout)
        except StopAsyncIteration:
            record.outcome = "storage_aborted"
            log.warning("storage body of %s ended early, connection aborted", found.key[:300])
        except Overloaded:
            record.outcome = "overloaded"
            log.warning("no read slot to resume a paused download: connection aborted")
        except EdgeError as error:
            record.outcome = "storage_aborted"
            log.warning("storage failed mid-body, connection aborted: %s", error.reason)
        finally:
            gone.cancel()
            if body is not None:
                await body.aclose()

    async def send_held(self, data: bytes, send: Send, record: Record) -> None:
        """Send a body held in memory (a cached object, a variant) a chunk at a time, each
        within ``EDGE_SEND_TIMEOUT``: a client that stops reading holds at most a chunk in
        the connection's buffer, and for no longer than that, never a whole copy of a
        large body for as long as it likes."""
        view = memoryview(data)
        try:
            for start in range(0, len(view), CHUNK_BYTES):
                chunk = bytes(view[start : start + CHUNK_BYTES])
                async with asyncio.timeout(self.send_timeout):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                record.sent += len(chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            record.outcome = "client_too_slow"
            log.warning("client took over %ss for one chunk: disconnected", self.send_timeout)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

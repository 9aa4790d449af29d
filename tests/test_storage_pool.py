"""edge's own storage client on the wire: connections kept alive and reused, a connection
the store closed while idle replaced without costing an attempt, TLS verified against the
system's (here: a test) certificate authorities, malformed answers refused."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.storage.wire import HIGH_WATER, Pool
from tests.conftest import World
from tests.faults import fault_proxy
from tests.test_serving import assert_error

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)
OBJECT = b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e1"\r\nContent-Type: image/png\r\n'
OBJECT += b"Last-Modified: Wed, 25 Nov 2026 10:00:00 GMT\r\n\r\nhello"
HEAD_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


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


@S3_ONLY
def test_storage_connections_are_kept_alive_and_reused(world: World) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "photo.png", b"reused")
    with fault_proxy(urlsplit(world.moto.endpoint_url).port or 0) as proxy:
        base = world.serve(  # no cache: every request reads from storage
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", EDGE_CACHE_TTL="0"
        )
        for _ in range(10):
            response = httpx.get(base + path, timeout=10)
            assert response.status_code == 200 and response.content == b"reused"
        assert len([line for line, _ in proxy.seen if line.startswith("GET")]) == 10
        assert proxy.connections == 1, "one connection carried all ten"


@S3_ONLY
def test_a_connection_the_store_closed_while_idle_costs_no_attempt(world: World) -> None:
    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        if head.startswith(b"HEAD"):
            return HEAD_OK
        if connection == 0 and request == 1:
            return None  # the store dropped the kept-alive connection as edge reused it
        return OBJECT

    with tiny_store(answer) as (port, seen):
        base = world.serve(
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            EDGE_S3_MAX_ATTEMPTS="1",
            EDGE_CACHE_TTL="0",
        )
        for _ in range(3):
            response = httpx.get(base + "/i/alice/x.png", timeout=10)
            assert response.status_code == 200 and response.content == b"hello"
    assert len([line for line in seen if line.startswith(b"GET")]) == 4  # 3 + the dropped one


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/9.9 200 OK\r\n\r\n",
        b"200 OK\r\n\r\n",
        Hangup(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
        b"HTTP/1.1 206 Partial\r\nContent-Length: 2\r\nContent-Range: bytes 0-1/9\r\n\r\nsh",
    ],
    ids=["bad length", "bad version", "no status line", "cut body", "unasked part"],
)
@S3_ONLY
def test_a_malformed_or_cut_answer_is_a_storage_error(world: World, reply: bytes) -> None:
    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return HEAD_OK if head.startswith(b"HEAD") else reply

    with tiny_store(answer) as (port, _):
        base = world.serve(
            EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", EDGE_S3_MAX_ATTEMPTS="1"
        )
        response = httpx.get(base + "/i/alice/x.png", timeout=10)
        assert_error(response, 502, "STORAGE_ERROR")


def certificate_authority(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A test CA's certificate file, and a server context for 127.0.0.1 it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(chain, key_file)
    return ca_file, server


@S3_ONLY
def test_storage_over_tls_verifies_the_certificate(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "tls.png", b"over tls")
    ca_file, server_tls = certificate_authority(tmp_path)
    moto_port = urlsplit(world.moto.endpoint_url).port or 0
    with fault_proxy(moto_port, tls=server_tls) as proxy:
        endpoint = f"https://127.0.0.1:{proxy.port}"
        untrusted = world.serve(EDGE_S3_ENDPOINT_URL=endpoint, EDGE_S3_MAX_ATTEMPTS="1")
        assert_error(httpx.get(untrusted + path, timeout=10), 502, "STORAGE_ERROR")
        assert proxy.seen == [], "no request is sent to a store whose certificate fails"
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # what the system's CA bundle is
        trusted = world.serve(EDGE_S3_ENDPOINT_URL=endpoint)
        response = httpx.get(trusted + path, timeout=10)
        assert response.status_code == 200 and response.content == b"over tls"
        assert [line.split()[0] for line, _ in proxy.seen] == ["GET"]


def test_a_slow_reader_pauses_the_storage_connection() -> None:
    """Bytes a client has not taken stay in storage's socket, not in edge's memory: the
    connection stops reading at HIGH_WATER and resumes as the body drains."""
    size = 8 * 1024 * 1024

    async def answer(connection: int, request: int, head: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size

    async def slowly(port: int) -> tuple[int, int]:
        pool = Pool(
            host="127.0.0.1",
            port=port,
            tls=None,
            limit=1,
            connect_timeout=5,
            read_timeout=5,
        )
        response = await pool.request(b"GET /b/k HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.5)  # a client that takes nothing for a while
        held = response._connection._buffered
        received = 0
        while chunk := await response.read():
            received += len(chunk)
        response.release()
        await pool.aclose()
        return held, received

    with tiny_store(answer) as (port, _):
        held, received = asyncio.run(slowly(port))
    assert received == size
    assert HIGH_WATER <= held < HIGH_WATER + 512 * 1024, held

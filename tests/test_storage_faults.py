"""Storage faults injected between edge and S3: bounded retries, clean errors, aborted
downloads the client can tell, and never a truncated object cached."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.client import TLS, assert_error
from tests.support.faults import FaultProxy, fault_proxy
from tests.support.world import World

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)


@pytest.fixture
def proxy(world: World) -> Iterator[FaultProxy]:
    assert world.moto is not None
    with fault_proxy(urlsplit(world.moto.endpoint_url).port or 0) as running:
        yield running


def serve(world: World, proxy: FaultProxy, **overrides: str) -> str:
    return world.serve(EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", **overrides)


def gets(proxy: FaultProxy) -> list[str]:
    return [fault for line, fault in proxy.seen if line.startswith("GET /edge-test/")]


@pytest.mark.parametrize("fault", ["500", "slowdown"])
@S3_ONLY
def test_errors_are_retried_a_bounded_number_of_times_then_502(
    world: World, proxy: FaultProxy, fault: str
) -> None:
    path = world.put("public", "alice", "photo.png", b"x" * 1000)
    base = serve(world, proxy, EDGE_S3_MAX_ATTEMPTS="3")
    proxy.faults = [fault] * 3
    assert_error(httpx.get(base + path, timeout=30, verify=TLS), 502, "STORAGE_ERROR")
    assert gets(proxy) == [fault] * 3, "three attempts, no more"


@S3_ONLY
def test_a_transient_error_is_retried_into_success(world: World, proxy: FaultProxy) -> None:
    path = world.put("public", "alice", "photo.png", b"x" * 1000)
    base = serve(world, proxy, EDGE_S3_MAX_ATTEMPTS="3")
    proxy.faults = ["slowdown"]
    response = httpx.get(base + path, timeout=30, verify=TLS)
    assert response.status_code == 200 and response.content == b"x" * 1000
    assert gets(proxy) == ["slowdown", "pass"]


@pytest.mark.parametrize("fault", ["truncate", "reset"])
@S3_ONLY
def test_a_body_cut_after_the_headers_aborts_the_download(
    world: World, proxy: FaultProxy, fault: str
) -> None:
    data = os.urandom(3 * 1024 * 1024)  # streamed: beyond the cache's object limit
    path = world.put("public", "alice", "big.png", data)
    base = serve(world, proxy)
    proxy.faults = [fault]
    with pytest.raises(httpx.RemoteProtocolError):  # fewer bytes than Content-Length promised
        httpx.get(base + path, timeout=30, verify=TLS)
    again = httpx.get(base + path, timeout=30, verify=TLS)
    assert again.status_code == 200 and again.content == data, "edge keeps serving"


@pytest.mark.parametrize("fault", ["truncate", "reset"])
@S3_ONLY
def test_a_truncated_small_object_is_a_clean_502_and_never_cached(
    world: World, proxy: FaultProxy, fault: str
) -> None:
    data = os.urandom(200 * 1024)  # read whole before answering (the cache fills this way)
    path = world.put("public", "alice", "small.png", data)
    base = serve(world, proxy)
    proxy.faults = [fault]
    assert_error(httpx.get(base + path, timeout=30, verify=TLS), 502, "STORAGE_ERROR")
    first = httpx.get(base + path, timeout=30, verify=TLS)
    assert first.status_code == 200 and first.content == data
    second = httpx.get(base + path, timeout=30, verify=TLS)
    assert second.content == data
    assert gets(proxy) == [fault, "pass"], "the good copy was cached, the cut one was not"


@pytest.mark.parametrize("world", ["file", "s3"], indirect=True)
def test_an_object_replaced_mid_download_is_never_a_mix(world: World) -> None:
    """Replaced while a slow client downloads it: the bytes are the old object whole, the new
    one whole, or an aborted download; never part of each. (A folder must be written by
    atomic rename, as the deployment guide says; an in-place rewrite could mix.)"""
    old, new = b"A" * (6 * 1024 * 1024), b"B" * (6 * 1024 * 1024)
    path = world.put("public", "alice", "swap.png", old)
    base = world.serve()
    received = bytearray()
    try:
        with httpx.stream("GET", base + path, timeout=30, verify=TLS) as response:
            chunks = response.iter_raw(64 * 1024)
            received += next(chunks)
            if world.root is not None:  # replace by rename, as writers must
                staged = world.root / "public" / "alice" / ".swap.tmp"
                staged.write_bytes(new)
                os.replace(staged, world.root / "public" / "alice" / "swap.png")
            else:
                world.put("public", "alice", "swap.png", new)
            for chunk in chunks:
                received += chunk
    except httpx.RemoteProtocolError:
        assert set(received) <= {ord("A")} or set(received) <= {ord("B")}
        return
    assert bytes(received) in (old, new), "a download is one version of the object, whole"
    assert httpx.get(base + path, timeout=30, verify=TLS).content in (old, new)

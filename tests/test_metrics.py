"""edge.metrics at /metrics: outcomes, storage and bytes counted; loopback clients only
unless opened; on a port of their own, or off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from edge.app import Edge
from edge.samples import png
from edge.settings import Settings
from tests.support.client import TLS
from tests.support.servers import free_port
from tests.support.world import World

PNG = png(32, 32)


@pytest.mark.parametrize("log", ["off", "json"])  # with the log on, rows come via its memo
def test_metrics_count_outcomes_storage_and_bytes(world: World, log: str) -> None:
    public = world.put("public", "alice", "photo.png", PNG)
    private = world.put("private", "alice", "secret.png", PNG)
    base = world.serve(EDGE_ACCESS_LOG=log)
    httpx.get(base + public, verify=TLS)
    httpx.get(base + public, verify=TLS)
    httpx.get(base + world.sign(private), verify=TLS)
    httpx.get(base + private, verify=TLS)
    httpx.get(base + world.sign(private, exp=int(time.time()) - 5), verify=TLS)
    httpx.get(base + public + "?sig=x&exp=1", verify=TLS)
    text = httpx.get(base + "/metrics", verify=TLS).text
    for sample in (
        'edge_requests_total{outcome="public",status="200"} 2.0',
        'edge_requests_total{outcome="private",status="200"} 1.0',
        'edge_requests_total{outcome="not_found",status="404"} 1.0',
        'edge_requests_total{outcome="signature_expired",status="403"} 1.0',
        'edge_requests_total{outcome="signature_invalid",status="403"} 1.0',
        f"edge_response_body_bytes_total {float(3 * len(PNG) + 71 + 86 + 85)}",
        "edge_storage_request_duration_seconds_count"
        f'{{operation="get",storage="{world.kind}"}} 3.0',  # the second public GET was a hit
        "edge_cache_hits_total 1.0",
        "edge_cache_misses_total 3.0",
        # two objects, one "not found", and that name's conversion found no source either
        "edge_cache_entries 4.0",
        "edge_requests_in_flight 1.0",  # the /metrics request itself
    ):
        assert sample in text, sample
    assert 'edge_request_duration_seconds_bucket{le="+Inf",outcome="public"} 2.0' in text
    cached = float(text.split("\nedge_cache_bytes ")[1].split("\n")[0])
    assert cached >= 2 * len(PNG)


@pytest.mark.parametrize("world", ["s3"], indirect=True)
def test_metrics_count_storage_errors(world: World) -> None:
    base = world.serve(
        EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", EDGE_S3_MAX_ATTEMPTS="1"
    )
    assert httpx.get(base + "/i/alice/photo.png", verify=TLS).status_code == 502
    text = httpx.get(base + "/metrics", verify=TLS).text
    assert 'edge_storage_errors_total{code="STORAGE_ERROR",storage="s3"} 1.0' in text
    assert 'edge_requests_total{outcome="storage_error",status="502"} 1.0' in text


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_metrics_can_move_to_a_port_or_be_turned_off(world: World) -> None:
    assert httpx.get(world.serve(EDGE_METRICS="off") + "/metrics", verify=TLS).status_code == 404
    metrics_port = free_port()
    base = world.serve(EDGE_METRICS=str(metrics_port))
    assert httpx.get(base + "/metrics", verify=TLS).status_code == 404
    deadline = time.monotonic() + 5
    while True:
        try:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", verify=TLS).text
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert "edge_requests_in_flight" in text


@pytest.mark.parametrize(("mode", "stranger"), [("local", 404), ("on", 200)])
def test_metrics_are_for_loopback_clients_unless_opened(
    tmp_path: Path, mode: str, stranger: int
) -> None:
    """By default /metrics answers only a peer on this host: the connection's own address,
    which no forwarded header can change."""
    env = {"EDGE_STORAGE": str(tmp_path), "EDGE_METRICS": mode, "EDGE_ACCESS_LOG": "off"}
    app = Edge(Settings.from_env(env))

    async def scrape(peer: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 4000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://edge", verify=TLS
        ) as client:
            return await client.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"})

    for peer, status in [("127.0.0.1", 200), ("::1", 200), ("10.0.0.5", stranger)]:
        response = asyncio.run(scrape(peer))
        assert response.status_code == status, peer
        if status == 404:
            assert response.json()["error"]["code"] == "NOT_FOUND"
        else:
            assert "edge_requests_total" in response.text


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_edge_ready_shows_the_last_readiness_check(world: World) -> None:
    """No gauge until /readyz has checked storage; then that check's answer, 1 or 0."""
    base = world.serve(EDGE_READY_INTERVAL="0.001")
    assert "edge_ready" not in httpx.get(base + "/metrics", verify=TLS).text
    assert httpx.get(base + "/readyz", verify=TLS).status_code == 200
    assert "\nedge_ready 1.0\n" in httpx.get(base + "/metrics", verify=TLS).text
    assert world.root is not None
    world.root.rename(world.root.with_name("gone"))
    assert httpx.get(base + "/readyz", verify=TLS).status_code == 503
    assert "\nedge_ready 0.0\n" in httpx.get(base + "/metrics", verify=TLS).text

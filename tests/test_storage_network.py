"""How edge reaches its S3 endpoint, as botocore would (edge.storage.network), through a real
uvicorn edge: the CA bundle of AWS_CA_BUNDLE or the profile's ca_bundle trusted (a private
CA that only the bundle names), HTTPS_PROXY / HTTP_PROXY honoured and NO_PROXY too (a
loopback forward proxy that records what it carries, CONNECT for https), and every
connection failure naming the host and port it tried."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from edge.errors import ConfigError
from edge.storage.config import S3Settings
from edge.storage.network import proxy_for
from edge.storage.s3 import S3Storage
from tests.support.client import TLS, assert_error
from tests.support.forward_proxy import forward_proxy
from tests.support.servers import free_port
from tests.support.tls import moto_over_tls
from tests.support.world import World

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)


def storage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "storage read of" in r.getMessage()]


@S3_ONLY
def test_a_private_ca_is_trusted_through_aws_ca_bundle_alone(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = world.put("public", "alice", "ca.png", b"private ca")
    with moto_over_tls(world, tmp_path) as store:
        untrusted = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint, EDGE_S3_MAX_ATTEMPTS="1")
        with caplog.at_level(logging.WARNING, logger="edge"):
            assert_error(
                httpx.get(untrusted + path, timeout=10, trust_env=False, verify=TLS),
                502,
                "STORAGE_ERROR",
            )
        (warning,) = storage_warnings(caplog)
        assert f"cannot connect to storage at 127.0.0.1:{store.proxy.port}" in warning
        assert "TLS certificate not trusted" in warning
        monkeypatch.setenv("AWS_CA_BUNDLE", str(store.ca_file))
        trusted = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint)
        response = httpx.get(trusted + path, timeout=10, trust_env=False, verify=TLS)
        assert response.status_code == 200 and response.content == b"private ca"


@S3_ONLY
def test_the_profile_ca_bundle_is_trusted_too(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "profile.png", b"profile ca")
    with moto_over_tls(world, tmp_path) as store:
        config = tmp_path / "config"
        config.write_text(f"[profile edge]\nca_bundle = {store.ca_file}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.setenv("AWS_PROFILE", "edge")
        base = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint)
        response = httpx.get(base + path, timeout=10, trust_env=False, verify=TLS)
        assert response.status_code == 200 and response.content == b"profile ca"


def test_a_ca_bundle_that_cannot_be_read_is_a_start_up_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    settings = S3Settings("https://127.0.0.1:9", "us-east-1", 4, 1.0, 1.0, 1)

    async def open_it() -> None:
        storage = S3Storage(bucket="bucket", settings=settings)
        await storage.open()
        await storage.aclose()

    with pytest.raises(ConfigError, match=r"AWS_CA_BUNDLE.*missing\.pem"):
        asyncio.run(open_it())


@S3_ONLY
def test_http_proxy_carries_plain_http_requests(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "proxied.png", b"proxied")
    with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        base = world.serve(EDGE_CACHE_TTL="0")
        for _ in range(3):
            response = httpx.get(base + path, timeout=10, trust_env=False, verify=TLS)
            assert response.status_code == 200 and response.content == b"proxied"
    carried = [line for line in proxy.seen if line.endswith("alice/proxied.png")]
    assert len(carried) == 3
    assert all(line.startswith(f"GET {world.moto.endpoint_url}/") for line in carried)


@S3_ONLY
def test_no_proxy_names_hosts_reached_directly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "direct.png", b"direct")
    with forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
        base = world.serve()
        response = httpx.get(base + path, timeout=10, trust_env=False, verify=TLS)
        assert response.status_code == 200 and response.content == b"direct"
    assert proxy.seen == []


@S3_ONLY
def test_https_proxy_tunnels_with_connect(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "tunnel.png", b"tunnelled")
    with moto_over_tls(world, tmp_path) as store, forward_proxy() as proxy:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(store.ca_file))
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http only: unused here
        base = world.serve(EDGE_S3_ENDPOINT_URL=store.endpoint)
        response = httpx.get(base + path, timeout=10, trust_env=False, verify=TLS)
        assert response.status_code == 200 and response.content == b"tunnelled"
    assert proxy.seen == [f"CONNECT 127.0.0.1:{store.proxy.port}"], "one tunnel, nothing readable"
    assert [line.split()[0] for line, _ in store.proxy.seen] == ["GET"]


@S3_ONLY
def test_a_proxy_that_is_down_is_named_in_the_log(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "down.png", b"down")
    port = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{port}")
    base = world.serve(EDGE_S3_MAX_ATTEMPTS="1", EDGE_S3_CHECK_BUCKET="off")
    with caplog.at_level(logging.WARNING, logger="edge"):
        assert_error(
            httpx.get(base + path, timeout=10, trust_env=False, verify=TLS), 502, "STORAGE_ERROR"
        )
    (warning,) = storage_warnings(caplog)
    moto = urlsplit(world.moto.endpoint_url)
    assert f"at {moto.hostname}:{moto.port} via proxy 127.0.0.1:{port}" in warning
    assert "connection refused" in warning
    assert "secret" not in warning, "never a proxy's credentials in the log"


def test_a_host_that_does_not_resolve_is_named_with_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = S3Settings("http://edge-test.invalid:9000", "us-east-1", 4, 2.0, 2.0, 1)

    async def read() -> str:
        storage = S3Storage(bucket="bucket", settings=settings)
        await storage.open()
        try:
            await storage.check()
        except Exception as error:  # the row's error
            return str(getattr(error, "reason", error))
        finally:
            await storage.aclose()
        return ""

    reason = asyncio.run(read())
    assert reason.startswith("cannot connect to storage at edge-test.invalid:9000:"), reason
    assert "edge-test.invalid does not resolve" in reason


@pytest.mark.parametrize(
    ("variables", "endpoint", "expected"),
    [
        ({"HTTPS_PROXY": "10.0.0.1:3128"}, "https://s3.example.com", "http://10.0.0.1:3128"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://minio.internal:9000", None),
        ({"HTTP_PROXY": "http://p:1"}, "http://minio.internal:9000", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.com"}, "https://s3.example.com", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com"},
            "https://s3.example.com",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://s3.example.com", None),
        (
            {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1"},
            "https://a.b",
            "http://lower:1",
        ),
    ],
    ids=[
        "bare host:port",
        "https proxy for http",
        "http",
        "no_proxy suffix",
        "no_proxy other",
        "no_proxy *",
        "lower case wins",
    ],
)
def test_the_proxy_is_chosen_as_botocore_chooses_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], endpoint: str, expected: str | None
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(endpoint) == expected


def test_a_proxy_that_never_answers_connect_is_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy that takes the TCP connection and the CONNECT, then says nothing, is
    EDGE_S3_CONNECT_TIMEOUT's timeout naming the proxy, never a request held forever."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = S3Settings("https://127.0.0.1:9", "us-east-1", 4, 1.0, 2.0, 1)

    async def read() -> tuple[str, float]:
        held: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # reads the CONNECT, answers nothing

        proxy = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = proxy.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{port}")
        storage = S3Storage(bucket="bucket", settings=settings)
        await storage.open()
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(15):
                await storage.check()
        except TimeoutError:
            return "held past 15 s", 15.0
        except Exception as error:  # the row's error
            return str(getattr(error, "reason", error)), asyncio.get_running_loop().time() - started
        finally:
            await storage.aclose()
            for writer in held:
                writer.close()
            proxy.close()
        return "", 0.0

    reason, took = asyncio.run(read())
    assert reason.startswith("no connection to storage"), reason
    assert "via proxy 127.0.0.1:" in reason and "secret" not in reason, reason
    assert took < 5, took


def test_a_proxy_url_that_does_not_parse_is_a_start_up_error_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:badport")
    with pytest.raises(ConfigError) as raised:
        proxy_for("https://s3.example.com")
    message = str(raised.value)
    assert message.startswith("HTTPS_PROXY"), message
    assert "secret" not in message and "user" not in message, message

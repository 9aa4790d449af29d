"""S3 as its users configure it: the endpoint found in the AWS SDKs' order, path-style and
virtual-hosted addressing signed right (checked by a store that recomputes each signature
with botocore, and by moto finding the bucket in the Host), the bucket's region found at
start-up and a 301 followed once, the start-up check of the bucket, and a 404 that is not
about the object answered 502."""

from __future__ import annotations

import subprocess
from pathlib import Path

import botocore.session
import httpx
import pytest

from edge.errors import ConfigError, StorageError
from edge.storage import failures
from edge.storage.base import NO_CONDITIONS, Reply
from edge.storage.endpoint import Endpoint, find_endpoint
from edge.storage.failures import Fault
from edge.storage.s3 import S3Storage
from tests.support.canned import s3_error
from tests.support.client import TLS, assert_error
from tests.support.fault_rig import KEY, read_s3
from tests.support.processes import check_storage, run_edge
from tests.support.servers import BUCKET, MotoServer, free_port
from tests.support.signed_store import BODY, signed_store
from tests.support.stores import tiny_store
from tests.support.world import AWS, World

SECRET = "secret-of-the-test"
S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials the signed store knows, and no config file of the machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


# --- the endpoint ----------------------------------------------------------------------


def test_the_endpoint_is_found_in_the_aws_sdks_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile edge]\nendpoint_url = http://profile:1\nservices = local\n"
        "[services local]\ns3 =\n  endpoint_url = http://services:2\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "edge")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-variable:3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global-variable:4")

    def found(configured: str | None = None) -> tuple[str | None, str]:
        endpoint = find_endpoint(configured, "auto", botocore.session.Session())
        return endpoint.url, endpoint.source

    assert found("http://edge:5") == ("http://edge:5", "EDGE_S3_ENDPOINT_URL")
    assert found() == ("http://s3-variable:3", "AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert found() == ("http://global-variable:4", "AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert found() == ("http://services:2", "the AWS config file (profile edge)")
    config.write_text("[profile edge]\nendpoint_url = http://profile:1\n")
    assert found() == ("http://profile:1", "the AWS config file (profile edge)")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert found() == (None, "AWS (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true)")
    assert found("http://edge:5")[0] == "http://edge:5", "edge's own variable still counts"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://nowhere")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    with pytest.raises(ConfigError, match=r"^AWS_ENDPOINT_URL: expected an http\(s\)://host"):
        found()


@S3_ONLY
def test_aws_endpoint_url_s3_alone_reaches_the_store(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.moto is not None
    path = world.put("public", "alice", "e.png", b"by AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", world.moto.endpoint_url)
    response = httpx.get(world.serve(EDGE_S3_ENDPOINT_URL="") + path, timeout=10, verify=TLS)
    assert response.status_code == 200 and response.content == b"by AWS_ENDPOINT_URL_S3"


def test_a_connection_error_of_the_start_up_check_names_host_and_port(keys: None) -> None:
    port = free_port()
    with pytest.raises(ConfigError) as raised:
        read_s3(f"http://127.0.0.1:{port}", check_bucket=True, max_attempts=1)
    message = str(raised.value)
    assert message.startswith(f"EDGE_STORAGE: bucket {BUCKET} did not pass the start-up check")
    assert f"127.0.0.1:{port}" in message and "\n" not in message


# --- addressing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "addressing", "host", "path", "why"),
    [
        (None, "photos", "auto", "photos.s3.eu-west-3.amazonaws.com", "", "AWS's own"),
        ("https://s3.amazonaws.com", "photos", "auto", "photos.s3.amazonaws.com", "", "AWS"),
        ("https://s3.eu-west-3.amazonaws.com", "a.b", "auto", "s3.eu-west-3.amazonaws.com",
         "/a.b", "holds a dot"),
        ("http://minio:9000", "photos", "auto", "minio:9000", "/photos", "another store"),
        ("http://minio:9000", "photos", "virtual", "photos.minio:9000", "", "=virtual"),
        ("http://minio:9000", "a.b", "virtual", "a.b.minio:9000", "", "=virtual"),
        ("https://minio", "a.b", "virtual", "minio", "/a.b", "holds a dot"),
        (None, "photos", "path", "s3.eu-west-3.amazonaws.com", "/photos", "=path"),
        ("http://[::1]:9000", "photos", "auto", "[::1]:9000", "/photos", "another store"),
    ],
)  # fmt: skip
def test_addressing_picks_the_host_and_path(
    url: str | None, bucket: str, addressing: str, host: str, path: str, why: str
) -> None:
    address = Endpoint(url, "test", addressing).address(bucket, "eu-west-3")  # type: ignore[arg-type]
    assert (address.host_header, address.bucket_path) == (host, path)
    assert why in address.why


def test_virtual_addressing_needs_a_host_name() -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_S3_ADDRESSING: virtual-hosted addressing"):
        find_endpoint("http://127.0.0.1:9000", "virtual", botocore.session.Session())


@pytest.mark.parametrize("virtual", [False, True], ids=["path", "virtual"])
def test_each_addressing_is_signed_for_its_host_and_path(keys: None, virtual: bool) -> None:
    """A store that answers only the Host and path of its addressing, and checks every
    signature with botocore's signer: reads and listings both pass."""
    addressing = "virtual" if virtual else "path"
    with signed_store(bucket=BUCKET, region="us-east-1", secret=SECRET, virtual=virtual) as store:

        async def read_and_list(storage: S3Storage) -> Reply:
            assert await storage.first_key("public/") == "public/a.png"
            return await storage.read(KEY, NO_CONDITIONS, head=False)

        outcome = read_s3(store.endpoint_url, addressing=addressing, then=read_and_list)
    assert outcome.reply is not None and outcome.reply.data == BODY, outcome.error
    host = f"{BUCKET}.localhost:{store.port}" if virtual else f"localhost:{store.port}"
    assert {(seen.host, seen.valid) for seen in store.seen} == {(host, True)}
    paths = [seen.path for seen in store.seen]
    assert paths == (["/", f"/{KEY}"] if virtual else [f"/{BUCKET}", f"/{BUCKET}/{KEY}"])


@S3_ONLY
def test_moto_finds_the_bucket_in_a_virtual_hosts_name(world: World) -> None:
    """moto reads the bucket from the Host `edge-test.localhost:PORT` (a name under
    .localhost is connected to at localhost) and the key from the path alone."""
    assert world.moto is not None
    path = world.put("public", "alice", "v.png", b"virtual-hosted")
    before = len(world.moto.seen)
    endpoint = world.moto.endpoint_url.replace("127.0.0.1", "localhost")
    base = world.serve(EDGE_S3_ENDPOINT_URL=endpoint, EDGE_S3_ADDRESSING="virtual")
    response = httpx.get(base + path, timeout=10, verify=TLS)
    assert response.status_code == 200 and response.content == b"virtual-hosted"
    seen = world.moto.seen[before:]
    assert seen[-1].path == f"/{world.prefix}public/alice/v.png", "no bucket in the path"
    assert seen[-1].headers["host"] == f"{BUCKET}.localhost:{world.moto.server.server_port}"


# --- regions ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", [False, True], ids=["GET", "HEAD"])
def test_a_301_is_followed_once_signed_for_the_region_s3_names(keys: None, head: bool) -> None:
    with signed_store(bucket=BUCKET, region="eu-west-1", secret=SECRET, virtual=False) as store:

        async def twice(storage: S3Storage) -> Reply:
            first = await storage.read(KEY, NO_CONDITIONS, head=head)
            assert first.status == 200
            return await storage.read(KEY, NO_CONDITIONS, head=head)

        outcome = read_s3(store.endpoint_url, region="us-east-1", then=twice)
    assert outcome.reply is not None and outcome.reply.status == 200, outcome.error
    signed = [(seen.region, seen.valid) for seen in store.seen]
    assert signed == [("us-east-1", True), ("eu-west-1", True), ("eu-west-1", True)], (
        "one 301, then every request signed (validly) for the bucket's region"
    )


def test_with_no_region_set_the_bucket_names_its_own_at_start_up(
    keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with signed_store(bucket=BUCKET, region="ap-south-2", secret=SECRET, virtual=False) as store:

        async def read(storage: S3Storage) -> Reply:
            assert storage.region == "ap-south-2", "found at start-up (open)"
            return await storage.read(KEY, NO_CONDITIONS, head=False)

        outcome = read_s3(store.endpoint_url, region=None, check_bucket=True, then=read)
    assert outcome.reply is not None and outcome.reply.data == BODY, outcome.error
    assert [seen.region for seen in store.seen] == ["us-east-1", "ap-south-2", "ap-south-2"]
    assert all(seen.valid for seen in store.seen)


def test_a_region_change_on_aws_moves_to_that_regions_host() -> None:
    endpoint = Endpoint(None, "AWS (no endpoint set)", "auto")
    assert endpoint.address("photos", "us-east-1").host == "photos.s3.us-east-1.amazonaws.com"
    assert endpoint.address("photos", "eu-west-1").host == "photos.s3.eu-west-1.amazonaws.com"


# --- the start-up check ----------------------------------------------------------------


def serve_once(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`edge serve` that must refuse to start: its exit status and output."""
    return run_edge(["serve", "--port", str(free_port())], env=env, cwd=tmp_path)


def test_a_missing_bucket_is_a_one_line_start_up_error(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    env = {
        **AWS,
        "EDGE_STORAGE": "s3://no-such-bucket",
        "EDGE_S3_ENDPOINT_URL": moto_server.endpoint_url,
    }
    result = serve_once(env, tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "edge: EDGE_STORAGE: bucket no-such-bucket did not pass the start-up check: S3 answered"
        " 404 NoSuchBucket"
    ), result.stderr
    assert "EDGE_S3_CHECK_BUCKET=off" in result.stderr


@pytest.mark.parametrize(
    ("answer", "said", "listings"),
    [
        (s3_error("403 Forbidden", "AccessDenied"), "S3 answered 403 AccessDenied", 1),
        (
            s3_error(
                "301 Moved Permanently", "PermanentRedirect", "x-amz-bucket-region: eu-west-1"
            ),
            "S3 answered 301 PermanentRedirect for s3://locked/: the bucket is in region"
            " eu-west-1, edge signs for eu-west-1",
            2,  # followed once, then refused
        ),
    ],
    ids=["denied", "wrong-region"],
)
def test_a_refusal_is_a_one_line_start_up_error_naming_the_code(
    tmp_path: Path, answer: bytes, said: str, listings: int
) -> None:
    async def refuse(connection: int, number: int, head: bytes) -> bytes:
        return answer

    with tiny_store(refuse) as (port, seen):
        env = {
            **AWS,
            "EDGE_STORAGE": "s3://locked",
            "EDGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        result = serve_once(env, tmp_path)
    assert result.returncode == 2, result
    line = result.stderr.splitlines()[-1]  # a followed region's warning may come first
    assert line.startswith("edge: EDGE_STORAGE: bucket locked did not pass the start-up check: ")
    assert said in line, line
    assert [line.split(b"?")[0] for line in seen] == [b"GET /locked"] * listings, "not retried"


def test_check_storage_names_the_region_s3_gave_and_the_addressing(
    keys: None, tmp_path: Path
) -> None:
    with signed_store(bucket=BUCKET, region="eu-west-1", secret=SECRET, virtual=True) as store:
        env = {
            "AWS_ACCESS_KEY_ID": "AKIDTEST",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "EDGE_STORAGE": f"s3://{BUCKET}",
            "AWS_ENDPOINT_URL": store.endpoint_url,
            "EDGE_S3_ADDRESSING": "virtual",
        }
        code, facts, said = check_storage(env, tmp_path)
    assert code == 0, said  # a warning of the followed region may be said
    assert facts["region"] == "eu-west-1 (the bucket's, as S3 named it; first guess us-east-1)"
    assert facts["endpoint"] == f"{store.endpoint_url} (AWS_ENDPOINT_URL)"
    host = f"{BUCKET}.localhost:{store.port}"
    assert facts["addressing"] == (f"virtual-hosted, http://{host}/ (EDGE_S3_ADDRESSING=virtual)")
    assert {seen.host for seen in store.seen} == {host}


# --- at runtime: a 404 that is not about the object -------------------------------------


@S3_ONLY
def test_a_missing_bucket_at_runtime_is_502_for_get_and_head(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    base = world.serve(EDGE_STORAGE="s3://no-such-bucket/", EDGE_S3_CHECK_BUCKET="off")
    assert_error(httpx.get(base + "/i/alice/x.png", timeout=10, verify=TLS), 502, "STORAGE_ERROR")
    head = httpx.head(base + "/i/alice/x.png", timeout=10, verify=TLS)
    assert head.status_code == 502, "the bucket's check turned the bare 404 into its 502"
    said = [r.getMessage() for r in caplog.records if r.name == "edge"]
    assert any("404 NoSuchBucket" in line for line in said), said


@S3_ONLY
def test_a_missing_key_is_still_404_for_get_and_head(world: World) -> None:
    base = world.serve()
    for method in ("GET", "HEAD"):
        response = httpx.request(method, base + "/i/alice/nothing.png", timeout=10, verify=TLS)
        assert response.status_code == 404, (method, response.status_code)


def test_a_bare_404s_bucket_check_is_kept_for_a_while(keys: None) -> None:
    """Ten HEADs of missing keys: ten object HEADs, one bucket HEAD."""

    async def answer(connection: int, number: int, head: bytes) -> bytes:
        if head.startswith(b"HEAD /edge-test "):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    async def ten_heads(storage: S3Storage) -> Reply:
        for number in range(10):
            with pytest.raises(failures.Unconfirmed):
                await storage.read(f"public/{number}.png", NO_CONDITIONS, head=True)
        raise StorageError("done")

    with tiny_store(answer) as (port, seen):
        read_s3(f"http://127.0.0.1:{port}", then=ten_heads)
    bucket_heads = [line for line in seen if line.startswith(b"HEAD /edge-test ")]
    assert len(seen) == 11 and len(bucket_heads) == 1, seen


def test_a_store_that_says_nosuchbucket_to_a_get_is_502(keys: None) -> None:
    async def answer(connection: int, number: int, head: bytes) -> bytes:
        return s3_error("404 Not Found", "NoSuchBucket")

    with tiny_store(answer) as (port, _):
        outcome = read_s3(f"http://127.0.0.1:{port}")
    assert isinstance(outcome.error, Fault) and outcome.error.row is failures.NO_SUCH_BUCKET


def test_the_profiles_addressing_style_applies_when_edge_says_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile edge]\ns3 =\n  addressing_style = virtual\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "edge")

    def address(addressing: str, url: str = "http://minio:9000") -> tuple[str, str]:
        endpoint = find_endpoint(url, addressing, botocore.session.Session())  # type: ignore[arg-type]
        found = endpoint.address("photos", "eu-west-3")
        return found.host_header, found.why

    profile = "the AWS config file's s3.addressing_style (profile edge)"
    assert address("auto") == ("photos.minio:9000", f"{profile}: virtual")
    assert address("path") == ("minio:9000", "EDGE_S3_ADDRESSING=path"), "edge's own wins"
    with pytest.raises(ConfigError, match=r"^the AWS config file's s3.addressing_style \("):
        address("auto", "http://127.0.0.1:9000")  # virtual needs a host name
    config.write_text("[profile edge]\ns3 =\n  addressing_style = path\n")
    assert address("auto", "https://s3.amazonaws.com") == ("s3.amazonaws.com", f"{profile}: path")
    config.write_text("[profile edge]\ns3 =\n  addressing_style = auto\n")
    assert address("auto") == ("minio:9000", "auto: an endpoint of another store")
    config.write_text("[profile edge]\ns3 =\n  addressing_style = sideways\n")
    with pytest.raises(ConfigError, match=r"expected auto, path or virtual, got 'sideways'$"):
        address("auto")

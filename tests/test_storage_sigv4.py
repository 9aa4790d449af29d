"""edge's own SigV4 signer: AWS's published examples, the same signature as botocore's for
every request edge sends (a listing's query string included), and accepted by an S3 server
that verifies signatures (moto with authentication on), with long-lived and with temporary
credentials."""

from __future__ import annotations

import asyncio
import calendar
import json

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given
from hypothesis import strategies as st
from moto import settings as moto_settings

from edge.storage.config import S3Settings
from edge.storage.s3 import S3Storage
from edge.storage.sigv4 import EMPTY_SHA256, Credentials, Signer, canonical_query, object_path
from tests.support.client import TLS, assert_error
from tests.support.servers import BUCKET
from tests.support.world import World

S3_ONLY = pytest.mark.parametrize("world", ["s3"], indirect=True)
READ_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}],
}


def botocore_signature(
    method: str,
    url: str,
    headers: dict[str, str],
    credentials: Credentials,
    region: str,
    params: dict[str, str] | None = None,
) -> tuple[str, str]:
    """(signed headers, signature) botocore computes for the same request at the same time;
    ``params``: the query, which botocore encodes itself."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), params=params)
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        "s3",
        region,
    )
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return auth.signed_headers(auth.headers_to_sign(request)), signature


keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60).filter(
    lambda key: not key.startswith("/")
)


@given(
    key=keys,
    bucket=st.sampled_from([None, "edge-test", "my.dotted.bucket"]),
    region=st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"]),
    secret=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    token=st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    now=st.integers(0, 4_102_444_800),
    method=st.sampled_from(["GET", "HEAD"]),
    host=st.sampled_from(["s3.eu-west-3.amazonaws.com", "127.0.0.1:9000", "minio"]),
)
def test_signatures_match_botocores(
    key: str,
    bucket: str | None,
    region: str,
    secret: str,
    token: str | None,
    now: int,
    method: str,
    host: str,
) -> None:
    credentials = Credentials("AKIDEXAMPLE", secret, token)
    path = object_path(bucket, key)
    signed = dict(Signer(region=region, clock=lambda: now).headers(method, host, path, credentials))
    assert signed["x-amz-content-sha256"] == EMPTY_SHA256
    assert ("x-amz-security-token" in signed) == (token is not None)
    names, signature = botocore_signature(
        method,
        f"http://{host}{path}",
        {name: value for name, value in signed.items() if name != "authorization"},
        credentials,
        region,
    )
    day = signed["x-amz-date"][:8]
    assert signed["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{day}/{region}/s3/aws4_request,"
        f" SignedHeaders={names}, Signature={signature}"
    )


#: The credentials, host and time of AWS's S3 SigV4 examples ("Signature Calculations for
#: the Authorization Header: Transferring Payload in a Single Chunk", Amazon S3 API
#: Reference), with the signature AWS gives for each request.
AWS_EXAMPLE_KEYS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_EXAMPLE_TIME = calendar.timegm((2013, 5, 24, 0, 0, 0))
AWS_EXAMPLES = [
    # GET Bucket (List Objects): GET /?max-keys=2&prefix=J, the query given unsorted
    (
        [("prefix", "J"), ("max-keys", "2")],
        "max-keys=2&prefix=J",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    ),
    # GET Bucket Lifecycle: GET /?lifecycle, a parameter without a value
    (
        [("lifecycle", "")],
        "lifecycle=",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    ),
]


@pytest.mark.parametrize(("parameters", "query", "signature"), AWS_EXAMPLES)
def test_awss_published_examples_with_a_query_string(
    parameters: list[tuple[str, str]], query: str, signature: str
) -> None:
    assert canonical_query(parameters) == query
    signer = Signer(region="us-east-1", clock=lambda: AWS_EXAMPLE_TIME)
    signed = dict(
        signer.headers("GET", "examplebucket.s3.amazonaws.com", "/", AWS_EXAMPLE_KEYS, query)
    )
    assert signed["x-amz-date"] == "20130524T000000Z"
    assert signed["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        f" SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
    )


def test_the_canonical_query_encodes_every_reserved_character() -> None:
    assert (
        canonical_query(
            [("prefix", "p/public/a b+c=d&e%f~g_h-i.ü"), ("delimiter", "/"), ("list-type", "2")]
        )
        == "delimiter=%2F&list-type=2&prefix=p%2Fpublic%2Fa%20b%2Bc%3Dd%26e%25f~g_h-i.%C3%BC"
    )


@given(
    parameters=st.dictionaries(
        st.sampled_from(["prefix", "list-type", "delimiter", "max-keys", "encoding-type"]),
        st.text(st.characters(codec="utf-8"), max_size=40),
    ),
    token=st.none() | st.just("session-token"),
)
def test_listing_signatures_match_botocores(parameters: dict[str, str], token: str | None) -> None:
    credentials = Credentials("AKIDEXAMPLE", "secret", token)
    query = canonical_query(parameters.items())
    signer = Signer(region="eu-west-3", clock=lambda: AWS_EXAMPLE_TIME)
    signed = dict(signer.headers("GET", "127.0.0.1:9000", "/edge-test", credentials, query))
    _, signature = botocore_signature(
        "GET",
        "http://127.0.0.1:9000/edge-test",
        {name: value for name, value in signed.items() if name != "authorization"},
        credentials,
        "eu-west-3",
        params=parameters,
    )
    assert signed["authorization"].endswith("Signature=" + signature)


def test_the_day_key_follows_the_clock_and_the_secret() -> None:
    now = [86_400 * 20_000 - 1]
    signer = Signer(region="us-east-1", clock=lambda: now[0])
    first = dict(signer.headers("GET", "h", "/k", Credentials("A", "one")))
    now[0] += 1  # midnight: a new day, a new key
    second = dict(signer.headers("GET", "h", "/k", Credentials("A", "one")))
    rotated = dict(signer.headers("GET", "h", "/k", Credentials("A", "two")))
    assert first["x-amz-date"][:8] != second["x-amz-date"][:8]
    for headers in (first, second, rotated):
        _, signature = botocore_signature(
            "GET",
            "http://h/k",
            {n: v for n, v in headers.items() if n != "authorization"},
            Credentials("A", "two" if headers is rotated else "one"),
            "us-east-1",
        )
        assert headers["authorization"].endswith("Signature=" + signature)


def test_credentials_never_show_their_secret() -> None:
    text = repr(Credentials("AKID", "very-secret", "session-token"))
    assert "AKID" in text and "very-secret" not in text and "session-token" not in text


@pytest.fixture
def verifying_moto(world: World) -> dict[str, str]:
    """Keys of an IAM user and of a role allowed to read; a test turns moto's signature
    checks on (``verify_signatures``) once its objects are stored."""
    assert world.moto is not None
    endpoint = world.moto.endpoint_url
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    user = f"edge-reader-{world.prefix.strip('/')}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(READ_ALL))
    access = iam.create_access_key(UserName=user)["AccessKey"]
    role = iam.create_role(
        RoleName=user,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:*"}],
            }
        ),
    )["Role"]
    iam.put_role_policy(RoleName=user, PolicyName="read", PolicyDocument=json.dumps(READ_ALL))
    temporary = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1").assume_role(
        RoleArn=role["Arn"], RoleSessionName="edge"
    )["Credentials"]
    return {
        "user_key": access["AccessKeyId"],
        "user_secret": access["SecretAccessKey"],
        "role_key": temporary["AccessKeyId"],
        "role_secret": temporary["SecretAccessKey"],
        "role_token": temporary["SessionToken"],
    }


def verify_signatures(
    monkeypatch: pytest.MonkeyPatch, key: str, secret: str, token: str | None = None
) -> None:
    """From now until the test ends, moto authenticates every request (and checks IAM),
    and an edge started afterwards signs with these credentials."""
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token is not None:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)


@S3_ONLY
def test_a_verifying_s3_accepts_edges_signatures(
    world: World, verifying_moto: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "a b+ü(1).png", b"signed bytes")
    verify_signatures(monkeypatch, verifying_moto["user_key"], verifying_moto["user_secret"])
    base = world.serve()
    response = httpx.get(base + path.replace(" ", "%20"), timeout=10, verify=TLS)
    assert response.status_code == 200 and response.content == b"signed bytes"
    ranged = httpx.get(
        base + path.replace(" ", "%20"), headers={"range": "bytes=2-5"}, timeout=10, verify=TLS
    )
    assert ranged.status_code == 206 and ranged.content == b"gned"
    assert httpx.head(base + "/i/alice/other.png", timeout=10, verify=TLS).status_code == 404
    assert httpx.get(base + "/readyz", timeout=10, verify=TLS).status_code == 200


@S3_ONLY
def test_a_verifying_s3_accepts_temporary_credentials(
    world: World, verifying_moto: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = world.put("public", "alice", "t.png", b"temporary")
    verify_signatures(
        monkeypatch,
        verifying_moto["role_key"],
        verifying_moto["role_secret"],
        verifying_moto["role_token"],
    )
    response = httpx.get(world.serve() + path, timeout=10, verify=TLS)
    assert response.status_code == 200 and response.content == b"temporary"


@S3_ONLY
def test_a_wrong_secret_is_a_storage_error_logged_without_a_leak(
    world: World,
    verifying_moto: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = world.put("public", "alice", "w.png", b"x")
    wrong = "not-" + verifying_moto["user_secret"]
    verify_signatures(monkeypatch, verifying_moto["user_key"], wrong)
    # Past the start-up check (which refuses to start: tests/test_storage_config.py), to
    # see the same refusal at runtime.
    response = httpx.get(world.serve(EDGE_S3_CHECK_BUCKET="off") + path, timeout=10, verify=TLS)
    assert_error(response, 502, "STORAGE_ERROR")
    assert "SignatureDoesNotMatch" not in response.text, "the reason is for the operator"
    said = [r.getMessage() for r in caplog.records if r.name == "edge"]
    assert any("403 SignatureDoesNotMatch" in line and "w.png" in line for line in said), said
    for text in (response.text, caplog.text):
        assert wrong not in text and verifying_moto["user_secret"] not in text


@S3_ONLY
def test_a_verifying_s3_accepts_a_signed_listing(
    world: World, verifying_moto: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = "été & co/a b+c=d%20"
    for extension in (".jpg", ".png"):
        world.put("public", "alice", folder + extension, b"x")
    verify_signatures(monkeypatch, verifying_moto["user_key"], verifying_moto["user_secret"])
    assert world.moto is not None
    settings = S3Settings(world.moto.endpoint_url, "us-east-1", 2, 2.0, 2.0, 1)
    storage = S3Storage(bucket=BUCKET, prefix=world.prefix, settings=settings)

    async def listed() -> list[str]:
        await storage.open()
        try:
            return await storage.siblings(f"public/alice/{folder}.webp")
        finally:
            await storage.aclose()

    found = asyncio.run(listed())
    assert found == [f"public/alice/{folder}.png", f"public/alice/{folder}.jpg"]

"""The serving behaviour, on both storages, through a real uvicorn over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from edge.samples import CANARY, png, svg
from tests.support.client import TLS, assert_error, get
from tests.support.world import BEFORE_STORAGE, EVERY_STORE_ONCE, World, on_every_store

#: The serving behaviour suite: on every store, the hot cache on and off (tests/support/world.py).
pytest_generate_tests = on_every_store

PNG = png(64, 48)
SECRET_PNG = png(64, 48, hue=1) + CANARY
BIG = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks


def test_public_image_with_every_header(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    response = get(base + path)
    assert response.status_code == 200
    assert response.content == PNG
    headers = response.headers
    assert headers["content-type"] == "image/png"
    assert headers["content-length"] == str(len(PNG))
    assert headers["etag"].startswith('"') and headers["etag"].endswith('"')
    assert headers["last-modified"].endswith(" GMT")
    assert headers["accept-ranges"] == "bytes"
    assert headers["cache-control"] == "public, max-age=86400"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["access-control-allow-origin"] == "*"
    assert "server" not in headers or "uvicorn" not in headers["server"]


def test_nested_and_encoded_paths(world: World) -> None:
    path = world.put("public", "bob", "albums/2024/café au lait.png", PNG)
    base = world.serve()
    assert get(base + "/i/bob/albums/2024/caf%C3%A9%20au%20lait.png").content == PNG
    assert get(base + "/i/bob/albums/2024/caf%c3%a9%20au%20lait.png").content == PNG
    assert path == "/i/bob/albums/2024/café au lait.png"


def test_private_image_needs_a_valid_signature(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    base = world.serve()
    signed = get(base + world.sign(path, expires_in=600))
    assert signed.status_code == 200 and signed.content == SECRET_PNG
    max_age = int(signed.headers["cache-control"].removeprefix("private, max-age="))
    assert signed.headers["cache-control"].startswith("private, max-age=")
    assert 590 <= max_age <= 600, "max-age is the time left before exp"
    unsigned = get(base + path)
    missing = get(base + "/i/alice/nothing-here.png")
    assert_error(unsigned, 404, "NOT_FOUND")
    assert unsigned.content == missing.content, "a private image looks exactly like a missing one"
    each_own = {"date": "", "x-request-id": ""}  # a request's own, whatever it asked
    assert dict(unsigned.headers) | each_own == dict(missing.headers) | each_own


def test_private_max_age_is_capped(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    base = world.serve(EDGE_PRIVATE_MAX_AGE="120")
    response = get(base + world.sign(path, expires_in=6000))
    assert response.headers["cache-control"] == "private, max-age=120"


def test_signed_request_falls_back_to_public(world: World) -> None:
    path = world.put("public", "alice", "shared.png", PNG)
    base = world.serve()
    response = get(base + world.sign(path))
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert [key for _, key in world.storage_reads()] == [
        "private/alice/shared.png",
        "public/alice/shared.png",
    ]


def test_unsigned_request_never_reads_private(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    base = world.serve()
    get(base + path)
    get(base + path + "?v=2")
    assert {key for _, key in world.storage_reads()} == {"public/alice/secret.png"}


@BEFORE_STORAGE
@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda url: url.replace("sig=", "sig=A", 1), "SIGNATURE_INVALID"),
        (lambda url: url.replace("/secret.png", "/other.png"), "SIGNATURE_INVALID"),
        (lambda url: url + "&kid=nope", "SIGNATURE_INVALID"),
        (lambda url: url.split("&exp=")[0], "SIGNATURE_INVALID"),
        (lambda url: url + "&exp=1", "SIGNATURE_INVALID"),
    ],
)
def test_bad_signatures_are_rejected_before_storage(
    world: World, mutate: object, code: str
) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    world.put("public", "alice", "other.png", PNG)
    base = world.serve()
    response = get(base + mutate(world.sign(path)))  # type: ignore[operator]
    assert_error(response, 403, code)
    assert world.storage_reads() == [], "no storage request for a bad signature"


@BEFORE_STORAGE
def test_expired_signature_is_rejected_before_storage(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    base = world.serve()
    response = get(base + world.sign(path, exp=int(time.time()) - 1))
    assert_error(response, 403, "SIGNATURE_EXPIRED")
    assert response.json()["error"]["message"] == "Signed URL has expired"
    assert world.storage_reads() == []


@BEFORE_STORAGE
def test_bad_signature_on_a_public_image_is_still_403(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    assert_error(get(base + path + "?sig=x&exp=1"), 403, "SIGNATURE_INVALID")


def test_no_keyring_serves_public_and_rejects_signatures(world: World) -> None:
    public = world.put("public", "alice", "photo.png", PNG)
    private = world.put("private", "alice", "secret.png", SECRET_PNG)
    signed = world.sign(private)
    base = world.serve(EDGE_SIGNING_KEYS="")
    assert get(base + public).status_code == 200
    assert_error(get(base + signed), 403, "SIGNATURE_INVALID")


@EVERY_STORE_ONCE
def test_head_answers_get_headers_without_reading_a_body(world: World) -> None:
    path = world.put("public", "alice", "big.bin.png", BIG)
    base = world.serve(EDGE_CACHE_TTL="0")  # about storage: the cache would answer HEAD itself
    got = get(base + path)
    head = httpx.head(base + path, verify=TLS)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert head.headers[name] == got.headers[name]
    assert world.storage_reads()[-1] == ("HEAD", "public/alice/big.bin.png")


@pytest.mark.parametrize(
    ("header", "status", "span"),
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=10-", 206, (10, None)),
        ("bytes=-5", 206, (-5, None)),
        ("bytes=100-999999999", 206, (100, None)),
        ("bytes=0-0", 206, (0, 0)),
        ("bytes=0-1,5-6", 200, None),
        ("bytes=5-1", 200, None),
        ("items=0-5", 200, None),
        ("bytes=abc", 200, None),
        ("bytes=-", 200, None),
    ],
)
def test_ranges(
    world: World, header: str, status: int, span: tuple[int, int | None] | None
) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    response = get(base + path, range=header)
    assert response.status_code == status
    if span is None:
        assert response.content == PNG and "content-range" not in response.headers
        return
    start, end = span
    expected = PNG[start:] if end is None else PNG[start : end + 1]
    assert response.content == expected
    first = len(PNG) + start if start < 0 else start
    assert (
        response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(PNG)}"
    )
    assert response.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0", f"bytes={len(PNG)}-"])
def test_unsatisfiable_range(world: World, header: str) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    response = get(base + path, range=header)
    assert_error(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"


def test_ranges_are_passed_to_storage(world: World) -> None:
    path = world.put("public", "alice", "big.png", BIG)
    base = world.serve()
    response = get(base + path, range="bytes=1000000-1000099")
    assert response.status_code == 206 and response.content == BIG[1000000:1000100]
    if world.moto is not None:
        (request,) = world.moto.object_requests("GET")[-1:]
        assert request.headers["range"] == "bytes=1000000-1000099"


def test_if_range(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    first = get(base + path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert get(base + path, range="bytes=0-3", if_range=etag).status_code == 206
    assert get(base + path, range="bytes=0-3", if_range=modified).status_code == 206
    stale = get(base + path, range="bytes=0-3", if_range='"other"')
    assert stale.status_code == 200 and stale.content == PNG
    assert get(base + path, range="bytes=0-3", if_range="W/" + etag).status_code == 200
    old = "Thu, 01 Jan 2015 00:00:00 GMT"
    assert get(base + path, range="bytes=0-3", if_range=old).status_code == 200
    future = "Fri, 01 Jan 2100 00:00:00 GMT"  # not modified decides before any range
    revalidated = get(base + path, range="bytes=0-3", if_range='"other"', if_modified_since=future)
    assert revalidated.status_code == 304


@EVERY_STORE_ONCE
@pytest.mark.parametrize(
    ("if_range", "forwarded"),
    [
        ("ETAG", "ETAG"),
        ('"other", ETAG', None),  # a list: no range, nothing forwarded, the whole object
        ("ETAG x", None),  # garbage after the tag
        ("W/ETAG", None),
        ('"other"', '"other"'),  # one strong tag that does not match: S3 says 412
    ],
)
def test_if_range_reaches_storage_only_as_one_parsed_strong_tag(
    world: World, if_range: str, forwarded: str | None
) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve(EDGE_CACHE_TTL="0")  # every request reaches storage
    etag = get(base + path).headers["etag"]
    before = len(world.moto.object_requests("GET")) if world.moto is not None else 0
    response = get(base + path, range="bytes=0-3", if_range=if_range.replace("ETAG", etag))
    holds = forwarded == "ETAG"
    assert response.status_code == (206 if holds else 200)
    assert response.content == (PNG[:4] if holds else PNG)
    if world.moto is not None:
        sent = world.moto.object_requests("GET")[before:]
        if_match = [request.headers.get("if-match") for request in sent]
        if forwarded is None:  # one plain GET of the whole object
            assert if_match == [None] and "range" not in sent[0].headers
        elif holds:
            assert if_match == [etag]
        else:  # 412, then the whole object
            assert if_match == [forwarded, None]


def test_conditional_requests(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    first = get(base + path)
    etag = first.headers["etag"]
    for headers in (
        {"if-none-match": etag},
        {"if-none-match": f'"nope", {etag}'},
        {"if-none-match": "W/" + etag},
        {"if-none-match": "*"},
        {"if-modified-since": first.headers["last-modified"]},
        {"if-modified-since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ):
        response = get(base + path, **headers)
        assert response.status_code == 304, headers
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "public, max-age=86400"
    for headers in (
        {"if-none-match": '"nope"'},
        {"if-none-match": "garbage"},
        {"if-modified-since": "Thu, 01 Jan 2015 00:00:00 GMT"},
        {"if-modified-since": "yesterday"},
        {"if-none-match": '"nope"', "if-modified-since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ):
        response = get(base + path, **headers)
        assert response.status_code == 200 and response.content == PNG, headers


def test_private_304_keeps_private_caching(world: World) -> None:
    path = world.put("private", "alice", "secret.png", SECRET_PNG)
    base = world.serve()
    url = base + world.sign(path)
    etag = get(url).headers["etag"]
    response = get(url, if_none_match=etag)
    assert response.status_code == 304
    assert response.headers["cache-control"].startswith("private, max-age=")


def test_content_type_policy(world: World) -> None:
    world.put("public", "alice", "logo.svg", svg())
    world.put("public", "alice", "page.html", b"<script>alert(1)</script>")
    world.put("public", "alice", "noext", PNG)
    world.put("public", "alice", "photo.webp", b"RIFF....WEBP")
    base = world.serve()
    logo = get(base + "/i/alice/logo.svg")
    assert logo.headers["content-type"] == "image/svg+xml"
    assert (
        logo.headers["content-security-policy"]
        == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    for name in ("page.html", "noext"):
        response = get(base + f"/i/alice/{name}")
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == "attachment"
    assert get(base + "/i/alice/photo.webp").headers["content-type"] == "image/webp"


# A folder stores no content type.
@pytest.mark.parametrize("world", ["s3", "s3rver"], indirect=True)
def test_stored_content_type_wins_over_extension(world: World) -> None:
    world.put("public", "alice", "photo.bin", PNG, content_type="image/png")
    world.put("public", "alice", "fake.png", b"<html>", content_type="text/html")
    world.put("public", "alice", "untyped.png", PNG, content_type="binary/octet-stream")
    base = world.serve()
    assert get(base + "/i/alice/photo.bin").headers["content-type"] == "image/png"
    fake = get(base + "/i/alice/fake.png")
    assert fake.headers["content-type"] == "application/octet-stream"
    assert fake.headers["content-disposition"] == "attachment"
    assert get(base + "/i/alice/untyped.png").headers["content-type"] == "image/png"


def test_cors_can_be_turned_off(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve(EDGE_CORS="off")
    assert "access-control-allow-origin" not in get(base + path).headers


def test_large_bodies_stream_whole(world: World) -> None:
    path = world.put("public", "alice", "big.png", BIG)
    base = world.serve()
    with httpx.stream("GET", base + path, timeout=30, verify=TLS) as response:
        chunks = list(response.iter_raw())
    assert b"".join(chunks) == BIG
    assert response.headers["content-length"] == str(len(BIG))


def test_other_methods_and_paths(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG)
    base = world.serve()
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = httpx.request(method, base + path, verify=TLS)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] == "GET, HEAD"
    for other in ("/", "/i", "/images/alice/photo.png", "/favicon.ico", "/i2/alice/photo.png"):
        assert_error(get(base + other), 404, "NOT_FOUND")
    assert world.storage_reads() == []


def test_health_endpoints(world: World) -> None:
    base = world.serve()
    assert get(base + "/healthz").json() == {"status": "ok"}
    ready = get(base + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert ready.headers["cache-control"] == "no-store"


def test_signed_request_prefers_private_over_public(world: World) -> None:
    path = world.put("public", "alice", "both.png", PNG)
    world.put("private", "alice", "both.png", SECRET_PNG)
    base = world.serve()
    assert get(base + world.sign(path)).content == SECRET_PNG
    assert get(base + path).content == PNG

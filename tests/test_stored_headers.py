"""Headers stored with an object (S3 metadata, set at upload) reach the client as
docs/deployment.md says: Content-Encoding always, with the stored bytes (ranges and ETag
over them); Cache-Control, Content-Disposition and Content-Language of public objects
when EDGE_S3_PASS_HEADERS names them; a private object's Cache-Control is edge's own.
Through a real uvicorn, on moto and on s3rver, the hot cache on and off."""

from __future__ import annotations

import gzip

import httpx
import pytest

from edge.config_parsers import parse_pass_headers
from edge.errors import ConfigError
from edge.samples import png, svg
from edge.storage.base import Conditions
from edge.storage.s3_answers import stored_headers
from tests.support.client import TLS, assert_error, raw_get
from tests.support.fault_rig import read_canned
from tests.support.world import AWS, World

#: The S3 worlds, the hot cache on and off (the folder stores no metadata).
S3_WORLDS = pytest.mark.parametrize(
    "world", ["s3", "s3rver", "s3-cache-off", "s3rver-cache-off"], indirect=True
)
PACKED_SVG = gzip.compress(svg() * 20, mtime=0)
PNG = png(16, 16)
STORED = {
    "CacheControl": "public, max-age=31536000, immutable",
    "ContentDisposition": 'inline; filename="photo.png"',
    "ContentLanguage": "fr-CA",
}
PASS_ALL = "Cache-Control, content-disposition,CONTENT-LANGUAGE"


def fetch(url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """A GET and its body as sent (httpx would decode a gzip body)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    with httpx.stream("GET", url, headers=named, timeout=30, verify=TLS) as response:
        return response, b"".join(response.iter_raw())


@S3_WORLDS
def test_a_gzip_svg_reaches_the_client_as_stored(world: World) -> None:
    """The issue's case: bytes and Content-Encoding as stored, to a client that asked for no
    encoding too (edge never decodes); a range is over the stored bytes."""
    path = world.put(
        "public", "alice", "logo.svg", PACKED_SVG, content_type="image/svg+xml",
        ContentEncoding="gzip",
    )  # fmt: skip
    base = world.serve()
    for _ in range(2):  # the second a hit where the hot cache is on
        response, body = fetch(base + path, accept_encoding="gzip")
        assert response.status_code == 200 and body == PACKED_SVG
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == "image/svg+xml"
        assert "sandbox" in response.headers["content-security-policy"]
        assert response.headers["content-length"] == str(len(PACKED_SVG))
        assert gzip.decompress(body).startswith(b"<svg")
    cached = world.env.get("EDGE_CACHE_TTL") != "0"
    assert len(world.storage_reads()) == (1 if cached else 2), "the hit kept its headers"
    etag = response.headers["etag"]
    status, headers, raw = raw_get(base, path)  # no Accept-Encoding at all
    assert (status, raw, headers["content-encoding"]) == (200, PACKED_SVG, "gzip")
    part, bytes_ = fetch(base + path, range="bytes=10-29")
    assert part.status_code == 206 and bytes_ == PACKED_SVG[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(PACKED_SVG)}"
    assert part.headers["content-encoding"] == "gzip" and part.headers["etag"] == etag
    head = httpx.head(base + path, verify=TLS)
    assert head.headers["content-encoding"] == "gzip" and head.headers["etag"] == etag
    not_modified, _ = fetch(base + path, if_none_match=etag)
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag


@S3_WORLDS
def test_stored_headers_pass_only_when_named(world: World) -> None:
    path = world.put("public", "alice", "photo.png", PNG, content_type="image/png", **STORED)
    plain = world.serve()
    response, _ = fetch(plain + path)
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert "content-disposition" not in response.headers
    assert "content-language" not in response.headers
    passing = world.serve(EDGE_S3_PASS_HEADERS=PASS_ALL)
    for _ in range(2):  # the second a hit where the hot cache is on
        response, body = fetch(passing + path)
        assert response.status_code == 200 and body == PNG
        assert response.headers["cache-control"] == STORED["CacheControl"]
        assert response.headers["content-disposition"] == STORED["ContentDisposition"]
        assert response.headers["content-language"] == STORED["ContentLanguage"]
        assert "content-encoding" not in response.headers
    etag = response.headers["etag"]
    revalidated, _ = fetch(passing + path, if_none_match=etag)
    assert revalidated.status_code == 304
    assert revalidated.headers["cache-control"] == STORED["CacheControl"]
    only, _ = fetch(world.serve(EDGE_S3_PASS_HEADERS="content-language") + path)
    assert only.headers["content-language"] == "fr-CA"
    assert only.headers["cache-control"] == "public, max-age=86400"
    assert "content-disposition" not in only.headers


@S3_WORLDS
def test_a_private_object_keeps_edge_s_own_cache_control(world: World) -> None:
    path = world.put(
        "private", "alice", "secret.svg", PACKED_SVG, content_type="image/svg+xml",
        ContentEncoding="gzip", **STORED,
    )  # fmt: skip
    base = world.serve(EDGE_S3_PASS_HEADERS=PASS_ALL)
    for _ in range(2):
        response, body = fetch(base + world.sign(path))
        assert response.status_code == 200 and body == PACKED_SVG
        assert response.headers["cache-control"].startswith("private, max-age=")
        assert response.headers["content-encoding"] == "gzip"
        assert "content-disposition" not in response.headers
        assert "content-language" not in response.headers
    assert_error(httpx.get(base + path, verify=TLS), 404, "NOT_FOUND")


@pytest.mark.parametrize("world", ["s3", "s3rver"], indirect=True)
def test_what_is_no_image_stays_an_attachment(world: World) -> None:
    """A stored Content-Disposition never undoes edge's ``attachment`` for a type that is
    no image: an HTML upload is never rendered on edge's origin."""
    path = world.put("public", "alice", "page.png", b"<html>", content_type="text/html", **STORED)
    response, _ = fetch(world.serve(EDGE_S3_PASS_HEADERS=PASS_ALL) + path)
    assert response.headers["content-disposition"] == "attachment"
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("world", ["s3", "s3rver"], indirect=True)
def test_an_encoded_source_makes_no_variant(world: World) -> None:
    packed = gzip.compress(PNG)
    path = world.put(
        "public", "alice", "photo.png", packed, content_type="image/png", ContentEncoding="gzip"
    )
    base = world.serve()
    assert_error(httpx.get(base + path + "?w=8", verify=TLS), 422, "UNPROCESSABLE_IMAGE")
    assert_error(httpx.get(base + "/i/alice/photo.webp", verify=TLS), 422, "UNPROCESSABLE_IMAGE")
    response, body = fetch(base + path)
    assert body == packed and response.headers["content-encoding"] == "gzip"


def test_a_stored_value_that_could_break_a_header_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a loopback store: a value with a control character (a tab: the parser refuses
    the others) or a byte past ASCII, and an encoding that is no list of codings (or says
    ``identity``), are never sent on; nor a CR or LF, whatever a store's parser lets by."""
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    answer = (
        b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e1"\r\n'
        b"Cache-Control: max-age=5,\tpublic\r\n"
        b'Content-Disposition: inline; filename="\xe9t\xe9.png"\r\n'
        b"Content-Language: de\r\n"
        b"Content-Encoding: gzip; q=1\r\n\r\nhello"
    )
    outcome = read_canned(answer, conditions=Conditions())
    assert outcome.reply is not None
    assert outcome.reply.stat.metadata == (("content-language", "de"),)
    assert stored_headers({"content-encoding": "identity"}) == ()
    assert stored_headers({"content-encoding": "gzip, br"}) == (("content-encoding", "gzip, br"),)
    assert stored_headers({"cache-control": " max-age=5"}) == (), "no padding"
    for broken in ("inline\r\nSet-Cookie: a=b", "inline\n", "in\x00line", "in\x7fline"):
        assert stored_headers({"content-disposition": broken}) == ()
    assert stored_headers({"content-language": "x" * 1025}) == (), "too long"


def test_the_setting_names_only_what_may_pass() -> None:
    assert parse_pass_headers("EDGE_S3_PASS_HEADERS", "") == frozenset()
    assert parse_pass_headers("EDGE_S3_PASS_HEADERS", PASS_ALL) == {
        "cache-control",
        "content-disposition",
        "content-language",
    }
    for wrong in ("Content-Type", "Content-Encoding", "Set-Cookie", "cache-control,x"):
        with pytest.raises(ConfigError, match=r"^EDGE_S3_PASS_HEADERS: "):
            parse_pass_headers("EDGE_S3_PASS_HEADERS", wrong)

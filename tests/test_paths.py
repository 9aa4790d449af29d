"""Path rules of the spec as pure functions."""

from __future__ import annotations

import pytest

from edge.errors import BadRequest
from edge.paths import decode_path, quote_path, request_path, split_path, validate_path


@pytest.mark.parametrize(
    ("path", "user", "file"),
    [
        ("/i/alice/photo.jpg", "alice", "photo.jpg"),
        ("/i/a/b/c/d.png", "a", "b/c/d.png"),
        ("/i/carol_1.x/a+b=c;d,e@f~g.webp", "carol_1.x", "a+b=c;d,e@f~g.webp"),
        ("/i/bob/café au lait.png", "bob", "café au lait.png"),
        ("/i/" + "u" * 64 + "/f", "u" * 64, "f"),
        ("/i/u/.hidden", "u", ".hidden"),
        ("/i/u/...", "u", "..."),
        ("/i/u/C:", "u", "C:"),
        ("/i/u/" + "é" * 127 + "e", "u", "é" * 127 + "e"),  # 255 bytes exactly
        ("/i/-u/x", "-u", "x"),
    ],
)
def test_valid_paths(path: str, user: str, file: str) -> None:
    assert validate_path(path) == path
    assert split_path(path) == (user, file)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/x/alice/photo.jpg", "does not start with /i/"),
        ("/i/", "user must be"),
        ("/i/alice", "names no file"),
        ("/i/alice/", "names no file"),
        ("/i/.alice/p", "user must be"),
        ("/i/" + "u" * 65 + "/f", "user must be"),
        ("/i/al ice/p", "user must be"),
        ("/i/alice/a//b", "empty segment"),
        ("/i/alice/a/", "empty segment"),
        ("/i/alice/./a", "'.' or '..'"),
        ("/i/alice/a/..", "'.' or '..'"),
        ("/i/alice/a\\b", "control byte or a backslash"),
        ("/i/alice/a\x00b", "control byte"),
        ("/i/alice/a\x1fb", "control byte"),
        ("/i/alice/a\x7fb", "control byte"),
        ("/i/u/" + "é" * 128, "longer than 255 bytes"),
        ("/i/u/" + "/".join(["x" * 200] * 6), "1024"),
    ],
)
def test_malformed_paths(path: str, why: str) -> None:
    with pytest.raises(BadRequest, match=why.replace("(", r"\(").replace(".", r"\.")):
        validate_path(path)


def test_whole_path_limit_is_in_bytes() -> None:
    ok = "/i/u/" + "/".join(["é" * 100] * 5)  # 5 + 5*200 + 4 = 1009 bytes
    assert validate_path(ok) == ok
    with pytest.raises(BadRequest):
        validate_path(ok + "/" + "é" * 8)  # 1026 bytes


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"/i/a/caf%C3%A9.png", "/i/a/café.png"),
        (b"/i/a/caf%c3%a9.png", "/i/a/café.png"),
        (b"/i/a/%2e%2e/b", "/i/a/../b"),
        (b"/i/a/b%2Fc", "/i/a/b/c"),
        (b"/i/a/100%", "/i/a/100%"),
    ],
)
def test_decode_path(raw: bytes, decoded: str) -> None:
    assert decode_path(raw) == decoded


@pytest.mark.parametrize("raw", [b"/i/a/%ff.png", b"/i/a/%C0%AE", b"/i/a/\xff", b"/i/a/%ED%A0%80"])
def test_decode_path_rejects_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="UTF-8"):
        decode_path(raw)


def test_quote_path_keeps_only_unreserved_and_slash() -> None:
    assert quote_path("/i/bob/café au lait.png") == "/i/bob/caf%C3%A9%20au%20lait.png"
    assert quote_path("/i/c/a+b=c;d,e@f~g.webp") == "/i/c/a%2Bb%3Dc%3Bd%2Ce%40f~g.webp"
    assert quote_path("/i/c/A-Z_a.z~0") == "/i/c/A-Z_a.z~0"


def test_request_path_decodes_then_validates() -> None:
    assert request_path(b"/i/bob/caf%C3%A9%20au%20lait.png") == "/i/bob/café au lait.png"
    for raw in (
        b"/i/a/%2e%2e/b",
        b"/i/a/%2E./b",
        b"/i/a/b%2F",
        b"/i/a/x%00",
        b"/i/a/x%5c",
        b"/i/%2ea/b",
    ):
        with pytest.raises(BadRequest):
            request_path(raw)
    with pytest.raises(BadRequest, match="over 1024"):
        request_path(b"/i/a/" + b"x" * 65536)

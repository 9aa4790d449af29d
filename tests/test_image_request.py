"""The parse step: methods, the path memo, the headers that shape a read."""

from __future__ import annotations

import pytest

from edge.errors import BadRequest, MethodNotAllowed
from edge.image.request import Parser, conditions
from edge.storage.base import NO_CONDITIONS, Conditions


def scope(path: bytes, *, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None,
          query: bytes = b"") -> dict[str, object]:  # fmt: skip
    return {"method": method, "raw_path": path, "path": "", "query_string": query,
            "headers": headers or []}  # fmt: skip


def test_a_request_is_parsed_once_into_its_parts() -> None:
    request = Parser().parse(scope(b"/i/alice/caf%C3%A9.png", method="HEAD", query=b"sig=x&exp=1"))
    assert (request.path, request.query, request.head) == (
        "/i/alice/café.png",
        b"sig=x&exp=1",
        True,
    )
    assert request.conditions is NO_CONDITIONS and request.transform is None
    assert not request.plain, "a HEAD is not answered with a body"
    assert Parser().parse(scope(b"/i/alice/a.png")).plain
    with pytest.raises(MethodNotAllowed):
        Parser().parse(scope(b"/i/alice/a.png", method="POST"))


def test_the_path_memo_is_bounded_and_keeps_no_failure() -> None:
    parse = Parser()
    parse.paths.max_entries = 10
    for n in range(25):
        assert parse.validate(b"/i/alice/%d.png" % n) == f"/i/alice/{n}.png"
        assert len(parse.paths) <= 10
    parse.paths.clear()
    escaped = b"/i/alice/" + b"%61" * 200 + b"/" + b"%62" * 200  # 1,210 bytes raw, 410 decoded
    assert parse.validate(escaped) == "/i/alice/" + "a" * 200 + "/" + "b" * 200
    with pytest.raises(BadRequest):
        parse.validate(b"/i/alice/../x.png")
    assert parse.paths == {}, "neither a long raw path nor a refused one is kept"


def test_only_the_headers_that_shape_a_read_make_conditions() -> None:
    assert conditions([(b"accept", b"image/*"), (b"user-agent", b"x")]) is NO_CONDITIONS
    assert conditions([(b"range", b"bytes=0-9"), (b"if-range", b'"e"')]) == Conditions(
        (0, 9), '"e"', None, None
    )
    repeated = conditions([(b"if-none-match", b'"a"'), (b"if-none-match", b'"b"')])
    assert repeated.if_none_match == '"a", "b"', "repeated fields form one list"
    two_ranges = conditions([(b"range", b"bytes=0-1"), (b"range", b"bytes=2-3")])
    assert two_ranges.range is None, "two Range headers: the whole body"

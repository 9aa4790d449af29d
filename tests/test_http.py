"""edge.http's If-Range parsing: exactly one strong entity-tag or an HTTP date; anything else
never holds, so storage is sent only what was parsed and written out again."""

from __future__ import annotations

import pytest

from edge.http import http_date, if_range_holds, parse_if_range

ETAG = '"5d41402abc4b2a76b9719d911017c592"'
MODIFIED = 1_795_000_000


@pytest.mark.parametrize(
    ("header", "validator"),
    [
        (ETAG, ETAG),
        (f"  {ETAG}\t", ETAG),  # optional whitespace, not kept
        ('""', '""'),
        ('"caf\xe9"', '"caf\xe9"'),  # obs-text, as latin-1 decodes it
        (http_date(MODIFIED), MODIFIED),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", 784111777),  # asctime
    ],
)
def test_one_strong_tag_or_a_date_is_a_validator(header: str, validator: str | int) -> None:
    assert parse_if_range(header) == validator


@pytest.mark.parametrize(
    "header",
    [
        f'"other", {ETAG}',  # a list: If-Range takes one validator
        f"{ETAG}, {ETAG}",
        f"W/{ETAG}",  # weak: never matches for a range
        f"w/{ETAG}",
        ETAG[:-1],  # unterminated
        ETAG[1:],
        '"a"b"',
        '"a b"',  # a space is not etagc
        '"a\x00"',
        f"{ETAG} x",
        "*",
        "",
        "   ",
        "garbage",
        "1795000000",  # seconds are not an HTTP date
        "x" * 100,
    ],
)
def test_anything_else_is_none(header: str) -> None:
    assert parse_if_range(header) is None
    assert not if_range_holds(header, etag=ETAG, last_modified=MODIFIED)


def test_if_range_holds_agrees_with_the_parser() -> None:
    assert if_range_holds(None, etag=ETAG, last_modified=MODIFIED), "no If-Range: the range"
    assert if_range_holds(f" {ETAG} ", etag=ETAG, last_modified=MODIFIED)
    assert not if_range_holds('"other"', etag=ETAG, last_modified=MODIFIED)
    assert not if_range_holds(ETAG, etag=f"W/{ETAG}", last_modified=MODIFIED), "weak stored"
    assert if_range_holds(http_date(MODIFIED), etag=ETAG, last_modified=MODIFIED)
    assert not if_range_holds(http_date(MODIFIED - 1), etag=ETAG, last_modified=MODIFIED)
    assert not if_range_holds(http_date(MODIFIED + 1), etag=ETAG, last_modified=MODIFIED)

"""The verifier's memos (edge.signing): verified (and refused) URLs skip the HMAC for the exact
URL seen before, and nothing else, with time judged on every request as if the memo were not
there; bounded, and never holding a long query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import BadRequest, SignatureExpired, SignatureInvalid
from edge.signing import MEMO_QUERY_BYTES, Verifier, sign_url
from tests.support.clock import Clock
from tests.support.vectors import KEYS, NOW, VERIFYING

PATH = "/i/alice/photo.png"


def split(url: str) -> tuple[str, bytes]:
    path, _, query = url.partition("?")
    return path, query.encode()


def test_a_remembered_url_still_expires_and_still_respects_the_max_ttl() -> None:
    clock = Clock(NOW)
    verifier = Verifier(VERIFYING, max_ttl=3600, clock=clock)
    path, query = split(sign_url(PATH, key=KEYS[0], exp=NOW + 600))
    assert verifier.verify(path, query) == ("main", NOW + 600)
    assert verifier.verify(path, query) == ("main", NOW + 600)  # from the memo
    clock.now = NOW + 600
    with pytest.raises(SignatureExpired):
        verifier.verify(path, query)
    clock.now = NOW - 3600  # a clock stepped back: now beyond the max TTL
    with pytest.raises(SignatureInvalid):
        verifier.verify(path, query)


@given(position=st.integers(min_value=0, max_value=42), other_path=st.booleans())
def test_the_memo_never_vouches_for_another_url(position: int, other_path: bool) -> None:
    verifier = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW))
    path, query = split(sign_url(PATH, key=KEYS[0], exp=NOW + 600))
    assert verifier.verify(path, query) is not None
    if other_path:  # the same query on another path
        with pytest.raises(SignatureInvalid):
            verifier.verify("/i/alice/other.png", query)
        return
    at = query.index(b"sig=") + 4 + position
    flipped = query[:at] + (b"B" if query[at : at + 1] == b"A" else b"A") + query[at + 1 :]
    with pytest.raises(SignatureInvalid):
        verifier.verify(path, flipped)


def test_the_memo_is_bounded_and_can_be_turned_off() -> None:
    verifier = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW), memo_size=100)
    for n in range(250):
        assert verifier.verify(*split(sign_url(f"/i/alice/{n}.png", key=KEYS[0], exp=NOW + 60)))
        assert len(verifier._memo) <= 100
    off = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW), memo_size=0)
    assert off.verify(*split(sign_url(PATH, key=KEYS[0], exp=NOW + 60)))
    assert off._memo == {}


def test_an_expired_url_is_remembered_as_genuine_and_refused_on_time() -> None:
    clock = Clock(NOW)
    verifier = Verifier(VERIFYING, max_ttl=0, clock=clock)
    path, query = split(sign_url(PATH, key=KEYS[0], exp=NOW - 1))
    for _ in range(2):
        with pytest.raises(SignatureExpired):
            verifier.verify(path, query)
    assert verifier._memo == {(path, query): ("main", NOW - 1)}  # genuine: no second HMAC
    assert verifier._refused == {}


def test_signatures_no_key_made_are_remembered_apart_and_bounded() -> None:
    verifier = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW), memo_size=50)
    good = split(sign_url(PATH, key=KEYS[0], exp=NOW + 60))
    assert verifier.verify(*good)
    for n in range(120):
        path, query = split(sign_url(f"/i/alice/{n}.png", key=KEYS[0], exp=NOW + 60))
        at = query.index(b"sig=") + 4  # one character of the signature changed
        forged = query[:at] + (b"B" if query[at : at + 1] == b"A" else b"A") + query[at + 1 :]
        for _ in range(2):  # the second answer comes from the memo, and is the same
            with pytest.raises(SignatureInvalid, match="matches no candidate key"):
                verifier.verify(path, forged)
        assert len(verifier._refused) <= 50
    assert verifier._memo == {good: ("main", NOW + 60)}, "refusals never evict genuine URLs"
    assert verifier.verify(*good)
    malformed = (good[0], good[1].replace(b"exp=", b"exp=0"))
    with pytest.raises(SignatureInvalid, match="canonical decimal"):
        verifier.verify(*malformed)  # refused for its form, before any HMAC: not remembered
    assert malformed not in verifier._refused


def test_long_queries_are_judged_every_time_never_remembered() -> None:
    """Anyone can pad a query (other parameters are ignored) or forge a long one: the memos
    must not hold such keys, or a few thousand requests would pin hundreds of MiB."""
    verifier = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW))
    path, query = split(sign_url(PATH, key=KEYS[0], exp=NOW + 60))
    padded = query + b"&pad=" + b"x" * MEMO_QUERY_BYTES
    assert verifier.verify(path, padded) == ("main", NOW + 60)  # still genuine
    at = padded.index(b"sig=") + 4
    forged = padded[:at] + (b"B" if padded[at : at + 1] == b"A" else b"A") + padded[at + 1 :]
    with pytest.raises(SignatureInvalid):
        verifier.verify(path, forged)
    assert verifier._memo == {} and verifier._refused == {}
    assert verifier.verify(path, query)  # a plain one still is remembered
    assert list(verifier._memo) == [(path, query)]


def test_unsigned_queries_are_remembered_by_query_and_never_vouch_for_a_signed_one() -> None:
    verifier = Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW))
    assert verifier.verify(PATH, b"w=400") is None
    assert verifier.verify("/i/bob/other.jpg", b"w=400") is None  # the query's verdict alone
    assert set(verifier._unsigned) == {b"w=400"}
    # The same transform with a signature, forged or genuine, is judged as signed.
    path, query = split(sign_url(PATH, key=KEYS[0], exp=NOW + 60, transform="w=400"))
    assert verifier.verify(path, query) == ("main", NOW + 60)
    at = query.index(b"sig=") + 4
    forged = query[:at] + (b"B" if query[at : at + 1] == b"A" else b"A") + query[at + 1 :]
    with pytest.raises(SignatureInvalid):
        verifier.verify(path, forged)
    with pytest.raises(SignatureInvalid):  # half a signature is no unsigned query
        verifier.verify(PATH, b"w=400&exp=1")
    with pytest.raises(BadRequest):  # a malformed transform is refused every time
        verifier.verify(PATH, b"w=0400")
    assert set(verifier._unsigned) == {b"w=400"}
    for width in range(1, 10_001):  # bounded, and long queries never kept
        assert verifier.verify(PATH, b"w=%d" % width) is None
        assert len(verifier._unsigned) <= verifier._unsigned.max_entries
    padded = b"w=400&pad=" + b"x" * MEMO_QUERY_BYTES
    assert verifier.verify(PATH, padded) is None and padded not in verifier._unsigned
    off = Verifier(VERIFYING, max_ttl=0, memo_size=0)
    assert off.verify(PATH, b"w=400") is None and off._unsigned == {}

"""Properties of the v1 scheme over arbitrary paths, expiries and hostile input."""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.errors import EdgeError
from edge.paths import quote_path
from edge.signing import Verifier, check_url, sign_url
from tests.support.strategies import hostile_text, image_paths, percent_variants
from tests.support.vectors import KEYS, NOW, VERIFYING

RESULTS = {"VALID", "UNSIGNED", "SIGNATURE_INVALID", "SIGNATURE_EXPIRED", "BAD_REQUEST"}

expiries = st.integers(min_value=NOW + 1, max_value=10**12 - 1)


def verifier(now: int = NOW) -> Verifier:
    return Verifier(VERIFYING, max_ttl=0, clock=lambda: float(now))


@given(path=image_paths(), exp=expiries, key=st.sampled_from(KEYS), with_kid=st.booleans())
@example(path="/i/bob/café au lait.png", exp=NOW + 60, key=KEYS[0], with_kid=False)
def test_sign_then_verify_round_trips(path: str, exp: int, key: object, with_kid: bool) -> None:
    url = sign_url(path, key=key, exp=exp, include_kid=with_kid)  # type: ignore[arg-type]
    outcome = check_url(url, verifier())
    assert outcome.result == "VALID", (url, outcome)
    assert check_url(url, verifier(exp)).result == "SIGNATURE_EXPIRED"


@given(path=image_paths(), exp=expiries, data=st.data())
def test_changing_any_byte_of_path_exp_or_sig_fails(
    path: str, exp: int, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(KEYS))
    sig_and_exp = sign_url(path, key=key, exp=exp).partition("?")[2]
    sig = sig_and_exp.split("&")[0].removeprefix("sig=")
    part = data.draw(st.sampled_from(["path", "exp", "sig"]))
    if part == "path":
        raw = bytearray(path.encode())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
        url = _quote_bytes(bytes(raw)) + "?" + sig_and_exp
    elif part == "exp":
        text = str(exp)
        i = data.draw(st.integers(0, len(text) - 1))
        digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != text[i]))
        url = f"{quote_path(path)}?sig={sig}&exp={text[:i]}{digit}{text[i + 1 :]}"
    else:
        i = data.draw(st.integers(0, len(sig) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        char = data.draw(st.sampled_from(alphabet).filter(lambda c: c != sig[i]))
        url = f"{quote_path(path)}?sig={sig[:i]}{char}{sig[i + 1 :]}&exp={exp}"
    assert check_url(url, verifier()).result in {"SIGNATURE_INVALID", "BAD_REQUEST"}


def _quote_bytes(raw: bytes) -> str:
    """Percent-encode raw bytes, valid UTF-8 or not (a mutated path may be either)."""
    return "".join(
        chr(b) if (b < 128 and chr(b).isalnum()) or b in b"/-._~" else f"%{b:02X}" for b in raw
    )


@given(path=image_paths(), exp=expiries, data=st.data())
def test_every_percent_encoding_of_the_path_verifies(
    path: str, exp: int, data: st.DataObject
) -> None:
    query = sign_url(path, key=KEYS[0], exp=exp).partition("?")[2]
    url = percent_variants(data, path, keep="/") + "?" + query
    assert check_url(url, verifier()).result == "VALID", url


@given(path=image_paths(), exp=expiries, data=st.data())
def test_percent_encoded_parameter_names_and_values_count(
    path: str, exp: int, data: st.DataObject
) -> None:
    query = sign_url(path, key=KEYS[2], exp=exp, include_kid=True).partition("?")[2]
    parts = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        parts.append(percent_variants(data, name) + "=" + percent_variants(data, value))
    parts += ["v=2", "a;b=c"]
    order = data.draw(st.permutations(parts))
    assert check_url(quote_path(path) + "?" + "&".join(order), verifier()).result == "VALID"


@settings(max_examples=300)
@given(path=hostile_text, query=hostile_text)
def test_arbitrary_urls_give_only_defined_outcomes(path: str, query: str) -> None:
    for url in (f"/i/{path}?{query}", f"{path}?{query}", f"/i/u/{path}"):
        assert check_url(url, verifier()).result in RESULTS


@settings(max_examples=300)
@given(path=st.text(), query=st.binary())
def test_verify_raises_only_edge_errors(path: str, query: bytes) -> None:
    with contextlib.suppress(EdgeError):  # any other exception fails the test
        verifier().verify(path, query)

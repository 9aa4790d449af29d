"""Properties of signed transform URLs: a signature covers exactly its transform, whatever
the order and percent-encoding of the query, and the verifier's memo never widens that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edge.keys import Key, parse_keyring
from edge.signing import Verifier, check_url, sign_url
from edge.transform_params import parse_transform, transform_from_pairs
from tests.support.transform_params import VALID

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "vectors-transforms.json").read_text(encoding="utf-8")
)
SIGNING = parse_keyring(VECTORS["keys"]["signing"])
VERIFYING = parse_keyring(VECTORS["keys"]["verifying"])
KEYS = [SIGNING.by_kid[kid] for kid in ("main", "old", "ed1")]
NOW = 1_700_000_000
EXP = NOW + 600

Pairs = list[tuple[str, str]]

keys = st.sampled_from(KEYS)
users = st.text("abcXYZ019_.-", min_size=1, max_size=8).filter(lambda user: user[0] != ".")
#: A file name: any character but "/", backslash, controls and DEL; never "." or "..".
files = st.text(
    st.characters(codec="utf-8", exclude_characters="/\\\x7f" + "".join(map(chr, range(32)))),
    min_size=1,
    max_size=12,
).filter(lambda file: file not in (".", ".."))
paths = st.builds("/i/{}/{}".format, users, files)
preset_names = st.text("ABCXYZabcxyz0189_-", min_size=1, max_size=64)


@st.composite
def transforms(draw: st.DrawFn) -> Pairs:
    """One to thirteen transform parameters with canonical values, in any order."""
    names = draw(st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=12))
    pairs = [(name, draw(st.sampled_from(sorted(VALID[name])))) for name in names]
    if not pairs or draw(st.booleans()):
        pairs.insert(draw(st.integers(0, len(pairs))), ("p:" + draw(preset_names), ""))
    return pairs


def escaped(data: st.DataObject, text: str) -> str:
    """Any percent-encoding of ``text``: each byte literal (when it may be) or escaped, in
    upper or lower case hex."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        if byte < 128 and (char.isalnum() or char in "-._~:") and data.draw(st.booleans()):
            out.append(char)
        else:
            out.append((f"%{byte:02X}", f"%{byte:02x}")[data.draw(st.booleans())])
    return "".join(out)


def verifier() -> Verifier:
    return Verifier(VERIFYING, max_ttl=0, clock=lambda: float(NOW))


def signed(path: str, pairs: Pairs, key: Key, with_kid: bool = False) -> tuple[str, list[str]]:
    """The URL's path and its query's parameters, transform parameters first."""
    url = sign_url(path, key=key, exp=EXP, include_kid=with_kid, transform=pairs)
    raw_path, _, query = url.partition("?")
    return raw_path, query.split("&")


IGNORED = ["v=3", "utm_source=x", "W=9", "Fit=cover", "width=1", "p=1", "a;w=1", "", "x=p:a"]


@given(path=paths, pairs=transforms(), key=keys, with_kid=st.booleans(), data=st.data())
def test_any_order_and_encoding_verifies_with_ignored_parameters(
    path: str, pairs: Pairs, key: Key, with_kid: bool, data: st.DataObject
) -> None:
    raw_path, parts = signed(path, pairs, key, with_kid)
    rewritten = []
    for part in parts:
        name, eq, value = part.partition("=")
        if not eq and data.draw(st.booleans()):
            eq = "="  # p:NAME= is the same preset
        rewritten.append(escaped(data, name) + eq + escaped(data, value))
    extra = data.draw(st.lists(st.sampled_from(IGNORED), max_size=4))
    query = "&".join(data.draw(st.permutations(rewritten + extra)))
    outcome = check_url(f"{raw_path}?{query}", verifier())
    assert outcome.result == "VALID", (query, outcome)
    assert parse_transform(query.encode()) == transform_from_pairs(pairs)


@given(path=paths, pairs=transforms(), key=keys, data=st.data())
def test_changing_adding_or_removing_a_transform_parameter_fails(
    path: str, pairs: Pairs, key: Key, data: st.DataObject
) -> None:
    raw_path, parts = signed(path, pairs, key)
    judge = verifier()  # one verifier throughout: its memo holds the genuine URL
    assert check_url(f"{raw_path}?{'&'.join(parts)}", judge).result == "VALID"
    named, rest = parts[: len(pairs)], parts[len(pairs) :]
    missing = [name for name in VALID if all(name != n for n, _ in pairs)]
    has_preset = any(name.startswith("p:") for name, _ in pairs)
    actions = ["change", "remove"] + (["add"] if missing or not has_preset else [])
    action = data.draw(st.sampled_from(actions))
    at = data.draw(st.integers(0, len(named) - (action != "add")))
    if action == "change":
        name, value = pairs[at]
        if name.startswith("p:"):
            other = data.draw(preset_names.filter(lambda n: n != name[2:]))
            named[at] = "p:" + other
        else:
            other = data.draw(st.sampled_from(sorted(set(VALID[name]) - {value})))
            named[at] = f"{name}={other}"
    elif action == "remove":
        del named[at]
    else:
        choices = [*missing, *([] if has_preset else ["p:"])]
        name = data.draw(st.sampled_from(choices))
        added = (
            "p:" + data.draw(preset_names) if name == "p:" else f"{name}={next(iter(VALID[name]))}"
        )
        named.insert(at, added)
    query = "&".join(data.draw(st.permutations(named + rest)))
    assert check_url(f"{raw_path}?{query}", judge).result == "SIGNATURE_INVALID", (action, query)
    assert check_url(f"{raw_path}?{'&'.join(parts)}", judge).result == "VALID"  # still


@given(path=paths, pairs=transforms(), key=keys, data=st.data())
def test_a_repeated_transform_parameter_is_a_bad_request_even_when_signed(
    path: str, pairs: Pairs, key: Key, data: st.DataObject
) -> None:
    raw_path, parts = signed(path, pairs, key)
    judge = verifier()
    assert check_url(f"{raw_path}?{'&'.join(parts)}", judge).result == "VALID"
    again = data.draw(st.sampled_from(parts[: len(pairs)]))
    query = "&".join(data.draw(st.permutations([*parts, again])))
    assert check_url(f"{raw_path}?{query}", judge).result == "BAD_REQUEST"


@given(path=paths, pairs=transforms(), key=keys)
def test_a_signature_without_transforms_grants_the_stored_object_only(
    path: str, pairs: Pairs, key: Key
) -> None:
    judge = verifier()
    plain = sign_url(path, key=key, exp=EXP)
    assert check_url(plain, judge).result == "VALID"
    params = "&".join(name if not value else f"{name}={value}" for name, value in pairs)
    assert check_url(f"{plain}&{params}", judge).result == "SIGNATURE_INVALID"
    raw_path, _, query = plain.partition("?")
    assert check_url(f"{raw_path}?{params}&{query}", judge).result == "SIGNATURE_INVALID"
    assert check_url(f"{raw_path}?{params}", judge).result == "UNSIGNED"


def test_a_thumbnails_signature_does_not_grant_the_full_size() -> None:
    judge = verifier()
    thumb = sign_url("/i/alice/photo.jpg", key=KEYS[0], exp=EXP, transform="w=200")
    assert check_url(thumb, judge).result == "VALID"
    assert check_url(thumb.replace("w=200", "w=2000"), judge).result == "SIGNATURE_INVALID"
    assert check_url(thumb.replace("w=200&", ""), judge).result == "SIGNATURE_INVALID"
    blurred = sign_url("/i/alice/photo.jpg", key=KEYS[0], exp=EXP, transform="blur=50")
    assert check_url(blurred.replace("blur=50", "blur=0"), judge).result == "SIGNATURE_INVALID"
    webp = thumb.replace("photo.jpg", "photo.webp")
    assert check_url(webp, judge).result == "SIGNATURE_INVALID"

"""Every signer (Python, Node, Go, Rust) refuses what the edge would refuse, agrees byte for
byte on what it accepts, and aligns exp the same way.

- tests/data/signer-invalid.json: bad paths, kids, exps, aligns and keys, each refused by
  every signer with an error naming the rule; keyrings the edge accepts (optional padding,
  non-zero unused bits) sign as the canonical one.
- tests/data/vectors-align.json: ``align`` rounds exp up, the same URL in every language.
- 10,000 random valid cases (non-ASCII, NFC and NFD, 255-byte segments, 1,024-byte paths,
  every punctuation mark), signed by all four: byte for byte the same, and valid at the edge.

Each non-Python signer is spawned once per batch, the compiled ones built once a session
(tests/support/signers.py).
"""

from __future__ import annotations

import functools
import json
import random
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from edge.keys import parse_keyring
from edge.paths import validate_path
from edge.signing import Verifier, align_exp, check_url
from tests.support.signers import LANGUAGES, Case, Signers, sign_python

DATA = Path(__file__).parent / "data"
INVALID: dict[str, Any] = json.loads((DATA / "signer-invalid.json").read_text(encoding="utf-8"))
ALIGN: dict[str, Any] = json.loads((DATA / "vectors-align.json").read_text(encoding="utf-8"))
VECTORS: dict[str, Any] = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))
DEFAULT: Case = INVALID["default"]

#: The compiled signers are the slow ones: a build, then a batch.
LANGUAGE_PARAMS = [
    pytest.param(language, marks=[pytest.mark.slow] if language in ("go", "rust") else [])
    for language in LANGUAGES
]


def case(**fields: Any) -> Case:
    return {**DEFAULT, **{name: value for name, value in fields.items() if name in DEFAULT}}


def refuses(result: str, rule: str, language: str) -> bool:
    """``result`` is a refusal, by the signer (not the harness), naming ``rule``."""
    if not result.startswith("error: ") or result.startswith("error: harness"):
        return False
    if rule == "path" and language == "python":
        return result.startswith("error: BadRequest: ")  # edge.paths' own reasons
    word = "EDGE_SIGNING_KEYS" if rule == "key" else rule
    return word in result


# --- refusals -----------------------------------------------------------------------------


def test_the_table_covers_the_issue() -> None:
    rules = [c["refused"] for c in INVALID["invalid"]]
    assert rules.count("path") >= 23
    assert {"path", "kid", "exp", "align", "key"} == set(rules)
    names = [c["name"] for c in INVALID["invalid"]]
    assert len(set(names)) == len(names)
    for c in INVALID["invalid"]:
        assert set(c) - {"name", "refused"} <= set(DEFAULT), c["name"]


@pytest.mark.parametrize("language", LANGUAGE_PARAMS)
def test_every_signer_refuses_the_table(signers: Signers, language: str) -> None:
    table = INVALID["invalid"]
    results = signers(language)([case(**c) for c in table])
    assert len(results) == len(table)
    wrong = [
        f"{c['name']} ({c['refused']}): {result[:200]}"
        for c, result in zip(table, results, strict=True)
        if not refuses(result, c["refused"], language)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", LANGUAGE_PARAMS)
def test_every_signer_reads_keys_as_the_edge_does(signers: Signers, language: str) -> None:
    """Padding optional, unused bits ignored, harmless whitespace: one key, one URL."""
    keyrings = INVALID["equivalent_keyrings"]
    cases = [case(keys=keys, kid="main", include_kid=True) for keys in keyrings]
    results = signers(language)(cases)
    assert results == signers("python")(cases[:1]) * len(keyrings)
    assert results[0].startswith("/i/bob/x.png?sig=")
    for keys in keyrings:  # and the edge itself takes each of them
        assert parse_keyring(keys).by_kid["main"].alg == "hs256"


@pytest.mark.parametrize("language", LANGUAGE_PARAMS)
def test_a_table_case_fixed_is_signed(signers: Signers, language: str) -> None:
    """The table's default case is valid: each refusal comes from the one field changed."""
    assert signers(language)([case()]) == [
        "/i/bob/x.png?sig=o124xpivzPosYRJGK_aGKUigrKj2vOf-ABqX51O2Jc8&exp=1704070800"
    ]


# --- align ----------------------------------------------------------------------------------


def test_align_arithmetic() -> None:
    for c in ALIGN["exp"]:
        assert align_exp(c["now"] + c["expires_in"], c["align"]) == c["exp"], c
        if c["align"]:
            assert c["exp"] % c["align"] == 0
            assert 0 <= c["exp"] - (c["now"] + c["expires_in"]) < c["align"]


def align_cases() -> tuple[list[Case], list[int]]:
    """The sign cases, then the exp cases on a plain path; and the exp each must carry."""
    plain = {"kid": "main", "include_kid": False, "path": "/i/alice/photo.jpg", "transform": []}
    cases = [
        case(
            keys=ALIGN["keys"],
            kid=c["kid"],
            include_kid=c["include_kid"],
            path=c["path"],
            transform=c["transform"],
            exp=c["now"] + c["expires_in"],
            align=c["align"],
        )
        for c in ALIGN["sign"] + [{**c, **plain} for c in ALIGN["exp"]]
    ]
    return cases, [c["exp"] for c in ALIGN["sign"] + ALIGN["exp"]]


@pytest.mark.parametrize("language", LANGUAGE_PARAMS)
def test_every_signer_reproduces_the_align_vectors(signers: Signers, language: str) -> None:
    cases, exps = align_cases()
    results = signers(language)(cases)
    assert results[: len(ALIGN["sign"])] == [c["url"] for c in ALIGN["sign"]]
    assert [int(re.findall(r"[?&]exp=(\d+)", url)[0]) for url in results] == exps


def test_urls_minted_within_one_window_are_identical() -> None:
    by_exp: dict[int, set[str]] = {}
    for c in ALIGN["sign"]:
        by_exp.setdefault(c["exp"], set()).add(c["url"])
    assert any(len([c for c in ALIGN["sign"] if c["exp"] == exp]) > 1 for exp in by_exp)
    same = [c for c in ALIGN["sign"] if c["exp"] == 1_700_006_400]
    assert len(same) == 2 and same[0]["now"] != same[1]["now"]
    assert same[0]["url"] == same[1]["url"]


# --- differential ---------------------------------------------------------------------------

#: What a file segment is drawn from: every ASCII punctuation mark but '/' and '\\',
#: letters, digits, space, and non-ASCII of 2, 3 and 4 bytes (NFC and NFD forms below).
PUNCTUATION = "".join(c for c in string.punctuation if c not in "/\\")
ALPHABET = (
    string.ascii_letters
    + string.digits
    + PUNCTUATION * 3
    + " "
    + "éüñçøßÆ"
    + "あ漢字€"
    + "\u0301\u0308"  # combining marks
    + "😀𝄞"
    + "\u00a0\u2028\ufeff\u200d"
)
#: Each character's UTF-8 bytes, so that a segment's size is summed, not re-encoded.
WIDTHS = {char: len(char.encode("utf-8")) for char in ALPHABET}
USER_FIRST = string.ascii_letters + string.digits + "_-"
USER_REST = USER_FIRST + "."
KEYS = VECTORS["keys"]["signing"]
TRANSFORMS = [[], [["w", "800"]], [["fit", "cover"], ["w", "200"], ["p:thumb", ""]]]


def random_segment(rng: random.Random, limit: int) -> str:
    """A file segment of at most ``limit`` UTF-8 bytes, never '.' or '..'."""
    cap = min(rng.choice([1, 2, 8, 30, 100, 255, 255]), limit)
    text, size = "", 0
    while True:
        char = rng.choice(ALPHABET)
        size += WIDTHS[char]
        if size > cap:
            break
        text += char
    text = unicodedata.normalize(rng.choice(["NFC", "NFD"]), text)
    while len(text.encode("utf-8")) > cap:
        text = text[:-1]
    return text if text and text not in (".", "..") else "x"


def random_path(rng: random.Random) -> str:
    user = rng.choice(USER_FIRST) + "".join(
        rng.choice(USER_REST) for _ in range(rng.choice([0, 3, 10, 63]))
    )
    path = f"/i/{user}"
    budget = rng.choice([40, 300, 1024, 1024])
    while True:
        left = budget - len(path.encode("utf-8")) - 1
        if left < 1:
            break
        path += "/" + random_segment(rng, min(255, left))
        if rng.random() < 0.3:
            break
    if path.count("/") < 3:
        path += "/x"
    return path


def random_case(rng: random.Random) -> Case:
    return case(
        keys=KEYS,
        kid=rng.choice(["main", "old", "ed1"]),
        include_kid=rng.random() < 0.5,
        exp=rng.choice([0, 1, 1_704_070_800, rng.randrange(10**12), 999_999_999_999]),
        align=rng.choice([None, 0, 1, 60, 3600, rng.randrange(1, 10**6)]),
        path=random_path(rng),
        transform=rng.choice(TRANSFORMS),
    )


def random_cases(count: int) -> list[Case]:
    rng = random.Random(19)
    cases = [random_case(rng) for _ in range(count)]
    for c in cases:  # the aligned exp of 999999999999 may be 13 digits: drop the align then
        if c["align"] and -(-c["exp"] // c["align"]) * c["align"] > 999_999_999_999:
            c["align"] = None
    return cases


CASES = random_cases(10_000)


@functools.cache
def python_urls() -> list[str]:
    """The Python signer's results for CASES, computed once: the reference every other
    signer is held to."""
    return sign_python(CASES)


def test_the_random_paths_are_what_the_issue_asks() -> None:
    paths = [c["path"] for c in CASES]
    for path in paths:
        validate_path(path)
    sizes = [len(path.encode("utf-8")) for path in paths]
    segments = [len(s.encode("utf-8")) for path in paths for s in path.split("/")]
    assert max(sizes) == 1024 and max(segments) == 255
    text = "".join(paths)
    assert set(PUNCTUATION) <= set(text)
    assert any(not path.isascii() for path in paths)
    assert any(
        unicodedata.is_normalized("NFD", p) and not unicodedata.is_normalized("NFC", p)
        for p in paths
    )
    assert any(unicodedata.is_normalized("NFC", p) and not p.isascii() for p in paths)


def test_the_python_signer_mints_what_the_edge_verifies() -> None:
    keyring = parse_keyring(VECTORS["keys"]["verifying"])
    verifier = Verifier(keyring, max_ttl=0, leeway=1, clock=lambda: 0.0)  # exp 0 is valid then
    urls = python_urls()
    for c, url in zip(CASES, urls, strict=True):
        outcome = check_url(url, verifier)
        assert outcome.result == "VALID" and outcome.grant is not None, (c, url, outcome)
        assert outcome.grant.exp == align_exp(c["exp"], c["align"])


@pytest.mark.parametrize("language", [p for p in LANGUAGE_PARAMS if p.values[0] != "python"])
def test_every_signer_agrees_byte_for_byte(signers: Signers, language: str) -> None:
    expected = python_urls()
    results = signers(language)(CASES)
    assert len(results) == len(CASES)
    wrong = [
        (c["path"], result, url)
        for c, result, url in zip(CASES, results, expected, strict=True)
        if result != url
    ]
    assert not wrong, f"{len(wrong)} differ, the first: {wrong[0]}"

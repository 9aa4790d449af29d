"""Keyring parsing: errors name the entry's position and kid and why, never key material."""

from __future__ import annotations

import hmac

import pytest

from edge.errors import ConfigError
from edge.keys import HmacKey, b64url_encode, generate, parse_keyring
from edge.signing import Verifier, check_url, sign_url

SECRET = b64url_encode(bytes(range(32)))
SHORT = b64url_encode(b"s" * 16)
SEED = b64url_encode(bytes(range(100, 132)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"main:hs256:{SHORT}", "entry 1 (kid 'main'): hs256 secret is 16 bytes, at least 32"),
        (f"a:hs256:{SECRET},b:hs256:{SECRET}!", "entry 2 (kid 'b'): key is not valid base64url"),
        (f"a:hs256:{SECRET},a:hs256:{SECRET}", "entry 2 (kid 'a'): duplicate kid"),
        (f"a:rsa:{SECRET}", "entry 1 (kid 'a'): unknown alg, expected one of hs256"),
        (f"a:{SECRET}:hs256", "entry 1 (kid 'a'): unknown alg"),
        (
            f"a:ed25519:{SHORT}",
            "entry 1 (kid 'a'): ed25519 private seed is 16 bytes, it must be 32",
        ),
        (f"a:ed25519-pub:{SECRET}x", "entry 1 (kid 'a'): ed25519-pub public key is 33 bytes"),
        (SECRET, "entry 1: expected kid:alg:key, saw no ':' at all (a bare key?)"),
        (f"bad kid:hs256:{SECRET}", "entry 1: kid must be 1 to 32 characters"),
        (f"{'k' * 33}:hs256:{SECRET}", "entry 1: kid must be 1 to 32 characters"),
    ],
)
def test_bad_entries_are_named_without_material(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keyring(text)
    message = str(caught.value)
    assert message.startswith("EDGE_SIGNING_KEYS: ")
    assert expected in message
    for secret in (SECRET, SHORT, SEED):
        assert secret not in message
        assert secret[:12] not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # keygen's old two-line ed25519 output, captured whole by "$(...)"
        (
            f"e:ed25519:{SEED}\ne:ed25519-pub:{SECRET}",
            "entry 1: expected kid:alg:key, saw 5 fields separated by ':', over 2 lines"
            " (entries are separated by ',', not line breaks)",
        ),
        (f"a:hs256:{SECRET}:x", "entry 1: expected kid:alg:key, saw 4 fields separated by ':'"),
        (
            f'"a:hs256:{SECRET}',
            "entry 1: kid must be 1 to 32 characters of A-Z a-z 0-9 _ -, saw"
            " 2 characters holding '\"'",
        ),
        (
            f"{SECRET}:hs256:a",
            "saw 43 characters (the key in this field? the order is kid:alg:key)",
        ),
        (f"a:{SECRET}:hs256", "unknown alg, expected one of hs256, ed25519, ed25519-pub, saw 43"),
        (f"a:HS256:{SECRET}", "entry 1 (kid 'a'): alg is lower case, 'hs256', saw 'HS256'"),
        (
            f"a:hs256:{SECRET}+/",
            "key is not valid base64url (A-Z a-z 0-9 - _, padding optional),"
            " saw 45 characters holding '+', '/'",
        ),
        (f"a:hs256:{SECRET},,a:hs256:{SECRET}", "entry 3 (kid 'a'): duplicate kid, entry 1 has it"),
    ],
)
def test_errors_say_what_they_saw_and_what_they_expected(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keyring(text)
    message = str(caught.value)
    assert message.startswith("EDGE_SIGNING_KEYS: ") and expected in message, message
    for secret in (SECRET, SEED):
        assert secret[:8] not in message


@pytest.mark.parametrize(
    "text",
    [
        f"a:hs256:{SECRET},",  # a trailing comma
        f",a:hs256:{SECRET},,",
        f"\n  a:hs256:{SECRET}\n",  # a heredoc's or a file's line breaks
        f'"a:hs256:{SECRET}"',  # a .env file read as is (docker --env-file)
        f"'a:hs256:{SECRET}'",
        f' "a:hs256:{SECRET}" ,',
        f"a : hs256 : {SECRET}",
    ],
)
def test_harmless_slips_are_tolerated(text: str) -> None:
    keys = parse_keyring(text)
    assert [key.kid for key in keys] == ["a"]
    assert keys.by_kid["a"] == parse_keyring(f"a:hs256:{SECRET}").by_kid["a"]


def test_keyring_order_whitespace_and_padding() -> None:
    keys = parse_keyring(f" new:ed25519-pub:{SEED}= , old:hs256:{SECRET} ,ed:ed25519:{SEED}")
    assert [k.kid for k in keys] == ["new", "old", "ed"]
    assert keys.signing_key is not None and keys.signing_key.kid == "old"
    assert not keys.by_kid["new"].can_sign
    assert parse_keyring("").signing_key is None and len(parse_keyring("  ")) == 0


def test_repr_never_shows_material() -> None:
    keys = parse_keyring(f"a:hs256:{SECRET},b:ed25519:{SEED}")
    text = repr(keys) + repr(list(keys))
    assert "a" in text and SECRET not in text and "secret=" not in text and SEED not in text


def test_precomputed_hmac_equals_stdlib_for_short_and_long_secrets() -> None:
    for secret in (bytes(range(32)), bytes(range(64)), bytes(range(200))):
        key = HmacKey("k", "hs256", secret=secret)
        for message in (b"", b"v1\n/i/a/b\n1", b"x" * 1000):
            assert key.sign(message) == hmac.digest(secret, message, "sha256")


@pytest.mark.parametrize("alg", ["hs256", "ed25519"])
def test_generated_keys_sign_and_verify(alg: str) -> None:
    entries = generate(alg, "fresh")
    signer = parse_keyring(entries[0])
    key = signer.signing_key
    assert key is not None and key.alg == alg
    url = sign_url("/i/u/p.png", key=key, exp=2_000_000_000)
    edge_ring = parse_keyring(entries[-1])  # for ed25519 the edges get only the public key
    assert edge_ring.signing_key is None or alg == "hs256"
    verifier = Verifier(edge_ring, max_ttl=0, clock=lambda: 1_900_000_000.0)
    assert check_url(url, verifier).result == "VALID"
    assert generate(alg, "fresh")[0] != entries[0], "keys are random"


def test_public_key_cannot_sign() -> None:
    key = parse_keyring(f"p:ed25519-pub:{SEED}").by_kid["p"]
    with pytest.raises(ConfigError, match="cannot sign"):
        key.sign(b"x")


def test_generate_rejects_bad_kid_and_alg() -> None:
    with pytest.raises(ConfigError):
        generate("hs256", "no spaces")
    with pytest.raises(ConfigError):
        generate("rsa", "k")

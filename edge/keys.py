"""The keyring: ``kid:alg:key`` entries from ``EDGE_SIGNING_KEYS``, for signing and verifying.

The algorithm belongs to the key, never to the URL. Every entry verifies; the
first one that can sign is the one ``edge sign`` uses. Rotation is a list:
put the new key first, keep the old one until its last URL has expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import ConfigError

ALGORITHMS = ("hs256", "ed25519", "ed25519-pub")
MIN_HMAC_SECRET = 32
ED25519_KEY_BYTES = 32
KID = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_\-]*={0,2}")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, the form of every ``sig`` and key."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with optional padding; raise ValueError on anything else."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


@dataclass(frozen=True, slots=True)
class Key:
    """One keyring entry. Subclasses hold the material, kept out of ``repr``."""

    kid: str
    alg: str
    #: Length of this key's signatures in the URL (base64url, no padding).
    sig_chars: int = field(init=False)
    can_sign: bool = field(init=False)

    def sign(self, message: bytes) -> bytes:
        raise NotImplementedError

    def verify(self, message: bytes, sig: bytes) -> bool:
        """True if ``sig`` (base64url text from the URL, any bytes) signs ``message``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class HmacKey(Key):
    secret: bytes = field(repr=False, default=b"")
    # SHA-256 states after the inner and outer pads: HMAC without redoing the key schedule.
    _inner: hashlib._Hash = field(init=False, repr=False, compare=False)
    _outer: hashlib._Hash = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        block = (
            self.secret.ljust(64, b"\0")
            if len(self.secret) <= 64
            else (hashlib.sha256(self.secret).digest().ljust(64, b"\0"))
        )
        object.__setattr__(self, "sig_chars", 43)
        object.__setattr__(self, "can_sign", True)
        object.__setattr__(self, "_inner", hashlib.sha256(bytes(b ^ 0x36 for b in block)))
        object.__setattr__(self, "_outer", hashlib.sha256(bytes(b ^ 0x5C for b in block)))

    def sign(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def verify(self, message: bytes, sig: bytes) -> bool:
        # Compare encodings in constant time, not decodings: a non-canonical last
        # character (same bytes, other text) then fails, and nothing is decoded.
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        expected = binascii.b2a_base64(outer.digest(), newline=False)[:43]
        return hmac.compare_digest(expected.translate(_TO_URLSAFE), sig)


@dataclass(frozen=True, slots=True)
class Ed25519Key(Key):
    public: Ed25519PublicKey = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    private: Ed25519PrivateKey | None = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sig_chars", 86)
        object.__setattr__(self, "can_sign", self.private is not None)

    def sign(self, message: bytes) -> bytes:
        if self.private is None:
            raise ConfigError(f"key {self.kid!r} is a public key: it verifies but cannot sign")
        return self.private.sign(message)

    def verify(self, message: bytes, sig: bytes) -> bool:
        try:
            text = sig.decode("ascii")
            raw = b64url_decode(text)
        except ValueError:  # UnicodeDecodeError included
            return False
        if len(raw) != 64 or b64url_encode(raw) != text:
            return False
        try:
            self.public.verify(raw, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Keyring:
    """Keys in order. Empty means no private image can be served."""

    keys: tuple[Key, ...] = ()
    by_kid: dict[str, Key] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_kid", {key.kid: key for key in self.keys})

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def signing_key(self) -> Key | None:
        """The first key that can sign: what ``edge sign`` uses without ``--kid``."""
        return next((key for key in self.keys if key.can_sign), None)


def make_key(kid: str, alg: str, material: bytes) -> Key:
    """Build one key, or raise ValueError saying why (never quoting the material)."""
    if alg == "hs256":
        if len(material) < MIN_HMAC_SECRET:
            raise ValueError(
                f"hs256 secret is {len(material)} bytes, at least {MIN_HMAC_SECRET} are needed"
            )
        return HmacKey(kid, alg, secret=material)
    if alg in ("ed25519", "ed25519-pub"):
        if len(material) != ED25519_KEY_BYTES:
            what = "private seed" if alg == "ed25519" else "public key"
            raise ValueError(f"{alg} {what} is {len(material)} bytes, it must be 32")
        if alg == "ed25519":
            private = Ed25519PrivateKey.from_private_bytes(material)
            return Ed25519Key(kid, alg, public=private.public_key(), private=private)
        return Ed25519Key(kid, alg, public=Ed25519PublicKey.from_public_bytes(material))
    # The alg is not echoed: a mis-ordered entry would put the secret there.
    raise ValueError(f"unknown alg, expected one of {', '.join(ALGORITHMS)}")


def parse_keyring(text: str, *, variable: str = "EDGE_SIGNING_KEYS") -> Keyring:
    """Parse ``kid:alg:key[,...]``; errors name variable, entry position and kid, no material.

    What is harmless is tolerated: whitespace and line breaks around the value or an
    entry, empty entries (a trailing comma), and one pair of quotes around the whole value
    or an entry (a ``.env`` file read as is). Each error says what it saw, described
    without the key material (a mis-ordered entry may hold the key in any field), and
    what it expected.
    """
    text = _unquote(text)
    if not text:
        return Keyring()
    keys: list[Key] = []
    seen: dict[str, int] = {}  # kid -> its entry's position
    for position, written in enumerate(text.split(","), start=1):
        entry = _unquote(written)
        if not entry:
            continue  # a trailing comma, or two in a row
        where = f"{variable}: entry {position}"
        parts = entry.split(":")
        if len(parts) != 3:
            raise ConfigError(f"{where}: expected kid:alg:key, saw {_describe_fields(entry)}")
        kid, alg, material = (part.strip() for part in parts)
        if not KID.fullmatch(kid):
            raise ConfigError(
                f"{where}: kid must be 1 to 32 characters of A-Z a-z 0-9 _ -, "
                f"saw {_describe(kid)}{_ORDER if len(kid) > 32 else ''}"
            )
        where = f"{where} (kid {kid!r})"
        if kid in seen:
            raise ConfigError(f"{where}: duplicate kid, entry {seen[kid]} has it too")
        seen[kid] = position
        if alg.lower() in ALGORITHMS and alg not in ALGORITHMS:
            raise ConfigError(f"{where}: alg is lower case, {alg.lower()!r}, saw {alg!r}")
        if alg not in ALGORITHMS:  # not echoed: a mis-ordered entry would put the secret here
            raise ConfigError(
                f"{where}: unknown alg, expected one of {', '.join(ALGORITHMS)}, "
                f"saw {_describe(alg)}{_ORDER if len(alg) > 32 else ''}"
            )
        try:
            raw = b64url_decode(material)
        except ValueError:
            raise ConfigError(
                f"{where}: key is not valid base64url (A-Z a-z 0-9 - _, padding optional), "
                f"saw {_describe(material)}"
            ) from None
        try:
            keys.append(make_key(kid, alg, raw))
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
    return Keyring(tuple(keys))


_QUOTES = ('"', "'")
_ORDER = " (the key in this field? the order is kid:alg:key)"


def _unquote(text: str) -> str:
    """``text`` without surrounding whitespace and one pair of matching quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return text


def _describe_fields(entry: str) -> str:
    """How an entry that is not three fields looks, without any field's text."""
    fields = entry.count(":") + 1
    seen = f"{fields} fields separated by ':'" if fields > 1 else "no ':' at all (a bare key?)"
    lines = entry.count("\n") + 1
    if lines > 1:
        return f"{seen}, over {lines} lines (entries are separated by ',', not line breaks)"
    return seen


def _describe(field: str) -> str:
    """A field described without its text: its length and any characters out of place."""
    if not field:
        return "nothing"
    odd = sorted({c for c in field if not (c.isascii() and (c.isalnum() or c in "-_="))})
    shown = ", ".join(repr(c) for c in odd[:5])
    held = f" holding {shown}" if odd else ""
    return f"{len(field)} character{'s' if len(field) > 1 else ''}{held}"


def generate(alg: str, kid: str) -> Sequence[str]:
    """New keyring entries: one for hs256; for ed25519 the private entry, then the public one."""
    if not KID.fullmatch(kid):
        raise ConfigError("kid must be 1 to 32 characters of A-Z a-z 0-9 _ -")
    if alg == "hs256":
        return (f"{kid}:hs256:{b64url_encode(secrets.token_bytes(32))}",)
    if alg == "ed25519":
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes_raw()
        public = private.public_key().public_bytes_raw()
        return (
            f"{kid}:ed25519:{b64url_encode(seed)}",
            f"{kid}:ed25519-pub:{b64url_encode(public)}",
        )
    raise ConfigError(f"unknown alg {alg!r}, expected hs256 or ed25519")

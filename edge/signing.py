"""Sign and verify v1 URLs: ``sig = alg(key, "v1" LF path LF exp [LF transform])``.

Verification follows the spec's order exactly: transform parameters first (a
malformed or repeated one is a bad request, signed or not); then no signature
parameter means unsigned; malformed, duplicated or unknown ones are invalid; the
signature must match a candidate key (constant time); only then are expiry and
max TTL judged. A URL with transform parameters signs them too
(:mod:`edge.transform_params`), so a signature grants exactly the transform it
names, and one without grants the stored object only. The clock is injectable so
tests and ``edge verify --now`` pin time.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from edge.errors import BadRequest, EdgeError, SignatureExpired, SignatureInvalid
from edge.keys import KID, Key, Keyring, b64url_encode
from edge.memo import MEMO_SIZE, Memo
from edge.paths import quote_path, request_path, validate_path
from edge.transform_params import (
    TRANSFORM_NAMES,
    Transform,
    parse_transform,
    split_params,
    transform_from_pairs,
    transform_of,
)

MAX_EXP_DIGITS = 12
#: The largest ``exp`` a URL can carry: 12 digits.
MAX_EXP = 10**MAX_EXP_DIGITS - 1
_SIG_TEXT = re.compile(rb"[A-Za-z0-9_\-]*")
# The form every signer emits for a URL without transforms; anything else (transform
# parameters, other order, escapes, extra or repeated parameters) takes the general scan,
# which implements the full rules.
_CANONICAL = re.compile(rb"sig=([^&%]*)&exp=([^&%]*)(?:&kid=([^&%]*))?")
_KID_TEXT = re.compile(rb"[A-Za-z0-9_\-]{1,32}")

Clock = Callable[[], float]


class Grant(NamedTuple):
    """What a genuine, unexpired signature grants: the key that made it and its expiry.
    Built once per URL verified (a URL asked again reuses its remembered grant)."""

    kid: str
    exp: int


def _cost(path: str, query: bytes) -> int:
    """Bytes a memo entry for ``(path, query)`` holds: the key, its tuple, a small value
    (a grant or a refusal's reason, both under 200 bytes)."""
    return sys.getsizeof(path) + sys.getsizeof(query) + 56 + 200


def string_to_sign(path: str, exp: str, transform: str = "") -> bytes:
    """The exact bytes every signer signs, for the decoded path, ``exp`` as written and the
    transform string (``Transform.canonical()``; empty when the URL has no transform)."""
    signed = b"v1\n%s\n%s" % (path.encode("utf-8"), exp.encode("ascii"))
    return signed + b"\n" + transform.encode("ascii") if transform else signed


#: What :func:`sign_url` takes as a transform: see there.
TransformSpec = Transform | str | Iterable[tuple[str, str | int]]


def align_exp(exp: int, seconds: int | None) -> int:
    """``exp`` rounded up to the next multiple of ``seconds`` (one already a multiple stays),
    so that URLs minted within one window of ``seconds`` are identical and browsers cache
    them; ``None`` or ``0`` leaves ``exp`` as given. The URL may live up to ``seconds - 1``
    seconds longer than asked. Raises ValueError for an ``exp`` or ``seconds`` that is not
    a whole number of the contract's range, or an aligned ``exp`` of more than 12 digits."""
    _check_exp(exp)
    if seconds is None or seconds == 0:
        return exp
    if type(seconds) is not int or seconds < 0:
        raise ValueError(f"align must be a whole number of seconds, 0 or more, not {seconds!r}")
    aligned = -(-exp // seconds) * seconds
    if aligned > MAX_EXP:
        raise ValueError(f"exp aligned to {seconds} s is {aligned}, beyond {MAX_EXP} (12 digits)")
    return aligned


def _check_exp(exp: object) -> None:
    # type() rather than isinstance(): True and 1.0 would be written "True" and "1.0".
    if type(exp) is not int or not 0 <= exp <= MAX_EXP:
        raise ValueError(f"exp must be a whole number of seconds from 0 to {MAX_EXP}, not {exp!r}")


def sign_url(
    path: str,
    *,
    key: Key,
    exp: int,
    include_kid: bool = False,
    transform: TransformSpec | None = None,
    align: int | None = None,
) -> str:
    """The path-and-query of a v1 signed URL for a decoded ``/i/...`` path.

    ``transform`` holds the transform parameters, written into the URL in the order
    given: ``(name, value)`` pairs (``[("w", "800"), ("fit", "cover")]``, a dict's
    ``items()``; a preset is ``("p:thumb", "")``), the same as text
    (``"w=800&fit=cover"``, what ``edge sign --transform`` takes), or a
    :class:`Transform` (then in name order). Values must be canonical: a malformed one,
    a repeated one, or a name outside the table raises :class:`BadRequest` naming it.

    ``align`` rounds ``exp`` up to a multiple of that many seconds (:func:`align_exp`).
    Whatever the edge would refuse is refused here, before anything is signed: a path
    breaking the contract's rules (:class:`BadRequest`), an ``exp`` that is not a whole
    number from 0 to 999999999999 and a ``kid`` outside the keyring's alphabet, when
    ``include_kid`` puts it in the URL (ValueError).
    """
    validate_path(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("path holds a lone surrogate: it is not valid Unicode") from None
    exp = align_exp(exp, align)
    if include_kid and not KID.fullmatch(key.kid):
        raise ValueError(f"kid must be 1 to 32 characters of A-Z a-z 0-9 _ -, not {key.kid!r}")
    if transform is None:
        pairs: list[tuple[str, str | int]] = []
    elif isinstance(transform, Transform):
        pairs = [*transform.params()]
    elif isinstance(transform, str):
        pairs = [*split_params(transform)]
    else:
        pairs = list(transform)
    parsed = transform_from_pairs(pairs)  # checks every pair: names, values, repeats
    signed = "" if parsed is None else parsed.canonical()
    sig = b64url_encode(key.sign(string_to_sign(path, str(exp), signed)))
    # Canonical values and preset names need no escaping; a preset has no "=".
    params = "".join(f"{name}&" if value == "" else f"{name}={value}&" for name, value in pairs)
    url = f"{quote_path(path)}?{params}sig={sig}&exp={exp}"
    return f"{url}&kid={key.kid}" if include_kid else url


#: Queries longer than this are checked every time, never remembered: a signed query is
#: about 100 bytes, and anyone may append parameters (or forge a signature) to make
#: one as long as the server accepts, which would make the memos hold megabytes each.
MEMO_QUERY_BYTES = 512


class Verifier:
    """Judges the signature parameters of a request for an already validated path."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        max_ttl: int,
        leeway: int = 0,
        clock: Clock = time.time,
        memo_size: int = MEMO_SIZE,
    ) -> None:
        self.keyring = keyring
        self.max_ttl = max_ttl
        self.leeway = leeway
        self.clock = clock
        # Genuine signatures already checked, by exact (path, query): a URL requested again
        # (a page's image fetched by many, retries) skips the HMAC; its time is judged anew.
        # The keyring never changes in a process, so a signature stays genuine.
        self.memo_size = memo_size
        self._memo: Memo[tuple[str, bytes], Grant] = Memo(max_entries=memo_size or 1)
        # Signatures that matched no key, apart so they can never evict genuine ones: a
        # stale URL (signed with a retired key, or altered) asked again by every visitor of
        # a page costs a dict lookup, not an HMAC per candidate key.
        # The value is the refusal's (reason, slug): SignatureInvalid's arguments.
        self._refused: Memo[tuple[str, bytes], tuple[str, str]] = Memo(max_entries=memo_size or 1)
        # Queries with no sig, exp or kid and sound transform parameters (``w=400``): their
        # verdict, unsigned, is the query's alone, whatever the path. Keyed by the exact
        # query, so no signed or differently signed query can land on one. A cached
        # variant's hit otherwise split and parsed its query here every time.
        self._unsigned: Memo[bytes, bool] = Memo(max_entries=memo_size or 1)
        self._keys_by_length: dict[int, tuple[Key, ...]] = {
            n: tuple(k for k in keyring if k.sig_chars == n) for n in (43, 86)
        }

    def verify(self, path: str, query: bytes) -> Grant | None:
        """``None`` for an unsigned request, a :class:`Grant` for a valid one; else raise
        (:class:`BadRequest` for a malformed or repeated transform parameter, signed or not;
        a signature error otherwise)."""
        if not query:
            return None
        known = self._memo.get((path, query))
        if known is not None:
            expires = known.exp
            now = self.clock()
            if now < expires + self.leeway and (not self.max_ttl or expires - now <= self.max_ttl):
                return known  # _judge_time's test, inline: this is the repeated signed hit
            self._judge_time(known.kid, expires)
        if query in self._unsigned:
            return None
        refused = self._refused.get((path, query))
        if refused is not None:
            raise SignatureInvalid(*refused)
        try:
            grant = self._check(path, query)
        except _NoMatch as error:
            if self.memo_size and len(query) <= MEMO_QUERY_BYTES:
                self._refused.remember(
                    (path, query), (error.reason, error.slug), _cost(path, query)
                )
            raise SignatureInvalid(error.reason, slug=error.slug) from None
        if grant is None:
            if self.memo_size and len(query) <= MEMO_QUERY_BYTES:
                self._unsigned.remember(query, True, sys.getsizeof(query) + 28)
            return None
        # Remembered before time is judged: an expired URL asked again is refused without
        # another HMAC.
        if self.memo_size and len(query) <= MEMO_QUERY_BYTES:
            self._memo.remember((path, query), grant, _cost(path, query))
        self._judge_time(grant.kid, grant.exp)
        return grant

    def _check(self, path: str, query: bytes) -> Grant | None:
        canonical = _CANONICAL.fullmatch(query)
        transform = None  # the canonical form holds sig, exp and kid only
        if canonical is not None:
            sig, exp, kid = canonical.groups()
        else:
            sig, exp, kid, repeated, params = _scan(query)
            # Judged before the signature, signed or not: a malformed or repeated transform
            # parameter is a bad request (400), never remembered (no HMAC was spent on it).
            transform = transform_of(params) if params else None
            if repeated is not None:
                raise SignatureInvalid(
                    f"{repeated.decode()} is given more than once", slug="param_repeated"
                )
            if sig is None and exp is None and kid is None:
                return None
        if sig is None or exp is None:
            raise SignatureInvalid(
                "sig and exp must both be given",
                slug="sig_missing" if sig is None else "exp_missing",
            )
        # bytes.isdigit() is true for ASCII digits only, as the spec wants.
        if not (exp.isdigit() and len(exp) <= MAX_EXP_DIGITS and (exp[0] != 0x30 or exp == b"0")):
            raise SignatureInvalid(
                "exp is not a canonical decimal of at most 12 digits", slug="exp_malformed"
            )
        if kid is None:
            candidates = self._keys_by_length.get(len(sig), ())
        else:
            key = self.keyring.by_kid.get(kid.decode("latin-1"))
            if key is None:
                if not _KID_TEXT.fullmatch(kid):
                    raise SignatureInvalid(
                        "kid is malformed: 1 to 32 of A-Z a-z 0-9 _ -", slug="kid_malformed"
                    )
                raise SignatureInvalid("kid names no key in the keyring", slug="kid_unknown")
            candidates = (key,) if key.sig_chars == len(sig) else ()
        message = b"v1\n%s\n%s" % (path.encode("utf-8"), exp)
        if transform is not None:  # the memo stays sound: it is keyed by the exact query
            message += b"\n" + transform.canonical().encode("ascii")
        for key in candidates:
            if key.verify(message, sig):
                break
        else:
            raise self._no_match(sig)
        return Grant(key.kid, int(exp))  # genuine; the caller judges its time

    def _judge_time(self, kid: str, expires: int) -> None:
        now = self.clock()
        if now >= expires + self.leeway:
            raise SignatureExpired(exp=expires, now=now, kid=kid)
        if self.max_ttl and expires - now > self.max_ttl:
            raise SignatureInvalid(
                f"exp is {int(expires - now)} s ahead, beyond the max TTL of {self.max_ttl} s",
                slug="exp_beyond_max_ttl",
            )

    def _no_match(self, sig: bytes) -> _NoMatch:
        """Only on the failure path: tell a malformed sig from a wrong one, for logs. (A kid
        here named a key: a malformed one names none.)"""
        if len(sig) not in (43, 86) or not _SIG_TEXT.fullmatch(sig):
            return _NoMatch(
                "sig is not 43 or 86 base64url characters without padding", slug="sig_malformed"
            )
        if not self.keyring:
            return _NoMatch("no signing keys are configured", slug="no_keys")
        return _NoMatch("signature matches no candidate key", slug="no_key_matched")


class _NoMatch(Exception):
    """A signature that no candidate key made: the same answer every time."""

    def __init__(self, reason: str, *, slug: str) -> None:
        self.reason = reason
        self.slug = slug


def _scan(
    query: bytes,
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None, list[tuple[bytes, bytes]]]:
    """The general rules: only ``&`` separates, names and values are percent-decoded,
    other parameters are ignored, and a repeated sig, exp or kid is invalid.

    Gives sig, exp, kid, the first of them given twice (refused by the caller once the
    transform parameters are judged, which come first), and the transform parameters
    (name decoded, value as sent) for :func:`transform_of`: one split of the query.
    """
    found: dict[bytes, bytes] = {}
    repeated = None
    params = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if b"%" in name:
            name = unquote_to_bytes(name)
        if name in _SIGNED_NAMES:
            if name not in found:
                found[name] = unquote_to_bytes(value) if b"%" in value else value
            elif repeated is None:
                repeated = name
        elif name in _TRANSFORM_NAMES or name[:2] == b"p:":  # p:NAME is a preset
            params.append((name, value))
    return found.get(b"sig"), found.get(b"exp"), found.get(b"kid"), repeated, params


_SIGNED_NAMES = frozenset((b"sig", b"exp", b"kid"))
_TRANSFORM_NAMES = frozenset(name.encode() for name in TRANSFORM_NAMES)


class Outcome(NamedTuple):
    """A verdict on a whole URL, as ``edge verify`` prints it."""

    result: str  # VALID, UNSIGNED, SIGNATURE_INVALID, SIGNATURE_EXPIRED or BAD_REQUEST
    explanation: str
    grant: Grant | None = None


def check_url(url: str, verifier: Verifier) -> Outcome:
    """Judge a URL (absolute, or path and query) as the edge would, without storage."""
    if "://" in url:
        url = "/" + url.split("://", 1)[1].partition("/")[2]
    url = url.partition("#")[0]
    raw_path, _, text = url.partition("?")
    query = text.encode("utf-8")
    try:
        path = request_path(raw_path.encode("utf-8"))
    except BadRequest as error:
        return Outcome(error.code, f"malformed path: {error.reason}")
    try:
        transform = parse_transform(query)
    except BadRequest as error:
        return Outcome(error.code, error.reason)  # the reason names the parameter
    # What the signature covers besides path and exp: the transform string, or nothing.
    covers = "no transform" if transform is None else f"transform {transform.canonical()}"
    try:
        grant = verifier.verify(path, query)
    except EdgeError as error:
        return Outcome(error.code, f"{error.reason}; {covers}")
    if grant is None:
        return Outcome("UNSIGNED", f"no signature: {path} can reach public images only; {covers}")
    kid, exp = grant
    left = exp - int(verifier.clock())
    grants = "the stored object only" if transform is None else covers
    return Outcome(
        "VALID", f"signed by key {kid!r}, expires at {exp} (in {left} s), for {grants}", grant
    )

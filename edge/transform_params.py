"""Transform parameters of the URL contract (``w``, ``h``, ``fit``, ... and ``p:NAME``
presets), as pure functions shared by the signer, the verifier and the transform step.

The contract accepts only canonical values and never normalises (``w=0800``,
``fit=Cover``, ``dpr=2.0`` are malformed), so a parsed value turns back into
exactly the text that was signed: the transform string is rebuilt from the typed
value rather than kept. Most requests carry no transform parameter at all;
:func:`parse_transform` answers those after one regex search, without splitting
the query.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import unquote_to_bytes

from edge.errors import BadTransform
from edge.memo import Memo

Fit = Literal["cover", "contain", "fill", "scale-down"]
Aspect = Literal["original", "1:1", "4:3", "16:9", "3:2", "21:9"]
Crop = Literal[
    "center",
    "top",
    "bottom",
    "left",
    "right",
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "attention",
    "entropy",
]
Rotate = Literal[0, 90, 180, 270, "auto"]
Flip = Literal["h", "v", "both"]


class Transform(NamedTuple):
    """The transform parameters a URL gives, typed; ``None`` where it does not give one.

    Absent is kept apart from a default because both are signed as written
    (``?w=800`` and ``?w=800&q=80`` are two URLs, two signatures) and because a
    preset's members fill only what the URL leaves out. :meth:`effective` fills
    the defaults. A tuple, not a dataclass: built on every transform request, and a
    NamedTuple is built several times faster than a frozen dataclass.
    """

    w: int | None = None
    h: int | None = None
    fit: Fit | None = None
    aspect: Aspect | None = None
    q: int | None = None
    dpr: float | None = None  # 1.0, 1.5, 2.0 or 3.0
    crop: Crop | None = None
    grayscale: bool | None = None
    blur: int | None = None
    sharpen: int | None = None
    rotate: Rotate | None = None
    flip: Flip | None = None
    preset: str | None = None  # NAME of p:NAME

    def params(self) -> list[tuple[str, str]]:
        """Every parameter given as ``(name, canonical value)``, sorted by name in byte
        order; a preset is ``("p:NAME", "")``. (A value outside the table, which only a
        Transform built by hand can hold, raises KeyError.)"""
        return [write(value) for index, write in _NAME_ORDER if (value := self[index]) is not None]

    def canonical(self) -> str:
        """The transform string that is signed: ``name=value`` (a preset as ``p:NAME``)
        joined by ``&`` in name order, e.g. ``fit=cover&h=600&w=800``."""
        return "&".join([f"{name}={value}" if value else name for name, value in self.params()])

    def effective(self) -> Transform:
        """The transform as rendered: the spec's defaults filled in, ``rotate=auto`` as 0.

        So ``?w=800``, ``?w=800&q=80`` and ``?w=800&blur=0&rotate=auto`` have one
        effective transform. With a preset nothing is filled: the preset supplies what
        the URL leaves out (``p:x&blur=0`` unblurs a preset that blurs, so it is not
        ``p:x``); resolve it first with :meth:`over`. Not merged, on purpose: parameters
        the geometry makes irrelevant (``fit`` without both ``w`` and ``h``, ``aspect``
        with both, ``crop`` outside ``cover``) and ``q`` for PNG and GIF output, which
        depend on the engine's reading and the output format; a missed merge costs a
        cache miss, a wrong one would serve one transform's output for another.
        """
        filled = self._replace(rotate=0) if self.rotate == "auto" else self
        return filled if self.preset is not None else filled.over(DEFAULTS)

    def effective_key(self) -> str:
        """A cache key for this transform's output: the canonical string of :meth:`effective`.

        ``?w=800`` gives ``aspect=original&blur=0&crop=center&dpr=1&fit=cover``
        ``&grayscale=false&q=80&rotate=0&sharpen=0&w=800``: every parameter, defaults
        included, and with an unresolved preset its ``p:NAME`` and only what the URL
        gives (valid while that preset's file is unchanged). It names neither source nor
        output format: key the cache by the requested path too. A URL without any
        transform parameter has no key (:func:`parse_transform` gives ``None``): it is
        answered with the stored bytes, while ``?q=80`` re-encodes."""
        return self.effective().canonical()

    def over(self, preset: Transform) -> Transform:
        """This URL's parameters laid over a preset's members (the URL wins), preset name
        dropped: the transform to render for ``p:NAME``."""
        merged = [
            mine if mine is not None else theirs for mine, theirs in zip(self, preset, strict=True)
        ]
        return Transform._make([*merged[:_PRESET], None])


#: The spec's defaults, and the values it calls none (blur and sharpen 0, rotate 0): what
#: an absent parameter means when no preset supplies it. ``dpr=1`` and ``aspect=original``
#: are what their absence means (output pixels are ``w`` times ``dpr``; the output keeps
#: the source's ratio), and ``grayscale=false`` changes nothing.
DEFAULTS = Transform(
    fit="cover",
    aspect="original",
    q=80,
    dpr=1.0,
    crop="center",
    grayscale=False,
    blur=0,
    sharpen=0,
    rotate=0,
)


class _Rule(NamedTuple):
    """How one parameter's canonical text becomes its typed value, and back."""

    name: str
    values: Mapping[bytes, Any] | None  # enumerated values: canonical text -> typed value
    low: int = 0  # integer range, when values is None
    high: int = 0

    @property
    def expected(self) -> str:
        if self.values is None:
            return f"an integer from {self.low} to {self.high}, no sign or leading zero"
        return "one of " + ", ".join(text.decode() for text in self.values)


def _words(kind: Any) -> dict[bytes, Any]:
    return {str(value).encode(): value for value in get_args(kind)}


def _writer(rule: _Rule) -> Callable[[Any], tuple[str, str]]:
    if rule.values is None:
        return lambda value: (rule.name, str(value))
    texts = {typed: text.decode() for text, typed in rule.values.items()}
    return lambda value: (rule.name, texts[value])


_RULE_LIST = (  # in Transform's field order
    _Rule("w", None, 1, 10_000),
    _Rule("h", None, 1, 10_000),
    _Rule("fit", _words(Fit)),
    _Rule("aspect", _words(Aspect)),
    _Rule("q", None, 1, 100),
    _Rule("dpr", {b"1": 1.0, b"1.5": 1.5, b"2": 2.0, b"3": 3.0}),
    _Rule("crop", _words(Crop)),
    _Rule("grayscale", {b"true": True, b"false": False}),
    _Rule("blur", None, 0, 100),
    _Rule("sharpen", None, 0, 100),
    _Rule("rotate", _words(Rotate)),
    _Rule("flip", _words(Flip)),
)
#: Name -> (field index, rule).
_RULES: dict[bytes, tuple[int, _Rule]] = {
    rule.name.encode(): (index, rule) for index, rule in enumerate(_RULE_LIST)
}
_PRESET = len(_RULE_LIST)
#: (field index, how its typed value is written as (name, canonical text)), in name order:
#: the transform string is written without sorting. Any ``p:NAME`` sorts between ``h`` and
#: ``q``, as no other name starts with ``p``.
_NAME_ORDER: tuple[tuple[int, Callable[[Any], tuple[str, str]]], ...] = tuple(
    (index, write)
    for _, index, write in sorted(
        [
            *((rule.name, index, _writer(rule)) for index, rule in enumerate(_RULE_LIST)),
            ("p:", _PRESET, lambda name: (f"p:{name}", "")),
        ]
    )
)
#: Every transform parameter's name; a preset's is ``p:`` followed by its NAME.
TRANSFORM_NAMES = frozenset(rule.name for rule in _RULE_LIST)
PRESET_NAME = re.compile(rb"[A-Za-z0-9_\-]{1,64}")
_MAX_DIGITS = 5  # 10000: longer digit strings are out of range, and never reach int()

# A part whose name is, or may decode to, a transform parameter's: after an "&" (one is put
# before the query), a name of the table (loosely: "width" matches too) or one holding a
# "%". A query with none ("sig=..&exp=..", "v=3") has no transform parameter. The leading
# literal "&" lets the regex engine skip to each "&" instead of trying every position:
# twice as fast on a signed query as "(?:^|&)...".
_MAYBE = re.compile(
    rb"&(?:[whq]|fit|aspect|dpr|crop|grayscale|blur|sharpen|rotate|flip|p:|[^&=]*%)"
)


def parse_transform(query: bytes) -> Transform | None:
    """The transform parameters of a raw query string, or ``None`` if it has none.

    Names and values are percent-decoded (only ``&`` separates; ``+`` is a plus),
    names are case-sensitive, values must be canonical. Raises :class:`BadRequest`,
    naming the parameter, for a malformed value, a parameter given twice or more than
    one preset. Other parameters (``sig``, ``exp``, ``kid``, ``v=3``) are ignored.
    """
    if not query or _MAYBE.search(b"&" + query) is None:
        return None
    params = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if b"%" in name:
            name = unquote_to_bytes(name)
        if name in _RULES or name[:2] == b"p:":
            params.append((name, value))
    return transform_of(params)


#: Longer raw queries are parsed every time, never remembered (free to pad: they would
#: crowd the memo).
TRANSFORM_MEMO_KEY_BYTES = 512


class ParsedTransforms:
    """:func:`parse_transform`, remembered per raw query: a page asks for the same few
    sizes again and again, and parsing was the largest part of edge's own work on a cached
    variant's hit (bench/README.md, "Transforms under load").

    Keyed by exactly what the parse reads, the raw query bytes; the value is the typed
    transform and nothing else, so a signature (checked by the verifier, apart) never
    rides along: ``w=400``, ``w=400&exp=..&sig=..`` and a forged sig are three entries
    with one equal value. A query without a transform parameter (one regex search) and a
    malformed one (raised every time) are not kept.
    """

    __slots__ = ("parsed",)

    def __init__(self) -> None:
        self.parsed: Memo[bytes, Transform] = Memo()

    def parse(self, query: bytes) -> Transform | None:
        known = self.parsed.get(query)
        if known is not None:
            return known
        transform = parse_transform(query)
        if transform is not None and len(query) <= TRANSFORM_MEMO_KEY_BYTES:
            self.parsed.remember(query, transform, sys.getsizeof(query) + sys.getsizeof(transform))
        return transform


def transform_of(params: Sequence[tuple[bytes, bytes]]) -> Transform | None:
    """The transform of a query's transform parameters once picked out of it (names
    percent-decoded, values as sent), or ``None`` for none: :func:`parse_transform`
    after its split, for a caller that splits the query anyway (the verifier). Every
    name must be a transform parameter's (:data:`TRANSFORM_NAMES`, or ``p:`` and more)."""
    if not params:
        return None
    values: list[Any] = [None] * (_PRESET + 1)
    for name, value in params:
        _take(values, name, unquote_to_bytes(value) if b"%" in value else value)
    return Transform._make(values)


def transform_from_pairs(pairs: Iterable[tuple[str, str | int]]) -> Transform | None:
    """A signer's transform, from ``(name, canonical value)`` pairs as they will appear in
    the URL (no percent-decoding), or ``None`` for none. Stricter than a request: a name
    outside the table is refused, since the edge would ignore it and leave it unsigned."""
    values: list[Any] = [None] * (_PRESET + 1)
    found = False
    for name, value in pairs:
        raw = name.encode("utf-8")
        if raw not in _RULES and raw[:2] != b"p:":
            raise BadTransform(
                f"{_show(raw)} is not a transform parameter", slug="transform_malformed"
            )
        _take(values, raw, str(value).encode("utf-8"))
        found = True
    return Transform._make(values) if found else None


def split_params(text: str) -> list[tuple[str, str]]:
    """``"w=800&h=600&fit=cover"`` as pairs, in order: the command line's form. A part
    without ``=`` has an empty value (``p:thumb``)."""
    if not text:
        return []
    return [(name, value) for name, _, value in (part.partition("=") for part in text.split("&"))]


def _take(values: list[Any], name: bytes, value: bytes) -> None:
    """Check one transform parameter and put its typed value in place."""
    entry = _RULES.get(name)
    if entry is None:  # a preset
        given = values[_PRESET]
        preset = name[2:]
        if not PRESET_NAME.fullmatch(preset):
            raise BadTransform(
                f"preset {_show(name)}: NAME must be 1 to 64 of A-Z a-z 0-9 _ - after 'p:'",
                slug="preset_name_malformed",
            )
        if value:
            raise BadTransform(
                f"preset {_show(name)} takes no value, got {_show(value)}", slug="preset_with_value"
            )
        if given is not None:
            raise BadTransform(
                f"more than one preset: {_show(b'p:' + given.encode())} and {_show(name)}",
                slug="preset_repeated",
            )
        values[_PRESET] = preset.decode("ascii")
        return
    index, rule = entry
    if values[index] is not None:
        raise BadTransform(
            f"transform parameter {rule.name} is given more than once", slug="transform_repeated"
        )
    if rule.values is not None:
        typed = rule.values.get(value)
    elif (
        value.isdigit()  # ASCII digits only, for bytes
        and len(value) <= _MAX_DIGITS
        and (value[0] != 0x30 or value == b"0")
    ):
        typed = int(value)
        if not rule.low <= typed <= rule.high:
            typed = None
    else:
        typed = None
    if typed is None:
        raise BadTransform(
            f"transform parameter {rule.name}={_show(value)} is malformed:"
            f" expected {rule.expected}",
            slug="transform_malformed",
        )
    values[index] = typed


def _show(raw: bytes) -> str:
    """A name or value for a reason (logs, ``edge verify``): readable, and short whatever
    a client sent."""
    text = raw[:40].decode("utf-8", "backslashreplace")
    return repr(text + "…" if len(raw) > 40 else text)

"""Variant keys: where a requested variant is kept in the hot cache, and in what format.

A variant is cached under its folder, the requested path and its effective
transform (``public/alice/photo.jpg`` LF ``aspect=original&...&w=400``), and its
output format is the path's extension. Working these out on every hit (the
extension split, the transform's key found, a 120-character key string built
and hashed anew) was most of what a cached variant's hit cost over a plain hit
(bench/README.md, "Transforms under load"), so they are remembered per request:
by the validated path and the raw query, exactly what they are made of (the
parser's transform is the raw query's, :class:`edge.transform_params.ParsedTransforms`).
The same key strings then serve every later hit, their hashes kept by Python.

No verdict rides along: a :class:`VariantKeys` names both folders' keys, and which
of them a request may read is the caller's choice, on every request, from that
request's own grant (an unsigned request reads :attr:`VariantKeys.public` alone).
A signed and an unsigned request for one variant share an entry; a forged or
expired signature was refused before any lookup.
"""

from __future__ import annotations

import posixpath
import sys

from edge.image.request import PATH_MEMO_KEY_BYTES
from edge.memo import Memo
from edge.transform import FORMATS, OutputFormat
from edge.transform_params import TRANSFORM_MEMO_KEY_BYTES, Transform

#: What a conversion without parameters renders: the defaults (``photo.webp``, q=80).
CONVERSION = Transform()


class VariantKeys:
    """One request's variant: its format, the transform asked, its two possible keys."""

    __slots__ = ("asked", "output", "private", "public")

    def __init__(self, output: OutputFormat, asked: Transform, rest: str, wanted: str) -> None:
        self.output = output
        self.asked = asked  # as the URL gives it: presets unresolved
        self.private = f"private/{rest}\n{wanted}"  # read first under a grant
        self.public = f"public/{rest}\n{wanted}"  # the only one an unsigned request reads


class VariantKeyMemo:
    """(path, raw query) -> :class:`VariantKeys`; transform -> its effective key, apart,
    so a new path asked at a known size costs one string join. Both bounded in entries
    and in bytes, keys included (:mod:`edge.memo`)."""

    __slots__ = ("keys", "requests")

    def __init__(self) -> None:
        self.requests: Memo[tuple[str, bytes], VariantKeys] = Memo()
        #: Transform -> its effective key. Building the key (defaults filled, every
        #: parameter written out) was most of a cached variant's hit before the memo above.
        self.keys: Memo[Transform, str] = Memo()

    def of(self, path: str, query: bytes, transform: Transform | None) -> VariantKeys | None:
        """The variant keys of a validated ``path`` asked with ``query``, whose parsed
        transform is ``transform`` (None: a conversion); None when the extension names no
        output format."""
        known = self.requests.get((path, query))
        if known is not None:
            return known
        output = output_of(path)
        if output is None:
            return None
        asked = transform or CONVERSION
        wanted = self.keys.get(asked)
        if wanted is None:
            wanted = asked.effective_key()
            self.keys.remember(asked, wanted, sys.getsizeof(asked) + sys.getsizeof(wanted))
        found = VariantKeys(output, asked, path[3:], wanted)  # path[3:]: "{user}/{file}"
        if len(query) <= TRANSFORM_MEMO_KEY_BYTES and len(path) <= PATH_MEMO_KEY_BYTES:
            key = (path, query)
            self.requests.remember(key, found, held(key, found))
        return found


def output_of(path: str) -> OutputFormat | None:
    """The output format a path's extension names, if any."""
    return FORMATS.get(posixpath.splitext(path)[1].lower())  # photo.JPG is a JPEG too


def held(key: tuple[str, bytes], found: VariantKeys) -> int:
    """Bytes a remembered request holds: its key (tuple, path, query) and its value (the
    object, its two key strings, and the transform it may keep alive)."""
    parts = (key, *key, found, found.private, found.public, found.asked)
    return sum(map(sys.getsizeof, parts))

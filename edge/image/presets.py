"""Presets: named transforms stored beside the images, ``presets/{user}/{NAME}.json``.

The API service writes them; the edge only reads them, one storage read per
preset and TTL (``EDGE_CACHE_TTL``), kept parsed. ``?p:thumb&q=90`` is the
preset's parameters with the URL's laid over them (the URL wins).

A preset file is a JSON object of transform parameters with their canonical
values (numbers may be JSON numbers, ``grayscale`` a JSON boolean). A missing
preset, and a file that is not such an object (unknown member, malformed value,
a preset inside a preset, over :data:`PRESET_MAX_BYTES`), are both
``400 BAD_REQUEST`` for the URL naming it; for a malformed file the log says
what is wrong with it, so whoever wrote it can mend it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from edge.errors import BadRequest, BadTransform, NotFound, UnprocessableImage
from edge.image.read import Reader
from edge.memo import Memo
from edge.record import Record
from edge.transform_params import Transform, transform_from_pairs

log = logging.getLogger("edge")

#: A preset is a dozen parameters at most: a larger file is malformed, never read whole.
PRESET_MAX_BYTES = 4096
#: Kept parsed at most this many at once (a flood of distinct unknown names only refills).
PRESETS_KEPT = 1024


class Presets:
    """Reads, checks and keeps presets for their TTL."""

    def __init__(
        self, *, reader: Reader, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reader = reader
        self.ttl = ttl
        self.clock = clock
        # storage key -> (expires, the preset's transform, or why it is refused)
        self._kept: Memo[str, tuple[float, Transform | Refusal]] = Memo(max_entries=PRESETS_KEPT)

    async def resolve(self, user: str, asked: Transform, record: Record) -> Transform:
        """``asked`` laid over the preset it names (``asked.preset`` is not None)."""
        name = asked.preset
        key = f"presets/{user}/{name}.json"
        kept = self._kept.get(key)
        if kept is None or kept[0] <= self.clock():
            preset = await self._read(key, f"p:{name}", record)
            expires = self.clock() + self.ttl
            kept = self._kept.remember(key, (expires, preset), sys.getsizeof(key) + 400)
        preset = kept[1]
        if isinstance(preset, Refusal):
            raise BadTransform(preset.reason, slug=preset.slug)
        return asked.over(preset)

    async def _read(self, key: str, name: str, record: Record) -> Transform | Refusal:
        try:
            _, data = await self.reader.whole(key, record, PRESET_MAX_BYTES)
        except NotFound:
            return Refusal(f"unknown preset {name}", slug="preset_unknown")
        except UnprocessableImage as too_large:
            log.warning("preset %s is malformed: %s", key[:300], too_large.reason)
            return Refusal(f"preset {name} is malformed", slug="preset_malformed")
        try:
            return parse_preset(data)
        except (ValueError, RecursionError, BadRequest) as error:
            why = error.reason if isinstance(error, BadRequest) else str(error)
            log.warning("preset %s is malformed: %s", key[:300], why[:300])
            return Refusal(f"preset {name} is malformed", slug="preset_malformed")


class Refusal(NamedTuple):
    """Why a preset is refused (a ``400``), kept for its TTL like a good preset."""

    reason: str
    slug: str


def parse_preset(data: bytes) -> Transform:
    """A preset file's transform: raises ValueError or BadRequest saying what is wrong."""
    members = json.loads(data)
    if not isinstance(members, dict):
        raise ValueError("not a JSON object")
    pairs = []
    for name, value in members.items():
        if name.startswith("p:"):
            raise ValueError(f"{name[:70]!r}: a preset cannot name another preset")
        pairs.append((name, _canonical(name, value)))
    transform = transform_from_pairs(pairs)
    if transform is None:
        raise ValueError("no transform parameter")
    return transform


def _canonical(name: str, value: object) -> str:
    """A JSON member's value as the URL would write it: ``2`` and ``2.0`` are ``2``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"{name[:70]!r}: expected a string or a number")

"""Damaged images for fuzzing the decoders: small valid JPEG, PNG, GIF, WebP and AVIF files
made with pyvips, and hypothesis strategies that break them the ways files get broken
and the ways an attacker breaks them.

A mutation is one of: bits flipped, bytes overwritten with edge values, the file cut
short, a slice copied elsewhere or removed, one of the format's own units (a PNG chunk, a
JPEG segment, a GIF block, a RIFF chunk, an ISOBMFF box) repeated, dropped or swapped,
and a header's width or height set to an edge value (0, 1, 65535, 2^31 - 1...). PNG's
chunk checksums are then made right again half of the time, so the damage reaches the
decoder instead of stopping at the checksum.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from typing import Literal

import pyvips
from hypothesis import strategies as st

from tests.support.transform_images import animation, encoded, flat, quadrants

FORMATS = ("jpeg", "png", "gif", "webp", "avif")
Span = tuple[int, int]  # start, end of a unit of the file
#: A width or height field: offset, bytes, byte order ("big", "little").
Field = tuple[int, int, Literal["big", "little"]]
EDGES = (0, 1, 2, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


@functools.cache
def seeds() -> dict[str, list[bytes]]:
    """Small valid files per format (a few hundred bytes each): baseline and progressive
    JPEG, RGBA and palette PNG, an animated GIF, animated lossy and still lossless WebP,
    AVIF with and without alpha."""
    still = quadrants(24, 16)
    alpha = still.bandjoin(flat((200,), 24, 16))
    frames = animation([quadrants(16, 12), quadrants(16, 12).flip("horizontal")], [50, 50])
    return {
        "jpeg": [encoded(still, "jpeg", Q=70), encoded(still, "jpeg", Q=70, interlace=True)],
        "png": [encoded(alpha, "png"), encoded(still, "png", palette=True)],
        "gif": [encoded(frames, "gif")],
        "webp": [encoded(frames, "webp", Q=60), encoded(alpha, "webp", lossless=True)],
        "avif": [encoded(still, "avif", Q=40), encoded(alpha, "avif", Q=40)],
    }


def units(fmt: str, data: bytes) -> list[Span]:
    """The format's own units of ``data``, as far as they can be read."""
    finders: dict[str, Callable[[bytes], list[Span]]] = {
        "png": _png_chunks,
        "jpeg": _jpeg_segments,
        "gif": _gif_blocks,
        "webp": _riff_chunks,
        "avif": _boxes,
    }
    try:
        return finders[fmt](data)
    except (IndexError, struct.error, ValueError):
        return []


def _png_chunks(data: bytes) -> list[Span]:
    spans, at = [], 8
    while at + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        end = min(len(data), at + 12 + length)
        spans.append((at, end))
        at = end
    return spans


def _jpeg_segments(data: bytes) -> list[Span]:
    spans, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        (length,) = struct.unpack_from(">H", data, at + 2)
        end = min(len(data), at + 2 + length)
        if marker == 0xDA:  # start of scan: the entropy-coded data runs to the next marker
            end = data.find(b"\xff\xd9", end)
            end = len(data) if end < 0 else end
        spans.append((at, end))
        at = end
    return spans


def _gif_blocks(data: bytes) -> list[Span]:
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    spans = []
    while at < len(data) and data[at] in (0x21, 0x2C):
        start = at
        if data[at] == 0x21:
            at += 2
        else:
            flags = data[at + 9]
            at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while at < len(data) and data[at]:  # sub-blocks, ended by an empty one
            at += data[at] + 1
        at += 1
        spans.append((start, min(at, len(data))))
    return spans


def _riff_chunks(data: bytes) -> list[Span]:
    spans, at = [], 12
    while at + 8 <= len(data):
        (size,) = struct.unpack_from("<I", data, at + 4)
        end = min(len(data), at + 8 + size + (size & 1))
        spans.append((at, end))
        at = end
    return spans


def _boxes(data: bytes, at: int = 0, end: int | None = None) -> list[Span]:
    """ISOBMFF boxes, and the boxes inside ``meta``, ``iprp`` and ``ipco``."""
    end = len(data) if end is None else end
    spans = []
    while at + 8 <= end:
        (size,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        stop = min(end, at + max(size, 8))
        spans.append((at, stop))
        if kind in (b"meta", b"iprp", b"ipco"):
            spans += _boxes(data, at + (12 if kind == b"meta" else 8), stop)
        at = stop
    return spans


def dimensions(fmt: str, data: bytes) -> list[Field]:
    """Where ``data`` states a width or a height (the first image's, or the canvas')."""
    fields: list[Field] = []
    if fmt == "png" and data[12:16] == b"IHDR":
        fields += [(16, 4, "big"), (20, 4, "big")]
    elif fmt == "jpeg":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            if (at := data.find(marker)) > 0:
                fields += [(at + 5, 2, "big"), (at + 7, 2, "big")]
    elif fmt == "gif":
        fields += [(6, 2, "little"), (8, 2, "little")]
        if (at := data.find(b"\x2c\x00\x00\x00\x00")) > 0:
            fields += [(at + 5, 2, "little"), (at + 7, 2, "little")]
    elif fmt == "webp":
        if (at := data.find(b"VP8X")) > 0:
            fields += [(at + 12, 3, "little"), (at + 15, 3, "little")]
        if (at := data.find(b"\x9d\x01\x2a")) > 0:  # a lossy frame's start code
            fields += [(at + 3, 2, "little"), (at + 5, 2, "little")]
    elif fmt == "avif" and (at := data.find(b"ispe")) > 0:
        fields += [(at + 8, 4, "big"), (at + 12, 4, "big")]
    return [field for field in fields if field[0] + field[1] <= len(data)]


def fix_png_checksums(data: bytes) -> bytes:
    """Every chunk's CRC made right again, so a damaged PNG reaches the decoder."""
    out = bytearray(data)
    for start, end in _png_chunks(data):
        (length,) = struct.unpack_from(">I", data, start)
        if start + 12 + length == end:
            struct.pack_into(">I", out, end - 4, zlib.crc32(data[start + 4 : end - 4]))
    return bytes(out)


@st.composite
def mutation(draw: st.DrawFn, fmt: str, data: bytes) -> bytes:
    """``data`` with one mutation (nothing left to mutate: as it is)."""
    size = len(data)
    if not size:
        return data
    at = draw(st.integers(0, max(0, size - 1)))
    kind = draw(st.sampled_from(("flip", "edge", "cut", "copy", "remove", "unit", "dimension")))
    if kind == "flip":
        out = bytearray(data)
        out[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if kind == "edge":
        value = draw(st.sampled_from((0x00, 0xFF, 0x7F, 0x80, 0x01)))
        return data[:at] + bytes([value]) * draw(st.integers(1, 4)) + data[at + 4 :]
    if kind == "cut":
        return data[:at]
    if kind in ("copy", "remove"):
        length = draw(st.integers(1, 64))
        if kind == "remove":
            return data[:at] + data[at + length :]
        into = draw(st.integers(0, size))
        return data[:into] + data[at : at + length] + data[into:]
    if kind == "unit" and (spans := units(fmt, data)):
        start, end = draw(st.sampled_from(spans))
        action = draw(st.sampled_from(("repeat", "drop", "swap")))
        if action == "repeat":
            return data[:end] + data[start:end] * draw(st.integers(1, 3)) + data[end:]
        if action == "drop":
            return data[:start] + data[end:]
        other_start, other_end = draw(st.sampled_from(spans))
        if other_end <= start:
            return (
                data[:other_start] + data[start:end] + data[other_end:start]
                + data[other_start:other_end] + data[end:]
            )  # fmt: skip
        return data
    if kind == "dimension" and (fields := dimensions(fmt, data)):
        offset, width, order = draw(st.sampled_from(fields))
        value = draw(st.sampled_from(EDGES) | st.integers(0, 70000)) % (1 << (8 * width))
        return data[:offset] + value.to_bytes(width, order) + data[offset + width :]
    out = bytearray(data)  # no unit or field found: a flip instead
    out[at] ^= 0x10
    return bytes(out)


@st.composite
def damaged(draw: st.DrawFn, fmt: str) -> bytes:
    """A seed of ``fmt`` with one to four mutations, its PNG checksums right half the time."""
    data = draw(st.sampled_from(seeds()[fmt]))
    for _ in range(draw(st.integers(1, 4))):
        data = draw(mutation(fmt, data))
    if fmt == "png" and draw(st.booleans()):
        data = fix_png_checksums(data)
    return data


def valid(fmt: str) -> list[pyvips.Image]:
    """The seeds of ``fmt``, decoded: that every seed is a valid file is checked too."""
    return [pyvips.Image.new_from_buffer(seed, "") for seed in seeds()[fmt]]


def handful(fmt: str) -> dict[str, bytes]:
    """A few fixed damages of the first seed of ``fmt``, by name: for a round through a real
    edge."""
    data = seeds()[fmt][0]
    middle = len(data) // 2
    flipped = bytearray(data)
    flipped[middle] ^= 0xFF
    cases = {"cut in half": data[:middle], "a byte flipped": bytes(flipped)}
    spans = units(fmt, data)
    if spans:
        start, end = spans[len(spans) // 2]
        cases["a unit repeated"] = data[:end] + data[start:end] + data[end:]
        cases["a unit dropped"] = data[:start] + data[end:]
    for side, (offset, width, order) in zip(
        ("width", "height"), dimensions(fmt, data), strict=False
    ):
        huge = (1 << (8 * width)) - 1
        grown = data[:offset] + huge.to_bytes(width, order) + data[offset + width :]
        cases[f"a {side} of {huge}"] = fix_png_checksums(grown) if fmt == "png" else grown
    return cases

"""The source, judged from its header before any pixel is decoded.

libvips opens an image lazily: ``new_from_buffer`` reads the header (dimensions,
orientation, frame count) and decodes nothing until pixels are asked for. So the limits
are checked here, in microseconds and without memory growth, and a decompression bomb
(a few KiB declaring 20000 x 20000 pixels) never reaches a decoder. The format is what
libvips finds in the bytes (its loaders sniff them), never the file's extension.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyvips

from edge.errors import UnprocessableImage
from edge.transform import libvips
from edge.transform.plan import Size

if TYPE_CHECKING:
    from edge.settings import Settings

#: Loader found in the bytes -> the source format it reads.
LOADERS = {
    "jpegload_buffer": "jpeg",
    "pngload_buffer": "png",
    "webpload_buffer": "webp",
    "heifload_buffer": "heif",
    "gifload_buffer": "gif",
    "svgload_buffer": "svg",
}
#: Formats whose frames can be an animation.
ANIMATED = frozenset({"gif", "webp"})
#: EXIF orientations whose upright image has width and height swapped.
QUARTER_TURNS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one transform, each a setting (``EDGE_TRANSFORM_*``)."""

    max_source_pixels: int = 50_000_000
    max_source_bytes: int = 32 * 1024 * 1024
    max_output_pixels: int = 25_000_000
    max_frames: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_source_pixels=settings.transform_max_source_pixels,
            max_source_bytes=settings.transform_max_source_bytes,
            max_output_pixels=settings.transform_max_output_pixels,
            max_frames=settings.transform_max_frames,
        )


@dataclass(frozen=True, slots=True)
class Source:
    data: bytes
    format: str  # a value of LOADERS
    size: Size  # one frame, made upright by its EXIF orientation
    pages: int  # frames of an animated GIF or WebP, else 1


def probe(data: bytes, limits: Limits) -> Source:
    """The source's format, upright size and frames, or UnprocessableImage: over a source
    limit, or not an image edge reads (the reason says which, for the log)."""
    if len(data) > limits.max_source_bytes:
        raise UnprocessableImage(
            f"source is {len(data)} bytes, over EDGE_TRANSFORM_MAX_SOURCE_BYTES"
            f" ({limits.max_source_bytes})",
            slug="source_too_large",
        )
    try:
        header = pyvips.Image.new_from_buffer(data, "")
        loader = header.get("vips-loader")
    except pyvips.Error as error:
        raise UnprocessableImage(
            f"not an image edge can read: {reason(error)}", slug="source_unreadable"
        ) from None
    kind = LOADERS.get(loader)
    if kind is None:  # cannot happen while libvips.configure() blocks the others
        raise UnprocessableImage(f"{loader} is not a loader edge trusts", slug="source_unreadable")
    width, height = header.width, header.height
    if kind in ANIMATED and header.get_typeof("n-pages"):
        pages = max(1, header.get("n-pages"))
    else:
        pages = 1
    if header.get_typeof("orientation") and header.get("orientation") in QUARTER_TURNS:
        width, height = height, width
    if width * height > limits.max_source_pixels:
        raise UnprocessableImage(
            f"source is {width}x{height} pixels, over EDGE_TRANSFORM_MAX_SOURCE_PIXELS"
            f" ({limits.max_source_pixels})",
            slug="source_too_many_pixels",
        )
    return Source(data, kind, Size(width, height), pages)


def reason(error: pyvips.Error) -> str:
    """libvips' own words, on one line and short enough for a log line."""
    detail = " ".join(str(getattr(error, "detail", "") or error).split())
    return detail[:300] or "libvips error"


libvips.configure()  # before any loader runs: only the trusted ones, no operation cache

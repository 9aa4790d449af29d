"""Test images for the transform engine, made with pyvips itself, and ways to read results.

The quadrant image is the workhorse: four flat colours (red top-left, green top-right,
blue bottom-left, yellow bottom-right), so where each colour lands in the decoded output
tells which crop, turn or mirror was applied; where one colour gives way to the next
tells the crop's position to the pixel.
"""

from __future__ import annotations

import struct
import zlib

import pyvips

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
NAMES = {RED: "red", GREEN: "green", BLUE: "blue", YELLOW: "yellow", WHITE: "white", BLACK: "black"}


def flat(colour: tuple[int, ...], width: int, height: int) -> pyvips.Image:
    image = pyvips.Image.black(width, height, bands=len(colour)).linear(
        [1] * len(colour), list(colour)
    )
    return image.cast("uchar").copy(interpretation="srgb" if len(colour) >= 3 else "b-w")


def quadrants(width: int = 300, height: int = 200) -> pyvips.Image:
    """Red | green over blue | yellow, split at the middle of each side."""
    left, top = width // 2, height // 2
    upper = flat(RED, left, top).join(flat(GREEN, width - left, top), "horizontal")
    lower = flat(BLUE, left, height - top).join(
        flat(YELLOW, width - left, height - top), "horizontal"
    )
    return upper.join(lower, "vertical")


def encoded(image: pyvips.Image, fmt: str = "png", **options: object) -> bytes:
    """``image`` in ``fmt`` (jpeg, png, webp, avif, gif), as a stored source would be."""
    if fmt == "avif":
        return bytes(image.heifsave_buffer(compression="av1", **options))
    return bytes(getattr(image, f"{fmt}save_buffer")(**options))


def decoded(data: bytes, **options: object) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "", **options)


def colour(image: pyvips.Image, x: int, y: int) -> str:
    """The name of the nearest test colour at (x, y) (lossy formats shift colours a bit)."""
    pixel = image.getpoint(x, y)[:3]
    if len(pixel) == 1:
        pixel = pixel * 3
    nearest = min(NAMES, key=lambda c: sum((a - b) ** 2 for a, b in zip(c, pixel, strict=True)))
    return NAMES[nearest]


def corners(image: pyvips.Image) -> tuple[str, str, str, str]:
    """Colours near the four corners: top-left, top-right, bottom-left, bottom-right."""
    right, bottom = image.width - 3, image.height - 3
    return (
        colour(image, 2, 2),
        colour(image, right, 2),
        colour(image, 2, bottom),
        colour(image, right, bottom),
    )


def change_x(image: pyvips.Image, y: int = 2) -> int:
    """The first column, on row ``y``, whose colour differs from the first one's."""
    first = colour(image, 0, y)
    return next(x for x in range(image.width) if colour(image, x, y) != first)


def change_y(image: pyvips.Image, x: int = 2) -> int:
    first = colour(image, x, 0)
    return next(y for y in range(image.height) if colour(image, x, y) != first)


def animation(frames: list[pyvips.Image], delays: list[int]) -> pyvips.Image:
    """Frames stacked as libvips keeps an animation, ready for gifsave or webpsave."""
    image = pyvips.Image.arrayjoin(frames, across=1).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    image.set_type(pyvips.GValue.array_int_type, "delay", delays)
    image.set_type(pyvips.GValue.gint_type, "loop", 0)
    return image


def tagged(fmt: str) -> bytes:
    """A Display P3 picture with EXIF (an artist, a GPS position), XMP, IPTC (JPEG) and a
    text comment (PNG): everything a camera or an editor leaves in a file."""
    picture = flat((200, 100, 50), 64, 64).icc_export(output_profile="p3").copy()
    picture.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Someone")
    picture.set_type(pyvips.GValue.gstr_type, "exif-ifd3-GPSLatitudeRef", "N")
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>where</secret></x:xmpmeta>'
    picture.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
    if fmt == "jpeg":
        iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x05\x1c\x02\x50\x00\x01A\x00"
        picture.set_type(pyvips.GValue.blob_type, "iptc-data", iptc)  # by-line "A"
        return bytes(picture.jpegsave_buffer(Q=98, keep="all"))
    picture.set_type(pyvips.GValue.gstr_type, "png-comment-0-Comment", "a private comment")
    return bytes(picture.pngsave_buffer(keep="all"))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` RGBA pixels, with a few KiB of
    compressed zeros: what a decompression bomb looks like to a header reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    pixels = zlib.compress(bytes(4 * 1024 * 1024), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)


def jpeg_bomb(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(encoded(flat((9, 9, 9), 16, 16), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width: int, height: int) -> bytes:
    """A real 16x16 GIF whose screen and image descriptor claim ``width`` x ``height``."""
    data = bytearray(encoded(flat((9, 9, 9), 16, 16), "gif"))
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.index(b"\x2c\x00\x00\x00\x00")
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


#: A transform that takes seconds of CPU (a 25-megapixel blur and sharpen of a small
#: source enlarged): what EDGE_TRANSFORM_TIMEOUT is tested with. Uncut, it runs for 6 s
#: of CPU on the project's VM; stopped, it is gone within a few dozen milliseconds.
SLOW = "w=5000&h=5000&fit=fill&blur=100&sharpen=100"


def slow_source() -> bytes:
    """A small JPEG for :data:`SLOW` (the work is all in the transform, none in the file)."""
    return encoded(quadrants(400, 300), "jpeg")

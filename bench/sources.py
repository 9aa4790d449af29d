"""The transform scenarios' source files, made by the bench itself: photo-like JPEGs of
about 1, 4 and 24 megapixels, a PNG with alpha, and a decompression bomb.

Made with libvips from noise and shapes so they compress like photos (and a graphic),
the same every run: one folder that edge (``public/bench/``), the bare pyvips app and
thumbor's file loader all read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyvips

USER = "bench"
#: The bomb: 20000 x 20000 pixels declared, a few dozen KiB stored.
BOMB_SIDE = 20_000


@dataclass(frozen=True)
class SourceFile:
    name: str  # file name in the folder, e.g. "photo-4mp.jpg"
    label: str  # for tables, e.g. "JPEG 4 MP"
    width: int
    height: int


PHOTOS = (
    SourceFile("photo-1mp.jpg", "JPEG 1 MP", 1200, 800),
    SourceFile("photo-4mp.jpg", "JPEG 4 MP", 2400, 1600),
    SourceFile("photo-24mp.jpg", "JPEG 24 MP", 6000, 4000),
)
GRAPHIC = SourceFile("graphic-4mp.png", "PNG 4 MP, alpha", 2400, 1600)
BOMB = "bomb.png"


def photo(width: int, height: int) -> bytes:
    """A JPEG that compresses like a photo: gradients, a disc, noise at two scales."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    red = x * (200 / width) + 30
    green = y * (180 / height) + 40
    blue = ((x / (97 * width / 2400)).sin() + (y / (61 * width / 2400)).cos()) * 50 + 120
    base = red.bandjoin([green, blue])
    base = base.draw_circle(
        [250, 240, 200], width * 5 // 8, height * 7 // 16, width // 6, fill=True
    )
    fine = pyvips.Image.gaussnoise(width, height, mean=0, sigma=14, seed=7).gaussblur(0.8)
    coarse = pyvips.Image.gaussnoise(width, height, mean=0, sigma=120, seed=8).gaussblur(4)
    texture = fine + coarse
    image = (base + texture.bandjoin([texture, texture])).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=90))


def graphic(width: int, height: int) -> bytes:
    """A PNG with alpha: flat shapes on a transparent gradient."""
    xyz = pyvips.Image.xyz(width, height)
    alpha = (xyz[0] * (255 / width)).cast("uchar")
    colour = pyvips.Image.black(width, height, bands=3).linear([1, 1, 1], [40, 90, 200])
    colour = colour.draw_rect([240, 180, 20], width // 8, height // 5, width * 3 // 8, height // 3)
    colour = colour.draw_circle([200, 30, 60], width * 7 // 10, height * 9 // 16, width // 5)
    image = colour.cast("uchar").bandjoin(alpha).copy(interpretation="srgb")
    return bytes(image.pngsave_buffer())


def bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of ``side`` x ``side`` zero pixels: deflate packs the
    50 MB of rows into a few dozen KiB, and a decoder that believed it would hold 400
    megapixels (1.2 GB as RGB)."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte, then the packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def write(folder: Path) -> Path:
    """Every source into ``folder`` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in PHOTOS:
        (folder / source.name).write_bytes(photo(source.width, source.height))
    (folder / GRAPHIC.name).write_bytes(graphic(GRAPHIC.width, GRAPHIC.height))
    (folder / BOMB).write_bytes(bomb())
    return folder

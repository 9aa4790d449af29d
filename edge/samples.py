"""Sample images made locally, for ``edge demo`` and the tests: real PNG, JPEG and SVG files.

PNGs are drawn here (zlib and struct are all a PNG needs); the JPEG ships with
the package, since writing a JPEG encoder is not the edge's job.
"""

from __future__ import annotations

import json
import struct
import zlib
from importlib.resources import files
from pathlib import Path

#: Private sample files carry this, so a test can scan any response for a leak.
CANARY = b"EDGE-PRIVATE-CANARY-7f3a"
#: The demo's preset, ``presets/{user}/thumbnail.json``: ``?p:thumbnail``.
DEMO_PRESET = ("thumbnail", {"w": 200, "h": 200, "fit": "cover", "q": 70})


def png(width: int, height: int, *, hue: int = 0, label_bar: bool = True) -> bytes:
    """An RGB PNG: a diagonal gradient with a disc, tinted by ``hue`` (0-2)."""
    rows = bytearray()
    cx, cy, r2 = width * 0.7, height * 0.35, (min(width, height) * 0.18) ** 2
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            t = (x + y) / (width + height)
            if (x - cx) ** 2 + (y - cy) ** 2 < r2:
                pixel = [250, 215, 110]
            elif label_bar and y > height * 0.82:
                pixel = [30, 34, 48]
            else:
                pixel = [int(40 + 150 * t), int(80 + 120 * (1 - t)), int(200 - 90 * t)]
            pixel = pixel[hue:] + pixel[:hue]
            rows.extend(pixel)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def svg(text: str = "edge") -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="120" viewBox="0 0 240 120">'
        '<rect width="240" height="120" rx="16" fill="#1f2937"/>'
        '<circle cx="60" cy="60" r="34" fill="#f59e0b"/>'
        f'<text x="110" y="72" font-family="sans-serif" font-size="34" fill="#f9fafb">{text}</text>'
        "</svg>"
    ).encode()


def jpeg() -> bytes:
    return files("edge").joinpath("samples/mountains.jpg").read_bytes()


def with_canary(image: bytes) -> bytes:
    """Append the canary after the image's end: decoders ignore trailing bytes."""
    return image + CANARY


def write_demo_folder(root: Path, *, user: str = "demo") -> dict[str, str]:
    """Lay out public and private samples and a preset (:data:`DEMO_PRESET`) under
    ``root``; return the samples' decoded paths."""
    layout = {
        "public_png": ("public", "welcome.png", png(480, 320)),
        "public_svg": ("public", "logo.svg", svg()),
        "public_jpeg": ("public", "mountains.jpg", jpeg()),
        "private_png": ("private", "albums/2026/sunrise.png", with_canary(png(480, 320, hue=1))),
        "private_jpeg": ("private", "passport scan.jpg", with_canary(jpeg())),
    }
    paths = {}
    for name, (visibility, file, data) in layout.items():
        target = root / visibility / user / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        paths[name] = f"/i/{user}/{file}"
    name, preset = DEMO_PRESET
    target = root / "presets" / user / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(preset) + "\n")
    return paths

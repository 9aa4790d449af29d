"""Bombs, broken files and things that are not images: UnprocessableImage, fast, with flat
memory; every limit is checked before a pixel is decoded."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.errors import UnprocessableImage
from edge.transform import Limits, Transform, render
from tests.support.transform_images import encoded, gif_bomb, jpeg_bomb, png_bomb, quadrants


def peak_rss_growth(work: Callable[[], object]) -> int:
    """Bytes the process's peak RSS grew by while ``work`` ran (the peak is reset first,
    through /proc/self/clear_refs), whatever ``work`` raised."""

    def peak() -> int:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]

    Path("/proc/self/clear_refs").write_text("5")
    before = peak()
    with contextlib.suppress(UnprocessableImage):
        work()
    return peak() - before


@pytest.mark.parametrize(
    ("name", "bomb"),
    [
        ("png 20000x20000", png_bomb(20000, 20000)),
        ("jpeg 60000x60000", jpeg_bomb(60000, 60000)),
        ("gif 30000x30000", gif_bomb(30000, 30000)),
    ],
)
def test_a_decompression_bomb_is_refused_from_its_header(name: str, bomb: bytes) -> None:
    assert len(bomb) < 8192, name
    start = time.perf_counter()
    with pytest.raises(UnprocessableImage, match="over EDGE_TRANSFORM_MAX_SOURCE_PIXELS"):
        render(bomb, Transform(w=100), "png")
    assert time.perf_counter() - start < 1  # decoding it would take many seconds
    assert peak_rss_growth(lambda: render(bomb, Transform(w=100), "png")) < 8 * 1024 * 1024


def test_the_bomb_would_have_been_decoded_without_the_limit() -> None:
    """The same header under a limit it fits: decoding starts (and fails on the missing
    rows), so the refusal above is the limit's doing, not an accident of the file."""
    with pytest.raises(UnprocessableImage, match="libvips"):
        render(png_bomb(2000, 2000), Transform(w=100), "png")


def test_the_output_limit_is_checked_before_decoding() -> None:
    source = encoded(quadrants(300, 200))
    start = time.perf_counter()
    with pytest.raises(UnprocessableImage, match="over EDGE_TRANSFORM_MAX_OUTPUT_PIXELS"):
        render(source, Transform(w=10000, h=10000, dpr=3), "png")
    assert time.perf_counter() - start < 1  # rendering 900 MP would take many seconds
    limits = Limits(max_output_pixels=100 * 100)
    assert render(source, Transform(w=100, h=100), "png", limits).width == 100
    with pytest.raises(UnprocessableImage, match=r"101x100 pixels, over .* \(10000\)"):
        render(source, Transform(w=101, h=100), "png", limits)


def test_a_source_over_the_byte_limit_is_refused_unread() -> None:
    source = encoded(quadrants(300, 200))
    with pytest.raises(UnprocessableImage, match="over EDGE_TRANSFORM_MAX_SOURCE_BYTES"):
        render(source, Transform(w=10), "png", Limits(max_source_bytes=len(source) - 1))
    assert render(source, Transform(w=10), "png", Limits(max_source_bytes=len(source))).width


PICTURE = quadrants(64, 64)


def corrupted(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    """``value`` written ``offset`` bytes after the first ``marker``."""
    at = data.index(marker) + offset
    return data[:at] + value + data[at + len(value) :]


def scrambled(data: bytes, marker: bytes) -> bytes:
    """64 bytes scrambled from the first ``marker`` on."""
    return corrupted(data, marker, 0, bytes(b ^ 0x5A for b in data[data.index(marker) :][:64]))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("jpeg cut in half", encoded(PICTURE, "jpeg")[:400]),
        ("png cut in half", encoded(PICTURE, "png")[:200]),
        ("webp cut in half", encoded(PICTURE, "webp")[:120]),
        ("gif cut in half", encoded(PICTURE, "gif")[:100]),
        ("avif cut in half", encoded(PICTURE, "avif")[:300]),
        ("jpeg, bogus Huffman table", corrupted(encoded(PICTURE, "jpeg"), b"\xff\xc4", 2, b"\xff")),
        ("jpeg, 0-bit samples", corrupted(encoded(PICTURE, "jpeg"), b"\xff\xc0", 4, b"\x00")),
        ("png, scrambled header", scrambled(encoded(PICTURE, "png"), b"IHDR")),
        ("png, scrambled pixels", scrambled(encoded(PICTURE, "png"), b"IDAT")),
        ("html named photo.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)>"),
        ("empty", b""),
        ("text", b"hello, world\n" * 100),
        ("tiff (a format edge does not read)", bytes(PICTURE.tiffsave_buffer())),
        ("svg that is not XML", b"<svg xmlns='http://www.w3.org/2000/svg' <<<"),
    ],
)
def test_what_cannot_be_decoded_is_unprocessable_quickly(name: str, data: bytes) -> None:
    """Refused, not retried or waited on: well within the transform timeout (10 s) even on
    a loaded machine; a loader's first use (librsvg's set-up) may take half a second."""
    start = time.perf_counter()
    with pytest.raises(UnprocessableImage):
        render(data, Transform(w=32), "png")
    assert time.perf_counter() - start < 3, name


def test_a_jpeg_libjpeg_recovers_from_is_served_as_browsers_show_it() -> None:
    """Damage libjpeg only warns about (bytes lost before a marker: common in files from
    old cameras and editors) is decoded as it recovers; only errors and truncation are
    refused, so a photo a browser shows is not refused by its thumbnail."""
    damaged = scrambled(encoded(PICTURE, "jpeg"), b"\xff\xc4")
    assert render(damaged, Transform(w=32), "png").width == 32


def test_the_reason_says_what_libvips_said_and_the_message_stays_fixed() -> None:
    with pytest.raises(UnprocessableImage) as refused:
        render(b"<!doctype html>", Transform(w=32), "jpeg")
    assert "not an image edge can read" in refused.value.reason
    assert refused.value.message == "Image cannot be processed"
    assert (refused.value.status, refused.value.code) == (422, "UNPROCESSABLE_IMAGE")


def test_many_refusals_do_not_grow_memory() -> None:
    bombs = [png_bomb(20000, 20000), jpeg_bomb(60000, 60000), b"<html>", b""]

    def refuse_all() -> None:
        for _ in range(50):
            for bomb in bombs:
                with pytest.raises(UnprocessableImage):
                    render(bomb, Transform(w=100), "webp")

    refuse_all()  # warm up: libvips' first loads allocate its types and buffers
    assert peak_rss_growth(refuse_all) < 8 * 1024 * 1024

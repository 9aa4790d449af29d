"""The transform engine's CPU per operation, against bare libvips and against Pillow.

    python -m bench.transform [--rounds 15]     writes bench/results/transform.md

In-process, one thread each (libvips' concurrency 1, as the pool sets it with one worker
per core; Pillow is single-threaded): CPU seconds of the process (``process_time``) per
operation, median over rounds, the three contenders interleaved in every round so drift
hits them alike. Sources are made here: a 2400x1600 photo-like JPEG (gradients, shapes and
noise, so it compresses like a photo) and a 2400x1600 PNG with alpha (a graphic: flat
shapes on a transparent gradient). Every operation asks for a 400-pixel-wide result.

- engine: :func:`edge.transform.render`, the whole path (header check, plan, metadata
  stripped, sRGB);
- bare: ``pyvips.Image.thumbnail_buffer(data, 400)`` and the same saver and options the
  engine uses (so the difference is the engine's own work);
- Pillow: ``Image.open``, ``ImageOps.exif_transpose``, ``thumbnail`` (which uses JPEG's
  draft mode, Pillow's shrink-on-load), ``save`` at the same quality (AVIF at speed 7,
  libaom's setting for libvips' effort 2).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import PIL
import pyvips
from PIL import Image, ImageOps

from edge.transform import OutputFormat, Transform, engine, libvips, render

RESULTS = Path(__file__).parent / "results" / "transform.md"
WIDTH = 400


def photo() -> bytes:
    """A 2400x1600 JPEG that compresses like a photo."""
    xyz = pyvips.Image.xyz(2400, 1600)
    x, y = xyz[0], xyz[1]
    red = x * (200 / 2400) + 30
    green = y * (180 / 1600) + 40
    blue = ((x / 97).sin() + (y / 61).cos()) * 50 + 120
    base = red.bandjoin([green, blue])
    base = base.draw_circle([250, 240, 200], 1500, 700, 400, fill=True)
    # Texture at a few scales, so detail survives the scaling to 400 pixels as a photo's does.
    fine = pyvips.Image.gaussnoise(2400, 1600, mean=0, sigma=14, seed=7).gaussblur(0.8)
    coarse = pyvips.Image.gaussnoise(2400, 1600, mean=0, sigma=120, seed=8).gaussblur(4)
    texture = fine + coarse
    image = (base + texture.bandjoin([texture, texture])).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=90))


def graphic() -> bytes:
    """A 2400x1600 PNG with alpha: flat shapes on a transparent gradient."""
    xyz = pyvips.Image.xyz(2400, 1600)
    alpha = (xyz[0] * (255 / 2400)).cast("uchar")
    colour = pyvips.Image.black(2400, 1600, bands=3).linear([1, 1, 1], [40, 90, 200])
    colour = colour.draw_rect([240, 180, 20], 300, 300, 900, 600, fill=True)
    colour = colour.draw_circle([200, 30, 60], 1700, 900, 450, fill=True)
    image = colour.cast("uchar").bandjoin(alpha).copy(interpretation="srgb")
    return bytes(image.pngsave_buffer())


def bare(data: bytes, output: OutputFormat) -> bytes:
    image = pyvips.Image.thumbnail_buffer(data, WIDTH)
    match output:
        case "jpeg":
            return bytes(image.jpegsave_buffer(Q=80, optimize_coding=True, keep="none"))
        case "webp":
            return bytes(image.webpsave_buffer(Q=80, effort=engine.WEBP_EFFORT, keep="none"))
        case "avif":
            return bytes(
                image.heifsave_buffer(
                    Q=80, compression="av1", effort=engine.AVIF_EFFORT, keep="none"
                )
            )
    return bytes(image.pngsave_buffer(filter="all", keep="none"))


def pillow(data: bytes, output: OutputFormat) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        opened.thumbnail((WIDTH, 10 * WIDTH), Image.Resampling.LANCZOS)
        image = ImageOps.exif_transpose(opened)
        out = io.BytesIO()
        match output:
            case "jpeg":
                image.convert("RGB").save(out, "JPEG", quality=80, optimize=True)
            case "webp":
                image.save(out, "WEBP", quality=80, method=4)
            case "avif":
                image.save(out, "AVIF", quality=80, speed=7)
            case _:
                image.save(out, "PNG")
        return out.getvalue()


def cpu(work: Callable[[], bytes]) -> tuple[float, int]:
    """CPU seconds of the whole process (every thread) for one call, and the bytes made."""
    start = time.process_time()
    size = len(work())
    return time.process_time() - start, size


def contenders(data: bytes, output: OutputFormat) -> dict[str, Callable[[], bytes]]:
    return {
        "engine": lambda: render(data, Transform(w=WIDTH), output).data,
        "bare": lambda: bare(data, output),
        "pillow": lambda: pillow(data, output),
    }


def measure(rounds: int) -> list[str]:
    sources = {"jpeg": photo(), "png": graphic()}
    cases: list[tuple[str, OutputFormat]] = [
        ("jpeg", "jpeg"),
        ("jpeg", "webp"),
        ("jpeg", "avif"),
        ("png", "png"),
    ]
    lines = [
        "| source -> 400 px wide | engine | bare thumbnail_buffer | Pillow"
        " | engine / bare | engine / Pillow | bytes: engine, bare, Pillow |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for source, output in cases:
        data = sources[source]
        works = contenders(data, output)
        times: dict[str, list[float]] = {name: [] for name in works}
        sizes: dict[str, int] = {}
        for round_ in range(rounds + 2):  # two rounds of warm-up
            for name, work in works.items():
                seconds, sizes[name] = cpu(work)
                if round_ >= 2:
                    times[name].append(seconds)
        ms = {name: statistics.median(values) * 1000 for name, values in times.items()}
        lines.append(
            f"| {source.upper()} {len(data) // 1024} KiB -> {output.upper()}"
            f" | {ms['engine']:.1f} ms | {ms['bare']:.1f} ms | {ms['pillow']:.1f} ms"
            f" | {ms['engine'] / ms['bare']:.2f}x | {ms['engine'] / ms['pillow']:.2f}x"
            f" | {sizes['engine']}, {sizes['bare']}, {sizes['pillow']} |"
        )
    return lines


def choices(rounds: int) -> list[str]:
    """The two choices measured: the operation cache off, AVIF at effort 2."""
    data = photo()
    lines = [
        "| variant | JPEG -> 400 px JPEG | JPEG -> 400 px AVIF (bytes) |",
        "| --- | ---: | ---: |",
    ]
    for label, cache, effort in (
        ("operation cache off, AVIF effort 2 (as shipped)", 0, 2),
        ("libvips' default cache (100 operations, 100 MiB)", 100, 2),
        ("AVIF effort 4 (libvips' default)", 0, 4),
    ):
        pyvips.cache_set_max(cache)
        pyvips.cache_set_max_mem(cache * 1024 * 1024)
        engine.AVIF_EFFORT = effort
        figures = []
        for output in ("jpeg", "avif"):
            work = contenders(data, output)["engine"]
            samples = [cpu(work) for _ in range(rounds + 2)][2:]
            figures.append(
                f"{statistics.median(s for s, _ in samples) * 1000:.1f} ms"
                + (f" ({samples[0][1]})" if output == "avif" else "")
            )
        lines.append(f"| {label} | {figures[0]} | {figures[1]} |")
    libvips.configure()
    engine.AVIF_EFFORT = 2
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="The transform engine's CPU per operation")
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    pyvips.concurrency_set(1)
    table = measure(rounds)
    chosen = choices(rounds)
    text = "\n".join(
        [
            "# Transform engine: CPU per operation",
            "",
            f"`python -m bench.transform --rounds {rounds}` on {platform.machine()},"
            f" {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()},"
            f" libvips {libvips.version()} (pyvips-binary), Pillow {PIL.__version__}: CPU"
            " time of the process (all threads) per operation, median of the rounds, one"
            " thread each. What is measured and how: the docstring of bench/transform.py.",
            "",
            *table,
            "",
            "## Two choices",
            "",
            *chosen,
            "",
        ]
    )
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

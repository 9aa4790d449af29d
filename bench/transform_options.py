"""Where a cold transform's CPU goes, and what libvips' options change, in-process.

    python -m bench.transform_options [--rounds 9] [--quick]     printed, nothing written

One thread, libvips' concurrency 1 (as edge's pool sets it with one worker per core):
CPU seconds of the process (``process_time``) per operation, median over rounds, every
variant interleaved in each round. The sources are the load scenarios' own
(:mod:`bench.sources`); each operation asks for an 800-pixel-wide result, about the
middle of the cold rows' widths. Variants, each against the one before it:

- ``edge render``: :func:`edge.transform.render`, as the pool runs it;
- ``edge probe``: its header check alone (``new_from_buffer``, before any pixel);
- ``bare``: ``thumbnail_buffer(data, 800)`` and the engine's saver and options;
- ``bare, edge's thumbnail options``: with the height, ``size=force`` and ``fail_on``;
- saver options: JPEG without ``optimize_coding``, WebP and AVIF efforts;
- ``Pillow, thumbor's way``: ``draft`` (JPEG's shrink-on-load), a Lanczos ``resize``,
  ``save`` with thumbor's options (JPEG quality 80, optimised, progressive).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable

import pyvips
from PIL import Image

from bench.sources import GRAPHIC, PHOTOS, graphic, photo
from edge.transform import Limits, OutputFormat, Transform, render
from edge.transform.source import probe

WIDTH = 800


def save(image: pyvips.Image, output: str, **options: object) -> bytes:
    if output == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=[255] * (image.bands - 1))
        settings = {"Q": 80, "optimize_coding": True, "keep": "none", **options}
        return bytes(image.jpegsave_buffer(**settings))
    if output == "webp":
        return bytes(image.webpsave_buffer(**{"Q": 80, "keep": "none", **options}))
    settings = {"Q": 80, "compression": "av1", "effort": 2, "keep": "none", **options}
    return bytes(image.heifsave_buffer(**settings))


def pillow(data: bytes, output: str) -> bytes:
    """What thumbor's PIL engine does for ``/unsafe/800x0/...``: draft, resize, save."""
    with Image.open(io.BytesIO(data)) as opened:
        height = round(opened.height * WIDTH / opened.width)
        opened.draft("RGB", (WIDTH, height))
        image = opened.resize((WIDTH, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if output == "jpeg":
            image.convert("RGB").save(out, "JPEG", quality=80, optimize=True, progressive=True)
        elif output == "webp":
            image.save(out, "WEBP", quality=80)
        else:
            image.save(out, "AVIF", quality=80)
        return out.getvalue()


def variants(data: bytes, output: OutputFormat) -> dict[str, Callable[[], object]]:
    height = round(1600 * WIDTH / 2400)
    edge_options = {"height": height, "size": "force", "option_string": "fail_on=error"}
    found: dict[str, Callable[[], object]] = {
        "edge render": lambda: render(data, Transform(w=WIDTH), output).data,
        "edge probe (header only)": lambda: probe(data, Limits()),
        "bare thumbnail_buffer": lambda: save(pyvips.Image.thumbnail_buffer(data, WIDTH), output),
        "bare, edge's thumbnail options": lambda: save(
            pyvips.Image.thumbnail_buffer(data, WIDTH, **edge_options), output
        ),
    }
    thumb = pyvips.Image.thumbnail_buffer
    if output == "jpeg":
        found["bare, optimize_coding off"] = lambda: save(
            thumb(data, WIDTH), output, optimize_coding=False
        )
        found["bare, fail_on=none"] = lambda: save(
            thumb(data, WIDTH, option_string="fail_on=none"), output
        )
    elif output == "webp":
        for effort in (2, 0):
            found[f"bare, webp effort {effort}"] = lambda e=effort: save(  # type: ignore[misc]
                thumb(data, WIDTH), output, effort=e
            )
    else:
        for effort in (1, 0):
            found[f"bare, avif effort {effort}"] = lambda e=effort: save(  # type: ignore[misc]
                thumb(data, WIDTH), output, effort=e
            )
    found["Pillow, thumbor's way"] = lambda: pillow(data, output)
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3 if quick else 9
    pyvips.concurrency_set(1)
    photo4, png = PHOTOS[1], GRAPHIC
    sources = {
        photo4.label: photo(photo4.width, photo4.height),
        png.label: graphic(png.width, png.height),
    }
    cases: list[tuple[str, OutputFormat]] = [
        (photo4.label, "jpeg"),
        (png.label, "jpeg"),
        (photo4.label, "webp"),
        (photo4.label, "avif"),
    ]
    for label, output in cases:
        works = variants(sources[label], output)
        times: dict[str, list[float]] = {name: [] for name in works}
        for number in range(rounds + 1):  # one round of warm-up
            for name, work in works.items():
                started = time.process_time()
                work()
                if number:
                    times[name].append(time.process_time() - started)
        print(f"\n{label} -> {WIDTH} px {output.upper()}, CPU ms per operation (median)")
        for name, values in times.items():
            print(f"  {name:36} {statistics.median(values) * 1000:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

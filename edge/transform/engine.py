"""Run a plan with libvips: source bytes in, encoded output bytes out, bounded.

:func:`render` is synchronous and CPU-bound (libvips releases the GIL, so transforms in
threads run in parallel): the pipeline runs it in :class:`edge.transform.TransformPool`.
Every limit is checked from the header and the plan before any pixel is decoded
(:mod:`edge.transform.source`); a source that fails to decode later (truncated, corrupt)
fails at the one place pixels are pulled, and every libvips error becomes
``UnprocessableImage`` with libvips' words as the reason. With a :class:`Deadline`, each
image is watched before it is computed, and work past the deadline stops at its next
tile with ``TransformTimeout`` (:mod:`edge.transform.deadline`).

Where pixels are decoded: the plan's first step is libvips' ``thumbnail`` at the size the
geometry needs, so JPEG decodes at 1/2, 1/4 or 1/8 scale (the smallest that leaves the
size: :func:`jpeg_shrink`), WebP at any scale and SVG
renders at the output's size, all read sequentially (top to bottom, a few lines held at
a time). The image is rendered into memory only before a step that must read it out of
order or twice (a turn, a mirror, smartcrop, blur, sharpen, or an animation's frames),
and then at the smallest size it has by then.

Output: sRGB (an embedded profile is converted, a CMYK source made RGB), 8 bits, with no
metadata at all (``keep=none``: no EXIF, GPS, XMP, IPTC, ICC profile or comment).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from edge.errors import UnprocessableImage
from edge.transform.deadline import Deadline
from edge.transform.plan import (
    Blur,
    Crop,
    Grayscale,
    Load,
    Mirror,
    Plan,
    Resize,
    Rotate,
    Sharpen,
    Size,
    Step,
    make_plan,
)
from edge.transform.source import ANIMATED, Limits, Source, probe, reason
from edge.transform.types import MEDIA_TYPES, OutputFormat, adapt

#: Steps that read their input out of order or more than once.
RANDOM_ACCESS = (Rotate, Mirror, Blur, Sharpen)
ROTATIONS = {90: "d90", 180: "d180", 270: "d270"}
#: AVIF encoder effort (0 to 9): libvips' default, 4, costs 5 times the CPU of effort 2
#: for 6% fewer bytes, on a 400-pixel photo (bench/results/transform.md).
AVIF_EFFORT = 2
#: WebP encoder effort (libwebp's method, 0 to 6): libvips' default, 4, costs 2.5 to 3
#: times the encoding CPU of effort 1 on a photo for bytes within 3% either way (a flat
#: graphic: 1 to 12% more) (bench/README.md, "Transforms under load").
WEBP_EFFORT = 1


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    format: OutputFormat
    width: int  # pixels of one frame
    height: int
    frames: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def render(
    data: bytes,
    transform: object,
    output: OutputFormat,
    limits: Limits | None = None,
    deadline: Deadline | None = None,
) -> Rendered:
    """``data`` transformed as ``transform`` (an :class:`edge.transform.Transform`, or any
    object with its field names) says and encoded as ``output``; or UnprocessableImage, or
    TransformTimeout once ``deadline`` has passed."""
    limits = limits or Limits()
    deadline = deadline or Deadline(None)
    asked = adapt(transform)
    source = probe(data, limits)
    plan = make_plan(source.size, asked, output)
    if plan.output.pixels > limits.max_output_pixels:
        raise UnprocessableImage(
            f"output would be {plan.output.width}x{plan.output.height} pixels, over"
            f" EDGE_TRANSFORM_MAX_OUTPUT_PIXELS ({limits.max_output_pixels})",
            slug="output_too_many_pixels",
        )
    frames = frames_kept(source, plan, output, limits)
    try:
        pages = run(plan, source, frames, deadline)
        deadline.check()
        encoded = encode([deadline.watch(page) for page in pages], output, asked.q)
    except pyvips.Error as error:
        if deadline.passed:  # libvips was told to stop ("killed")
            raise deadline.error() from None
        raise UnprocessableImage(f"libvips: {reason(error)}", slug="source_corrupt") from None
    return Rendered(encoded, output, pages[0].width, pages[0].height, len(pages))


def frames_kept(source: Source, plan: Plan, output: OutputFormat, limits: Limits) -> int:
    """All of an animation's frames, when the output can animate and they fit every limit
    together; otherwise 1 (the first frame)."""
    pages = source.pages
    if pages == 1 or output not in ANIMATED or pages > limits.max_frames:
        return 1
    if pages * source.size.pixels > limits.max_source_pixels:
        return 1
    if pages * plan.output.pixels > limits.max_output_pixels:
        return 1
    return pages


def run(plan: Plan, source: Source, frames: int, deadline: Deadline) -> list[pyvips.Image]:
    """The plan's steps, each over every frame; returns the frames."""
    image = deadline.watch(load(plan.load, source, frames))
    pages, in_memory = [image], False
    if frames > 1:  # libvips stacks frames in one tall image: cut it, each read on its own
        image, in_memory = computed(image, deadline), True
        height = image.height // frames
        pages = [image.extract_area(0, i * height, image.width, height) for i in range(frames)]
    for step in plan.steps[1:]:
        deadline.check()
        if not in_memory and needs_memory(step):
            pages, in_memory = [computed(page, deadline) for page in pages], True
        pages = apply(step, pages)
    return pages


def computed(image: pyvips.Image, deadline: Deadline) -> pyvips.Image:
    """``image`` computed into memory, stopped at the deadline; the copy watched too, as
    what is made from it is computed later (a blur, at the encoder)."""
    return deadline.watch(deadline.watch(image).copy_memory())


def load(step: Load, source: Source, frames: int) -> pyvips.Image:
    """Decode at the plan's first size: libvips' thumbnail, which shrinks while decoding
    where the format can and applies the EXIF orientation (and makes CMYK RGB)."""
    shrink = jpeg_shrink(source, step.size) if frames == 1 else 1
    if shrink > 1:
        decoded = pyvips.Image.new_from_buffer(
            source.data, "", shrink=shrink, fail_on="error", access="sequential"
        )
        image = decoded.thumbnail_image(step.size.width, height=step.size.height, size="force")
        return to_srgb(image)
    options = ["fail_on=error"]
    if frames > 1:
        options.append(f"n={frames}")
    if source.format == "svg":
        options.append("unlimited=false")  # librsvg's XML limits stay on
    image = pyvips.Image.thumbnail_buffer(
        source.data,
        step.size.width,
        height=step.size.height,
        size="force",
        option_string=",".join(options),
    )
    return to_srgb(image)


def jpeg_shrink(source: Source, size: Size) -> int:
    """The largest JPEG decoding scale, 1/2, 1/4 or 1/8, that still leaves at least
    ``size``: the DCT decodes that much less (Pillow's draft mode, as thumbor runs it).
    libvips' thumbnail keeps twice the size before its final resize, so it decoded a
    2400-pixel photo in full for an 800-pixel result: a third of the CPU more (bench/README.md,
    "Transforms under load"). 1 for other formats, or when no scale leaves enough."""
    if source.format != "jpeg":
        return 1
    factor = min(source.size.width / size.width, source.size.height / size.height)
    return next((shrink for shrink in (8, 4, 2) if factor >= shrink), 1)


def to_srgb(image: pyvips.Image) -> pyvips.Image:
    """Colour from the embedded ICC profile (a phone's Display P3, Adobe RGB, a printer's
    CMYK) converted to sRGB, on the already scaled image. Not through thumbnail's
    ``export_profile``: for an image with no profile that doubles the CPU of a 400-pixel
    JPEG (libvips 8.18), and converts nothing. An image with no profile is taken as sRGB,
    as browsers take it; one whose profile libvips cannot read, likewise."""
    if not image.get_typeof("icc-profile-data"):
        return image
    try:
        return image.icc_transform("srgb", embedded=True)
    except pyvips.Error:
        return image


def needs_memory(step: Step) -> bool:
    return isinstance(step, RANDOM_ACCESS) or (isinstance(step, Crop) and step.smart is not None)


def apply(step: Step, pages: list[pyvips.Image]) -> list[pyvips.Image]:
    """One step over every frame (a smartcrop is found on the first, so frames stay
    aligned)."""
    match step:
        case Crop(size=size, smart=smart) if smart is not None:
            first = pages[0]
            found = first.smartcrop(size.width, size.height, interesting=smart)
            # libvips records where the region came from as the result's (negated) offset.
            left = min(max(0, -found.xoffset), first.width - size.width)
            top = min(max(0, -found.yoffset), first.height - size.height)
            return [page.extract_area(left, top, size.width, size.height) for page in pages]
        case Crop(size=size, x=x, y=y):
            first = pages[0]
            left = offset(first.width, size.width, x)
            top = offset(first.height, size.height, y)
            return [page.extract_area(left, top, size.width, size.height) for page in pages]
        case Resize(size=size):
            return [
                page.thumbnail_image(size.width, height=size.height, size="force") for page in pages
            ]
        case Rotate(angle=angle):
            return [page.rot(ROTATIONS[angle]) for page in pages]
        case Mirror(horizontal=horizontal, vertical=vertical):
            if horizontal:
                pages = [page.flip("horizontal") for page in pages]
            if vertical:
                pages = [page.flip("vertical") for page in pages]
            return pages
        case Grayscale():
            return [page.colourspace("b-w") for page in pages]
        case Blur(sigma=sigma):
            return [blurred(page, sigma) for page in pages]
        case Sharpen():
            return [
                page.sharpen(
                    sigma=step.sigma, x1=step.x1, y2=step.y2, y3=step.y3, m1=step.m1, m2=step.m2
                )
                for page in pages
            ]
    raise AssertionError(f"no such step: {step!r}")


def offset(length: int, keep: int, side: int) -> int:
    """Where a ``keep``-long region starts on a ``length``-long side: 0, centred, or last."""
    return {-1: 0, 0: (length - keep) // 2, 1: length - keep}[side]


def blurred(page: pyvips.Image, sigma: float) -> pyvips.Image:
    """Gaussian blur; with alpha, on premultiplied colour, so transparent pixels' colour
    does not bleed into the visible ones."""
    if not page.hasalpha():
        return page.gaussblur(sigma)
    out = page.premultiply().gaussblur(sigma).unpremultiply().cast(page.format)
    return out.copy(interpretation=page.interpretation)


def encode(pages: list[pyvips.Image], output: OutputFormat, quality: int) -> bytes:
    """The frames as one image of ``output``, 8-bit sRGB (or gray), metadata stripped."""
    image = pages[0] if len(pages) == 1 else joined(pages)
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb").cast("uchar")
    match output:
        case "jpeg":
            if image.hasalpha():  # JPEG has no transparency: white shows through
                image = image.flatten(background=[255] * (image.bands - 1))
            data = image.jpegsave_buffer(Q=quality, optimize_coding=True, keep="none")
        case "png":
            # Adaptive filtering (libpng's default, Pillow's too): half the bytes of
            # libvips' default (none) for 6% more CPU (bench/transform.py).
            data = image.pngsave_buffer(filter="all", keep="none")
        case "webp":
            data = image.webpsave_buffer(Q=quality, effort=WEBP_EFFORT, keep="none")
        case "avif":
            data = image.heifsave_buffer(
                Q=quality, compression="av1", effort=AVIF_EFFORT, keep="none"
            )
        case "gif":
            data = image.gifsave_buffer(keep="none")
    return bytes(data)


def joined(pages: list[pyvips.Image]) -> pyvips.Image:
    """Frames stacked as libvips keeps an animation: one tall image, ``page-height`` each."""
    image = pyvips.Image.arrayjoin(pages, across=1).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", pages[0].height)
    image.set_type(pyvips.GValue.gint_type, "n-pages", len(pages))
    if image.get_typeof("delay"):
        image.set_type(pyvips.GValue.array_int_type, "delay", image.get("delay")[: len(pages)])
    return image

"""A transform as ordered steps over one image: pure arithmetic, no libvips, so every size
and crop position the spec defines is checked here without decoding anything.

The spec states the geometry in the *user's frame*: the source made upright by its EXIF
orientation, then turned by ``rotate``, then mirrored by ``flip``; ``w``, ``h`` and
``crop`` refer to that. Decoding is cheapest the other way round (imgproxy's order too):
scale while loading (shrink-on-load), crop, and only then turn and mirror the small
result. So the plan computes sizes in the user's frame and maps them back to the upright
frame: sizes swap under a quarter turn, and a crop side (``top``, ``left``...) goes
through the inverse of the flip and of the rotation. Scaling and cropping commute with
quarter turns and mirrors, and the filters are isotropic, so the result is the same.

Steps, in the order they run:

    Load(size)          decode, upright, scaled to ``size`` (shrink-on-load)
    Crop(size, side)    keep a ``size`` region, on a side or by libvips' smartcrop
    Resize(size)        scale the region up (covers larger than the source only)
    Rotate, Mirror      ``rotate``, then ``flip``
    Grayscale, Blur, Sharpen

Rounding is half up (``round(w*dpr)`` with ``w=333, dpr=1.5`` is 500), done on exact
fractions so a plan never depends on floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from edge.transform.types import OutputFormat, Transform

Side = int  # -1: low (left, top), 0: centre, 1: high (right, bottom)
Smart = Literal["attention", "entropy"]

#: AVIF outputs are scaled down to fit these first (the spec's bound).
AVIF_MAX_PIXELS = 8_000_000
AVIF_MAX_SIDE = 4000

#: crop -> (x, y) side in the user's frame.
SIDES: dict[str, tuple[Side, Side]] = {
    "center": (0, 0),
    "top": (0, -1),
    "bottom": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
    "top-left": (-1, -1),
    "top-right": (1, -1),
    "bottom-left": (-1, 1),
    "bottom-right": (1, 1),
    "attention": (0, 0),
    "entropy": (0, 0),
}
SMART: dict[str, Smart] = {"attention": "attention", "entropy": "entropy"}


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def turned(self, quarter: bool) -> Size:
        return Size(self.height, self.width) if quarter else self


@dataclass(frozen=True, slots=True)
class Load:
    """Decode the source made upright, scaled to exactly ``size`` (libvips' thumbnail: JPEG
    and WebP shrink while decoding, SVG renders at that size)."""

    size: Size


@dataclass(frozen=True, slots=True)
class Crop:
    """Keep a ``size`` region: on a side (``x``, ``y``), or where libvips' smartcrop finds
    the most salient (``attention``) or busiest (``entropy``) region."""

    size: Size
    x: Side = 0
    y: Side = 0
    smart: Smart | None = None


@dataclass(frozen=True, slots=True)
class Resize:
    size: Size


@dataclass(frozen=True, slots=True)
class Rotate:
    angle: int  # clockwise: 90, 180 or 270


@dataclass(frozen=True, slots=True)
class Mirror:
    horizontal: bool
    vertical: bool


@dataclass(frozen=True, slots=True)
class Grayscale:
    pass


@dataclass(frozen=True, slots=True)
class Blur:
    sigma: float  # output pixels


@dataclass(frozen=True, slots=True)
class Sharpen:
    """libvips' unsharp mask (``sharpen``), on lightness (L* of CIELAB) with a radius of
    ``sigma`` = 1 output pixel. For ``sharpen=v``, a pixel's difference from its blurred
    neighbourhood is added back ``m1 = v/100`` times where the image is flat (a difference
    of at most ``x1`` = 2 L*: texture, noise) and ``m2 = v/20`` times at edges (``v=60`` is
    libvips' default, 3), so the change grows in proportion to ``v`` (measured: the mean
    change of a photo's pixels is linear in ``v``); no pixel gets more than ``y2`` = 10 L*
    lighter or ``y3`` = 20 L* darker, so halos stay faint."""

    sigma: float
    m1: float
    m2: float
    x1: float = 2.0
    y2: float = 10.0
    y3: float = 20.0

    @classmethod
    def of(cls, value: int) -> Sharpen:
        return cls(sigma=1.0, m1=value / 100, m2=value / 20)


Step = Load | Crop | Resize | Rotate | Mirror | Grayscale | Blur | Sharpen


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    output: Size  # pixels of the encoded image (one frame)

    @property
    def load(self) -> Load:
        first = self.steps[0]
        assert isinstance(first, Load)
        return first


def nearest(value: Fraction) -> int:
    """Round half up, at least 1 (no side of an image is 0 pixels)."""
    return max(1, math.floor(value + Fraction(1, 2)))


def make_plan(upright: Size, transform: Transform, output: OutputFormat) -> Plan:
    """The steps that turn a source of ``upright`` size (after its EXIF orientation) into
    what ``transform`` asks for, encoded as ``output``."""
    quarter = transform.rotate in (90, 270)
    source = upright.turned(quarter)  # the user's frame
    box, cover = target(source, transform)
    if output == "avif":
        box = avif_bounded(box)
    if cover:
        x, y = SIDES[transform.crop]
        geometry = covering(source, box, x, y, SMART.get(transform.crop))
    else:
        geometry = [Load(box)]
    steps: list[Step] = [upright_step(step, transform) for step in geometry]
    if transform.rotate:
        steps.append(Rotate(transform.rotate))
    if transform.flip:
        steps.append(Mirror(transform.flip in ("h", "both"), transform.flip in ("v", "both")))
    if transform.grayscale:
        steps.append(Grayscale())
    if transform.blur:
        steps.append(Blur(transform.blur / 2))
    if transform.sharpen:
        steps.append(Sharpen.of(transform.sharpen))
    return Plan(tuple(steps), box)


def target(source: Size, transform: Transform) -> tuple[Size, bool]:
    """The output size in the user's frame, and whether it is reached by cover (scale to
    fill, crop the excess) rather than by scaling the whole image to it."""
    dpr = Fraction(transform.dpr)
    width, height, aspect = transform.w, transform.h, transform.aspect
    sw, sh = source.width, source.height
    if width is not None and height is not None:
        box = Size(nearest(width * dpr), nearest(height * dpr))
        if transform.fit == "cover":
            return box, True
        if transform.fit == "fill":
            return box, False
        scale = min(Fraction(box.width, sw), Fraction(box.height, sh))
        if transform.fit == "scale-down":
            scale = min(scale, Fraction(1))
        return Size(nearest(sw * scale), nearest(sh * scale)), False
    if width is not None:
        out = nearest(width * dpr)
        if aspect is not None:
            return Size(out, nearest(out / aspect)), True
        return Size(out, nearest(Fraction(out * sh, sw))), False
    if height is not None:
        out = nearest(height * dpr)
        if aspect is not None:
            return Size(nearest(out * aspect), out), True
        return Size(nearest(Fraction(out * sw, sh)), out), False
    if aspect is not None:  # the largest region of that ratio, at the source's scale
        if Fraction(sw, sh) > aspect:
            return Size(min(sw, nearest(sh * aspect)), sh), True
        return Size(sw, min(sh, nearest(sw / aspect))), True
    return source, False


def avif_bounded(box: Size) -> Size:
    """``box`` scaled down, keeping its ratio, to at most 8 megapixels and 4000 a side."""
    scale = min(1.0, AVIF_MAX_SIDE / max(box.width, box.height))
    scale = min(scale, math.sqrt(AVIF_MAX_PIXELS / box.pixels))
    if scale >= 1:
        return box
    return Size(max(1, math.floor(box.width * scale)), max(1, math.floor(box.height * scale)))


def covering(source: Size, box: Size, x: Side, y: Side, smart: Smart | None) -> list[Step]:
    """Cover ``box``: scale until the image fills it, keep the region ``x``, ``y`` (or
    smartcrop) says. Shrinking scales while loading, then crops; enlarging crops the
    region at the source's scale first, then scales it up, so no step ever holds more
    pixels than the source or the output."""
    if source == box:
        return [Load(source)]
    sw, sh = source.width, source.height
    scale = max(Fraction(box.width, sw), Fraction(box.height, sh))
    if scale <= 1:
        scaled = Size(max(box.width, nearest(sw * scale)), max(box.height, nearest(sh * scale)))
        return [Load(scaled)] if scaled == box else [Load(scaled), Crop(box, x, y, smart)]
    if sw * box.height > sh * box.width:  # the source is wider than the box
        region = Size(min(sw, nearest(Fraction(sh * box.width, box.height))), sh)
    else:
        region = Size(sw, min(sh, nearest(Fraction(sw * box.height, box.width))))
    steps: list[Step] = [Load(source)]
    if region != source:
        steps.append(Crop(region, x, y, smart))
    steps.append(Resize(box))
    return steps


def upright_step(step: Step, transform: Transform) -> Step:
    """A geometry step of the user's frame, in the upright frame it runs in."""
    quarter = transform.rotate in (90, 270)
    if isinstance(step, Load):
        return Load(step.size.turned(quarter))
    if isinstance(step, Resize):
        return Resize(step.size.turned(quarter))
    if isinstance(step, Crop):
        x, y = step.x, step.y
        if transform.flip in ("h", "both"):  # undo the mirror...
            x = -x
        if transform.flip in ("v", "both"):
            y = -y
        match transform.rotate:  # ...then the clockwise turn
            case 90:
                x, y = y, -x
            case 180:
                x, y = -x, -y
            case 270:
                x, y = -y, x
        return Crop(step.size.turned(quarter), x, y, step.smart)
    return step

"""What a transform asks for, as the engine reads it, and the output formats it can write.

The engine reads its own frozen dataclass, defaults filled and ``aspect`` a ratio;
:func:`adapt` turns the URL parser's :class:`edge.transform_params.Transform` (or any
object with those attributes: strings or numbers, ``None`` for "not given") into it.
The parameters' vocabularies (``Fit``, ``Crop``, ``Flip``) are the parser's. Values
are assumed canonical (the parser refuses the others); the engine re-checks only
what would make its arithmetic wrong, raising ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, cast, get_args

from edge.transform_params import Crop, Fit, Flip

OutputFormat = Literal["jpeg", "png", "webp", "avif", "gif"]

#: The requested file's extension decides the output format (the spec's table).
FORMATS: dict[str, OutputFormat] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".avif": "avif",
    ".gif": "gif",
}
MEDIA_TYPES: dict[OutputFormat, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
ASPECTS: dict[str, Fraction | None] = {
    "original": None,
    "1:1": Fraction(1),
    "4:3": Fraction(4, 3),
    "16:9": Fraction(16, 9),
    "3:2": Fraction(3, 2),
    "21:9": Fraction(21, 9),
}
DPRS = (1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True, slots=True)
class Transform:
    """The spec's parameters, defaults filled in. ``preset`` is resolved by the parser
    before the engine sees the transform; the engine ignores it."""

    w: int | None = None
    h: int | None = None
    fit: Fit = "cover"
    aspect: Fraction | None = None  # width / height; None for "original" or not given
    q: int = 80
    dpr: float = 1.0
    crop: Crop = "center"
    grayscale: bool = False
    blur: int = 0
    sharpen: int = 0
    rotate: int = 0  # clockwise degrees; "auto" is 0
    flip: Flip | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("w", self.w, 1, 10000),
            ("h", self.h, 1, 10000),
            ("q", self.q, 1, 100),
            ("blur", self.blur, 0, 100),
            ("sharpen", self.sharpen, 0, 100),
        ):
            if value is not None and not low <= value <= high:
                raise ValueError(f"{name}={value} is outside {low} to {high}")
        if self.dpr not in DPRS or self.rotate not in (0, 90, 180, 270):
            raise ValueError(f"dpr={self.dpr} or rotate={self.rotate} is not canonical")
        if self.fit not in get_args(Fit) or self.crop not in get_args(Crop):
            raise ValueError(f"fit={self.fit!r} or crop={self.crop!r} is not canonical")
        if self.flip not in (None, *get_args(Flip)):
            raise ValueError(f"flip={self.flip!r} is not canonical")


def adapt(given: object) -> Transform:
    """The engine's :class:`Transform` from any object with the spec's attribute names
    (the URL parser's, a preset's), each a canonical string, a number or None."""
    if isinstance(given, Transform):
        return given

    def field(name: str) -> object:
        return getattr(given, name, None)

    def number(name: str) -> int | None:
        value = field(name)
        return None if value is None else int(cast(int | str, value))

    aspect = field("aspect")
    rotate = field("rotate")
    dpr = field("dpr")
    grayscale = field("grayscale")
    return Transform(
        w=number("w"),
        h=number("h"),
        fit=cast(Fit, field("fit") or "cover"),
        aspect=aspect if isinstance(aspect, Fraction) else ASPECTS[str(aspect or "original")],
        q=number("q") or 80,
        dpr=1.0 if dpr is None else float(cast(float | str, dpr)),
        crop=cast(Crop, field("crop") or "center"),
        grayscale=grayscale in (True, "true"),
        blur=number("blur") or 0,
        sharpen=number("sharpen") or 0,
        rotate=0 if rotate in (None, "auto") else int(cast(int | str, rotate)),
        flip=cast(Flip | None, field("flip") or None),
        preset=cast(str | None, field("preset")),
    )

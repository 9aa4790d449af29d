"""The pictures of docs/transforms.md, made by the engine itself from the demo's sample
photo: ``python docs/transforms/pictures.py`` rewrites them (PNG, so what is shown is
the engine's output, not a second lossy encoding of it)."""

from __future__ import annotations

from fractions import Fraction
from importlib.resources import files
from pathlib import Path

from edge.transform import Transform, render

HERE = Path(__file__).parent
PICTURES = {
    "original": Transform(w=160),
    "cover": Transform(w=100, h=100),
    "cover-left": Transform(w=100, h=100, crop="left"),
    "cover-attention": Transform(w=100, h=100, crop="attention"),
    "contain": Transform(w=100, h=100, fit="contain"),
    "fill": Transform(w=100, h=100, fit="fill"),
    "aspect": Transform(w=160, aspect=Fraction(16, 9)),
    "rotate": Transform(w=100, rotate=90),
    "flip": Transform(w=160, flip="h"),
    "grayscale": Transform(w=160, grayscale=True),
    "blur": Transform(w=160, blur=6),
    "sharpen": Transform(w=160, sharpen=100),
}


def main() -> None:
    photo = files("edge").joinpath("samples/mountains.jpg").read_bytes()
    for name, transform in PICTURES.items():
        (HERE / f"{name}.png").write_bytes(render(photo, transform, "png").data)


if __name__ == "__main__":
    main()

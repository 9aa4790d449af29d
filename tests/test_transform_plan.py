"""The plan: the spec's geometry as sizes and steps, checked without decoding anything."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.transform import Transform, adapt
from edge.transform.plan import (
    Blur,
    Crop,
    Grayscale,
    Load,
    Mirror,
    Resize,
    Rotate,
    Sharpen,
    Size,
    make_plan,
)

SOURCE = Size(3000, 2000)


def output(transform: Transform, source: Size = SOURCE, fmt: str = "jpeg") -> Size:
    return make_plan(source, transform, fmt).output  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("transform", "size"),
    [
        (Transform(), (3000, 2000)),
        (Transform(w=300), (300, 200)),
        (Transform(h=100), (150, 100)),
        (Transform(w=333, dpr=1.5), (500, 333)),  # 499.5 rounds half up
        (Transform(w=300, dpr=3), (900, 600)),
        (Transform(w=300, fit="contain"), (300, 200)),  # fit does not matter with only w
        (Transform(w=300, aspect=Fraction(1)), (300, 300)),
        (Transform(h=90, aspect=Fraction(16, 9)), (160, 90)),
        (Transform(w=200, h=200), (200, 200)),
        (Transform(w=200, h=200, aspect=Fraction(16, 9)), (200, 200)),  # ignored with both
        (Transform(w=200, h=200, fit="contain"), (200, 133)),
        (Transform(w=200, h=200, fit="fill"), (200, 200)),
        (Transform(w=200, h=200, fit="scale-down"), (200, 133)),
        (Transform(w=9000, h=9000, fit="scale-down"), (3000, 2000)),  # never larger
        (Transform(w=9000, h=9000, fit="contain"), (9000, 6000)),  # contain may enlarge
        (Transform(w=100, h=100, dpr=2), (200, 200)),
        (Transform(aspect=Fraction(1)), (2000, 2000)),  # the largest square
        (Transform(aspect=Fraction(21, 9)), (3000, 1286)),
        (Transform(w=300, rotate=90), (300, 450)),  # w of the turned image
        (Transform(w=300, h=100, rotate=270), (300, 100)),
    ],
)
def test_output_sizes_follow_the_spec(transform: Transform, size: tuple[int, int]) -> None:
    assert output(transform) == Size(*size)


@pytest.mark.parametrize(
    ("box", "bounded"),
    [((3000, 2000), (3000, 2000)), ((5000, 2500), (4000, 2000)), ((4000, 4000), (2828, 2828))],
)
def test_avif_is_scaled_down_to_8_megapixels_and_4000_a_side(
    box: tuple[int, int], bounded: tuple[int, int]
) -> None:
    plan = make_plan(Size(*box), Transform(), "avif")
    assert plan.output == Size(*bounded)
    assert plan.output.pixels <= 8_000_000 and max(bounded) <= 4000


def test_a_smaller_cover_scales_while_loading_then_crops() -> None:
    plan = make_plan(SOURCE, Transform(w=200, h=200, crop="left"), "jpeg")
    assert plan.steps == (Load(Size(300, 200)), Crop(Size(200, 200), -1, 0))


def test_a_larger_cover_crops_at_the_source_scale_then_enlarges() -> None:
    """No step holds more pixels than the source or the output (a 10000x10000 cover of a
    3000x2000 source would otherwise first scale it to 15000x10000)."""
    plan = make_plan(SOURCE, Transform(w=10000, h=10000), "jpeg")
    assert plan.steps == (Load(SOURCE), Crop(Size(2000, 2000), 0, 0), Resize(Size(10000, 10000)))


def test_a_cover_of_the_same_ratio_only_scales() -> None:
    assert make_plan(SOURCE, Transform(w=300, h=200), "jpeg").steps == (Load(Size(300, 200)),)


def test_shrink_on_load_is_asked_for_the_size_the_output_needs() -> None:
    assert make_plan(SOURCE, Transform(w=300), "jpeg").load == Load(Size(300, 200))
    assert make_plan(SOURCE, Transform(w=300, h=100, fit="fill"), "jpeg").load == Load(
        Size(300, 100)
    )


@pytest.mark.parametrize(
    ("rotate", "flip", "crop", "side"),
    [
        (0, None, "top-left", (-1, -1)),
        (90, None, "top", (-1, 0)),  # the top of a turned image was its left
        (90, None, "right", (0, -1)),
        (180, None, "top-left", (1, 1)),
        (270, None, "top", (1, 0)),
        (0, "h", "left", (1, 0)),  # mirrored: the left was the right
        (0, "v", "top", (0, 1)),
        (90, "h", "left", (0, -1)),  # undo the mirror, then the turn
    ],
)
def test_crop_sides_are_mapped_back_through_flip_and_rotate(
    rotate: int, flip: str | None, crop: str, side: tuple[int, int]
) -> None:
    plan = make_plan(SOURCE, adapt_(w=100, h=100, rotate=rotate, flip=flip, crop=crop), "png")
    crops = [step for step in plan.steps if isinstance(step, Crop)]
    assert (crops[0].x, crops[0].y) == side


def adapt_(**fields: object) -> Transform:
    return adapt(type("Parsed", (), fields)())


def test_steps_run_in_the_spec_order_after_the_geometry() -> None:
    plan = make_plan(
        SOURCE, Transform(w=100, rotate=90, flip="both", grayscale=True, blur=10, sharpen=50), "png"
    )
    assert plan.steps[1:] == (
        Rotate(90),
        Mirror(True, True),
        Grayscale(),
        Blur(5.0),
        Sharpen(sigma=1.0, m1=0.5, m2=2.5),
    )
    assert plan.load == Load(Size(150, 100))  # the upright source, before the turn


def test_sharpen_strength_grows_linearly() -> None:
    assert Sharpen.of(1) == Sharpen(sigma=1.0, m1=0.01, m2=0.05)
    assert Sharpen.of(60).m2 == pytest.approx(3.0)  # libvips' default edge strength
    assert Sharpen.of(100) == Sharpen(sigma=1.0, m1=1.0, m2=5.0)


def test_adapt_reads_the_parser_s_strings() -> None:
    parsed = adapt_(
        w="800", h=None, fit="contain", aspect="16:9", q=None, dpr="1.5", crop=None,
        grayscale="true", blur="0", sharpen=None, rotate="auto", flip="h", preset="thumb",
    )  # fmt: skip
    assert parsed == Transform(
        w=800, fit="contain", aspect=Fraction(16, 9), dpr=1.5, grayscale=True, flip="h",
        preset="thumb",
    )  # fmt: skip
    assert adapt_(aspect="original").aspect is None


@pytest.mark.parametrize(
    "fields", [{"w": 0}, {"w": 10001}, {"q": 0}, {"dpr": 2.5}, {"rotate": 45}, {"fit": "Cover"}]
)
def test_non_canonical_values_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="is"):
        Transform(**fields)  # type: ignore[arg-type]


@given(
    source=st.builds(Size, st.integers(1, 5000), st.integers(1, 5000)),
    w=st.none() | st.integers(1, 10000),
    h=st.none() | st.integers(1, 10000),
    fit=st.sampled_from(["cover", "contain", "fill", "scale-down"]),
    aspect=st.none() | st.sampled_from([Fraction(1), Fraction(16, 9), Fraction(21, 9)]),
    dpr=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    rotate=st.sampled_from([0, 90, 180, 270]),
)
def test_every_plan_ends_at_its_output_size_within_the_source_and_output_bounds(
    source: Size,
    w: int | None,
    h: int | None,
    fit: str,
    aspect: Fraction | None,
    dpr: float,
    rotate: int,
) -> None:
    transform = Transform(w=w, h=h, fit=fit, aspect=aspect, dpr=dpr, rotate=rotate)  # type: ignore[arg-type]
    plan = make_plan(source, transform, "png")
    size = plan.load.size
    for step in plan.steps[1:]:
        if isinstance(step, Crop):
            assert step.size.width <= size.width and step.size.height <= size.height
            size = step.size
        elif isinstance(step, Resize):
            size = step.size
        elif isinstance(step, Rotate):
            size = size.turned(step.angle != 180)
    assert size == plan.output
    largest = max(source.pixels, plan.output.pixels)
    assert plan.load.size.pixels <= largest  # shrink-on-load never asks for more
    if w is not None and h is not None and fit in ("cover", "fill"):
        assert plan.output == Size(int(w * dpr + 0.5), int(h * dpr + 0.5))

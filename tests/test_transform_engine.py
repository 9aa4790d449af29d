"""The engine, judged by decoding what it encodes: sizes, formats, and where colours land."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import pyvips

from edge.transform import OutputFormat, Transform, render
from edge.transform.plan import Size
from edge.transform_params import Crop, Flip
from tests.support.transform_images import (
    change_x,
    change_y,
    colour,
    corners,
    decoded,
    encoded,
    flat,
    quadrants,
    tagged,
)

QUAD = encoded(quadrants(300, 200))  # PNG: exact colours in
PORTRAIT = encoded(quadrants(200, 300))
UPRIGHT = ("red", "green", "blue", "yellow")


def out(
    transform: Transform, source: bytes = QUAD, fmt: OutputFormat = "png"
) -> tuple[pyvips.Image, bytes]:
    rendered = render(source, transform, fmt)
    image = decoded(rendered.data)
    assert (image.width, image.height) == (rendered.width, rendered.height)
    return image, rendered.data


@pytest.mark.parametrize(
    ("transform", "size"),
    [
        (Transform(), (300, 200)),
        (Transform(w=150), (150, 100)),
        (Transform(h=50, dpr=2), (150, 100)),
        (Transform(w=33, dpr=1.5), (50, 33)),
        (Transform(w=100, h=100, fit="contain"), (100, 67)),
        (Transform(w=600, h=100, fit="scale-down"), (150, 100)),
        (Transform(w=900, h=900, fit="scale-down"), (300, 200)),
        (Transform(w=600, h=600, fit="contain"), (600, 400)),
        (Transform(aspect=Fraction(1)), (200, 200)),
        (Transform(w=120, aspect=Fraction(3, 2)), (120, 80)),
    ],
)
def test_sizes_keep_the_picture_whole(transform: Transform, size: tuple[int, int]) -> None:
    image, _ = out(transform)
    assert (image.width, image.height) == size
    if transform.aspect is None:
        assert corners(image) == UPRIGHT
        assert abs(change_x(image) - image.width / 2) <= 1


def test_fill_stretches_to_the_box() -> None:
    image, _ = out(Transform(w=100, h=100, fit="fill"))
    assert (image.width, image.height, change_x(image), change_y(image)) == (100, 100, 50, 50)


@pytest.mark.parametrize(
    ("crop", "red_until"),
    [
        ("left", 75),
        ("top-left", 75),
        ("center", 50),
        ("top", 50),
        ("right", 25),
        ("bottom-right", 25),
    ],
)
def test_cover_crops_a_wide_source_on_the_side_asked(crop: Crop, red_until: int) -> None:
    """300x200 covering 100x100: scaled to 150x100, then 100 columns kept; red (the left
    half, 75 columns once scaled) ends where the kept region says."""
    image, _ = out(Transform(w=100, h=100, crop=crop))
    assert (image.width, image.height) == (100, 100)
    assert change_x(image) == red_until and change_y(image) == 50


@pytest.mark.parametrize(("crop", "red_until"), [("top", 75), ("center", 50), ("bottom", 25)])
def test_cover_crops_a_tall_source_on_the_side_asked(crop: Crop, red_until: int) -> None:
    image, _ = out(Transform(w=100, h=100, crop=crop), PORTRAIT)
    assert change_y(image) == red_until and change_x(image) == 50


@pytest.mark.parametrize(("crop", "red_until"), [("left", 300), ("center", 200), ("right", 100)])
def test_a_cover_larger_than_the_source_crops_then_enlarges(crop: Crop, red_until: int) -> None:
    image, _ = out(Transform(w=400, h=400, crop=crop))
    assert (image.width, image.height) == (400, 400)
    assert abs(change_x(image) - red_until) <= 1


@pytest.mark.parametrize(("crop", "red_until"), [("left", 150), ("center", 100), ("right", 50)])
def test_aspect_alone_keeps_the_largest_region_at_the_source_scale(
    crop: Crop, red_until: int
) -> None:
    image, _ = out(Transform(aspect=Fraction(1), crop=crop))
    assert (image.width, image.height, change_x(image)) == (200, 200, red_until)


@pytest.mark.parametrize("crop", ["attention", "entropy"])
def test_smart_crops_find_the_busy_region(crop: Crop) -> None:
    """A flat grey field with a small busy, saturated patch near its right edge."""
    field = flat((128, 128, 128), 400, 100)
    patch = pyvips.Image.gaussnoise(40, 40, sigma=60, seed=3).cast("uchar")
    patch = patch.bandjoin([patch.linear(0.2, 0), patch.linear(0.2, 0)]).cast("uchar")
    source = encoded(field.insert(patch.copy(interpretation="srgb"), 340, 30))
    image, _ = out(Transform(w=100, h=100, crop=crop), source)
    busy = image.extract_area(40, 30, 60, 40).deviate()
    assert busy > 20, "the patch is in the kept region"
    centred, _ = out(Transform(w=100, h=100), source)
    assert centred.deviate() < 1


@pytest.mark.parametrize(
    ("rotate", "flip", "seen"),
    [
        (90, None, ("blue", "red", "yellow", "green")),
        (180, None, ("yellow", "blue", "green", "red")),
        (270, None, ("green", "yellow", "red", "blue")),
        (0, "h", ("green", "red", "yellow", "blue")),
        (0, "v", ("blue", "yellow", "red", "green")),
        (0, "both", ("yellow", "blue", "green", "red")),
        (90, "h", ("red", "blue", "green", "yellow")),  # turned, then mirrored
    ],
)
def test_rotate_then_flip(rotate: int, flip: Flip | None, seen: tuple[str, ...]) -> None:
    image, _ = out(Transform(w=100, rotate=rotate, flip=flip))
    assert (image.width, image.height) == ((100, 150) if rotate in (90, 270) else (100, 67))
    assert corners(image) == seen


def test_crop_sides_name_the_turned_image_s_sides() -> None:
    """Turned 90 degrees, the 300x200 source is 200x300 (blue over red on the left half);
    its top 100 of 150 rows after scaling keep 75 rows of blue."""
    top, _ = out(Transform(w=100, h=100, rotate=90, crop="top"))
    bottom, _ = out(Transform(w=100, h=100, rotate=90, crop="bottom"))
    assert colour(top, 2, 2) == "blue" and change_y(top) == 75
    assert colour(bottom, 2, 2) == "blue" and change_y(bottom) == 25


@pytest.mark.parametrize(("orientation", "turn"), [(3, "d180"), (6, "d270"), (8, "d90")])
def test_exif_orientation_comes_out_upright(orientation: int, turn: str) -> None:
    """Stored turned, with the EXIF orientation that shows it upright (as cameras do)."""
    stored = quadrants(300, 200).rot(turn).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    source = encoded(stored, "jpeg", Q=95)
    assert decoded(source).get("orientation") == orientation
    image, _ = out(Transform(w=150), source, "jpeg")
    assert (image.width, image.height) == (150, 100)
    assert corners(image) == UPRIGHT
    assert not image.get_typeof("orientation") or image.get("orientation") == 1
    flipped, _ = out(Transform(w=150, flip="h"), source)
    assert corners(flipped) == ("green", "red", "yellow", "blue")


def test_grayscale_leaves_no_colour() -> None:
    image, _ = out(Transform(w=100, grayscale=True), QUAD, "jpeg")
    pixels = image.colourspace("srgb")
    assert all(max(p) - min(p) <= 2 for p in (pixels.getpoint(5, 5), pixels.getpoint(95, 60)))
    assert abs(pixels.getpoint(5, 5)[0] - pixels.getpoint(95, 5)[0]) > 50  # tones are kept


def test_blur_sigma_is_half_the_value_in_output_pixels() -> None:
    sharp, _ = out(Transform(w=150))
    blurred, _ = out(Transform(w=150, blur=20))
    expected = sharp.gaussblur(10)
    assert (blurred - expected).abs().max() <= 2
    assert blurred.getpoint(70, 20) != sharp.getpoint(70, 20)
    assert blurred.getpoint(30, 20) == sharp.getpoint(30, 20)  # 4.5 sigmas off the edge


def test_blur_keeps_transparent_colour_from_bleeding() -> None:
    clear = flat((255, 0, 0, 0), 100, 100)  # red, but fully transparent
    source = encoded(clear.insert(flat((0, 0, 255, 255), 50, 100), 50, 0))
    image, _ = out(Transform(blur=20), source)
    assert image.getpoint(55, 50)[0] < 2, "no red from the invisible half"


def test_sharpen_grows_with_its_value_and_steepens_edges() -> None:
    soft = encoded(quadrants(300, 200).gaussblur(2))
    plain, _ = out(Transform(), soft)
    sharpened = {v: out(Transform(sharpen=v), soft)[0] for v in (10, 50, 100)}
    change = [(image.cast("float") - plain).abs().avg() for image in sharpened.values()]
    assert 0 < change[0] < change[1] < change[2]

    def steepness(image: pyvips.Image) -> float:
        row = [float(image.getpoint(x, 20)[1]) for x in range(140, 160)]
        return max(abs(a - b) for a, b in itertools.pairwise(row))

    assert steepness(plain) < steepness(sharpened[50]) < steepness(sharpened[100])


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
@pytest.mark.parametrize("source_format", ["jpeg", "png", "webp", "avif", "gif"])
def test_every_format_round_trips(fmt: OutputFormat, source_format: str) -> None:
    source = encoded(quadrants(120, 80), source_format)
    rendered = render(source, Transform(w=60), fmt)
    image = decoded(rendered.data)
    assert image.get("vips-loader") == f"{'heif' if fmt == 'avif' else fmt}load_buffer"
    assert (image.width, image.height) == (60, 40)
    assert corners(image) == UPRIGHT
    assert rendered.media_type == f"image/{fmt}"


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_lossy_outputs_only(fmt: OutputFormat) -> None:
    noisy = pyvips.Image.gaussnoise(200, 200, sigma=40, seed=1).cast("uchar")
    source = encoded(noisy.bandjoin([noisy, noisy]).copy(interpretation="srgb"))
    low = render(source, Transform(q=10), fmt).data
    high = render(source, Transform(q=90), fmt).data
    assert len(low) < len(high) * 0.7
    lossless: tuple[OutputFormat, ...] = ("png", "gif")
    for other in lossless:
        assert (
            render(source, Transform(q=10), other).data
            == render(source, Transform(q=90), other).data
        )


def test_transparency_is_kept_where_the_format_has_it_and_white_in_jpeg() -> None:
    source = encoded(flat((0, 0, 255, 0), 40, 40).insert(flat((255, 0, 0, 255), 20, 40), 20, 0))
    png, _ = out(Transform(), source, "png")
    assert png.getpoint(5, 5)[3] == 0 and png.getpoint(35, 5)[3] == 255
    jpeg, _ = out(Transform(), source, "jpeg")
    assert colour(jpeg, 5, 5) == "white" and colour(jpeg, 35, 5) == "red"


METADATA = {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"}


@pytest.mark.parametrize("source_format", ["jpeg", "png"])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_metadata_is_stripped_and_colour_converted_to_srgb(
    source_format: str, fmt: OutputFormat
) -> None:
    source = tagged(source_format)
    kept = decoded(source)
    fields = set(kept.get_fields())
    assert {"exif-data", "xmp-data", "icc-profile-data"} <= fields
    assert kept.get("exif-ifd3-GPSLatitudeRef").startswith("N")
    assert "iptc-data" in fields if source_format == "jpeg" else "png-comment-1-Comment" in fields
    assert abs(kept.getpoint(5, 5)[0] - 200) > 5, "P3 numbers differ from sRGB's"

    rendered = render(source, Transform(w=32), fmt)
    image = decoded(rendered.data)
    fields = set(image.get_fields())
    assert not fields & METADATA
    assert not [f for f in fields if "comment" in f or f.startswith("exif-")]
    for marker in (b"Exif", b"eXIf", b"xmpmeta", b"ICC_PROFILE", b"iCCP", b"Someone"):
        assert marker not in rendered.data, marker
    if fmt != "gif":  # a GIF's palette may move a colour more than a few levels
        pixel = image.getpoint(16, 16)
        assert all(abs(a - b) <= 6 for a, b in zip(pixel[:3], (200, 100, 50), strict=True))


def test_cmyk_jpeg_comes_out_rgb() -> None:
    cmyk = flat((200, 100, 50), 32, 32).icc_export(output_profile="cmyk")
    assert cmyk.interpretation == "cmyk"
    image, _ = out(Transform(), encoded(cmyk, "jpeg", keep="none"), "png")
    assert image.bands == 3 and image.interpretation == "srgb"
    assert colour(image, 5, 5) in ("red", "yellow")  # an orange, near enough


def test_sixteen_bit_sources_come_out_eight_bit() -> None:
    deep = (quadrants(60, 40).cast("ushort") * 257).copy(interpretation="rgb16")
    image, _ = out(Transform(w=30), encoded(deep), "png")
    assert image.format == "uchar" and corners(image) == UPRIGHT


def test_output_size_is_reported_per_frame() -> None:
    rendered = render(QUAD, Transform(w=30), "png")
    assert (rendered.width, rendered.height, rendered.frames) == (30, 20, 1)
    assert Size(rendered.width, rendered.height).pixels == 600


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_a_one_pixel_output_is_still_an_image(fmt: OutputFormat) -> None:
    image, _ = out(Transform(w=1, h=1), QUAD, fmt)
    assert (image.width, image.height) == (1, 1)

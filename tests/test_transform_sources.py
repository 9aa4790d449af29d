"""Sources with more than one picture in them: animations (frames kept or the first one),
and SVG (rasterised, with no external resource ever fetched or read)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from edge.errors import UnprocessableImage
from edge.transform import Limits, OutputFormat, Transform, render
from edge.transform_params import Crop
from tests.support.transform_images import (
    animation,
    colour,
    corners,
    decoded,
    encoded,
    flat,
    quadrants,
)

FRAME_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def frames(width: int = 60, height: int = 40) -> list[pyvips.Image]:
    """Three frames: a quadrant image, then the same with its left half red, green, blue."""
    return [
        quadrants(width, height).insert(flat(c, width // 2, height), 0, 0) for c in FRAME_COLOURS
    ]


def animated(fmt: str = "gif") -> bytes:
    return encoded(animation(frames(), [100, 200, 300]), fmt)


@pytest.mark.parametrize("source_format", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_an_animation_into_gif_or_webp_keeps_every_frame(
    source_format: str, fmt: OutputFormat
) -> None:
    rendered = render(animated(source_format), Transform(w=30), fmt)
    image = decoded(rendered.data, n=-1)
    assert (rendered.width, rendered.height, rendered.frames) == (30, 20, 3)
    assert image.get("n-pages") == 3 and image.get("page-height") == 20
    assert image.get("delay") == [100, 200, 300] and image.get("loop") == 0
    left = [colour(image, 3, 20 * i + 10) for i in range(3)]
    assert left == ["red", "green", "blue"]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "avif"])
def test_an_animation_into_a_still_format_is_its_first_frame(fmt: OutputFormat) -> None:
    rendered = render(animated(), Transform(w=30), fmt)
    image = decoded(rendered.data)
    assert (image.width, image.height, rendered.frames) == (30, 20, 1)
    assert colour(image, 3, 10) == "red" and colour(image, 27, 3) == "green"


@pytest.mark.parametrize(
    "limits",
    [
        Limits(max_frames=2),
        Limits(max_source_pixels=2 * 60 * 40),  # one frame fits, three do not
        Limits(max_output_pixels=2 * 30 * 20),
    ],
)
def test_an_animation_over_a_limit_is_its_first_frame(limits: Limits) -> None:
    rendered = render(animated(), Transform(w=30), "gif", limits)
    assert rendered.frames == 1
    assert decoded(rendered.data, n=-1).get("n-pages") == 1


def test_each_frame_is_cropped_turned_and_mirrored_alike() -> None:
    """Cover 20x20 on the left, turned 90 degrees, mirrored: the same geometry per frame."""
    rendered = render(animated(), Transform(w=20, h=20, crop="top", rotate=90, flip="v"), "gif")
    image = decoded(rendered.data, n=-1)
    assert (image.get("n-pages"), image.get("page-height"), image.width) == (3, 20, 20)
    for i, left in enumerate(["red", "green", "blue"]):
        page = image.extract_area(0, 20 * i, 20, 20)
        # Turned, the left half is on top; mirrored top-bottom, at the bottom; the right
        # half (green over yellow) turned is yellow | green, and on top.
        assert (colour(page, 10, 17), colour(page, 3, 2), colour(page, 17, 2)) == (
            left,
            "yellow",
            "green",
        )


@pytest.mark.parametrize("crop", ["attention", "entropy"])
def test_a_smart_crop_keeps_frames_aligned(crop: Crop) -> None:
    rendered = render(animated(), Transform(w=20, h=20, crop=crop), "webp")
    image = decoded(rendered.data, n=-1)
    assert (image.get("n-pages"), image.get("page-height"), image.width) == (3, 20, 20)


SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">
<rect width="50" height="50" fill="#f00"/><rect x="50" width="50" height="50" fill="#00f"/>
</svg>"""


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_svg_is_rasterised_at_the_size_asked(fmt: OutputFormat) -> None:
    rendered = render(SVG, Transform(w=400), fmt)
    image = decoded(rendered.data)
    assert (image.width, image.height) == (400, 200)
    assert colour(image, 10, 100) == "red" and colour(image, 390, 100) == "blue"


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    """A web server on loopback that counts every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = encoded(flat((0, 255, 0), 10, 10))
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def never_opened(path: Path, render_it: threading.Thread) -> bool:
    """Whether ``render_it`` finished without opening ``path``, a FIFO: opening one for
    reading blocks until a writer comes, so a render that tried would still be waiting;
    we then unblock it by writing, and report it."""
    render_it.join(10)
    if not render_it.is_alive():
        return True
    with open(path, "wb"):  # let the stuck reader go
        pass
    render_it.join(10)
    return False


def test_svg_references_are_never_fetched_nor_read(
    web: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, hits = web
    secret = tmp_path / "secret"
    os.mkfifo(secret)
    svg = f"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:xi="http://www.w3.org/2001/XInclude" width="100" height="100">
<style>@import url({base}/style.css); rect {{ fill: url({base}/paint.svg#p) }}</style>
<rect width="100" height="100" fill="white"/>
<image href="{base}/remote.png" x="0" y="0" width="50" height="50"/>
<image xlink:href="file://{secret}" x="50" y="0" width="50" height="50"/>
<image href="{secret}" x="0" y="50" width="50" height="50"/>
<use href="{base}/sprite.svg#a"/>
<text x="60" y="80"><xi:include href="file://{secret}" parse="text"/></text>
</svg>""".encode()
    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(render(svg, Transform(), "png").data))
    thread.start()
    assert never_opened(secret, thread), "librsvg opened a local file the SVG named"
    assert hits == [], "an SVG made edge fetch a URL"
    image = decoded(results[0])
    assert all(colour(image, x, y) != "green" for x, y in ((25, 25), (75, 25), (25, 75)))


def test_an_svg_external_entity_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "entity"
    os.mkfifo(secret)
    svg = f"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY leak SYSTEM "file://{secret}">]>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&leak;</text></svg>"""
    errors: list[UnprocessableImage] = []

    def attempt() -> None:
        try:
            render(svg.encode(), Transform(), "png")
        except UnprocessableImage as error:
            errors.append(error)

    thread = threading.Thread(target=attempt)
    thread.start()
    assert never_opened(secret, thread)
    assert errors and "leak" in errors[0].reason  # refused: the entity is left undefined


def test_a_huge_svg_is_refused_by_its_declared_size() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>'
    with pytest.raises(UnprocessableImage, match="over EDGE_TRANSFORM_MAX_SOURCE_PIXELS"):
        render(svg, Transform(w=10), "png")


def test_corners_of_the_first_frame_are_the_quadrants() -> None:
    """The frames' right half is the quadrant image's: green over yellow."""
    image = decoded(render(animated(), Transform(), "png").data)
    assert corners(image)[1:] == ("green", "red", "yellow")

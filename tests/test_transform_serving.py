"""Transforms served by a real uvicorn, on a folder and on S3: each parameter's effect on
the decoded output (where the quadrants' colours land), formats by extension, EXIF made
upright and stripped, variant caching and revalidation, visibility, limits as 422."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
import pyvips

from edge.samples import CANARY
from edge.signing import sign_url
from tests.support.client import TLS
from tests.support.servers import BUCKET
from tests.support.transform_images import (
    corners,
    decoded,
    encoded,
    png_bomb,
    quadrants,
    tagged,
)
from tests.support.world import World, on_every_store_cached

#: The serving behaviour suite: on every store (tests/support/world.py), the hot cache on (a
#: variant is made from a source read whole, so no range nor 304 of storage is at stake).
pytest_generate_tests = on_every_store_cached

UPRIGHT = ("red", "green", "blue", "yellow")

#: URL query -> (width, height, corners) of the 300x200 quadrant PNG's output.
GEOMETRY: dict[str, tuple[int, int, tuple[str, ...] | None]] = {
    "w=100": (100, 67, UPRIGHT),
    "h=50": (75, 50, UPRIGHT),
    "w=100&h=100&fit=fill": (100, 100, UPRIGHT),
    "w=100&h=100&fit=contain": (100, 67, UPRIGHT),
    "w=1000&h=1000&fit=scale-down": (300, 200, UPRIGHT),
    "w=100&dpr=2": (200, 133, UPRIGHT),
    "w=100&dpr=1.5": (150, 100, UPRIGHT),
    "aspect=1:1": (200, 200, UPRIGHT),
    "w=120&aspect=16:9": (120, 68, UPRIGHT),
    "w=100&h=200&crop=left": (100, 200, ("red", "red", "blue", "blue")),
    "w=100&h=200&crop=right": (100, 200, ("green", "green", "yellow", "yellow")),
    "w=300&h=50&crop=top": (300, 50, ("red", "green", "red", "green")),
    "w=300&h=50&crop=bottom": (300, 50, ("blue", "yellow", "blue", "yellow")),
    "w=100&h=200&crop=top-left": (100, 200, ("red", "red", "blue", "blue")),
    "w=300&h=50&crop=bottom-right": (300, 50, ("blue", "yellow", "blue", "yellow")),
    "w=100&rotate=90": (100, 150, ("blue", "red", "yellow", "green")),
    "w=100&rotate=180": (100, 67, ("yellow", "blue", "green", "red")),
    "w=100&rotate=270": (100, 150, ("green", "yellow", "red", "blue")),
    "w=100&rotate=auto": (100, 67, UPRIGHT),
    "w=100&flip=h": (100, 67, ("green", "red", "yellow", "blue")),
    "w=100&flip=v": (100, 67, ("blue", "yellow", "red", "green")),
    "w=100&flip=both": (100, 67, ("yellow", "blue", "green", "red")),
    "w=100&rotate=90&flip=h": (100, 150, ("red", "blue", "green", "yellow")),
}


def get(client: httpx.Client, url: str, **headers: str) -> httpx.Response:
    return client.get(
        url, headers={name.replace("_", "-"): value for name, value in headers.items()}
    )


def test_each_parameter_lands_the_colours_where_it_says(world: World) -> None:
    path = world.put("public", "alice", "q.png", encoded(quadrants(300, 200)))
    base = world.serve()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        for query, (width, height, seen) in GEOMETRY.items():
            answer = get(client, f"{path}?{query}")
            assert answer.status_code == 200, (query, answer.text)
            assert answer.headers["content-type"] == "image/png"
            image = decoded(answer.content)
            assert (image.width, image.height) == (width, height), query
            assert corners(image) == seen, query
        gray = decoded(get(client, f"{path}?w=100&grayscale=true").content)
        assert all(len(set(gray.getpoint(x, y)[:3])) == 1 for x, y in ((5, 5), (95, 60)))
        plain = decoded(get(client, f"{path}?w=100").content)
        blurred = decoded(get(client, f"{path}?w=100&blur=20").content)
        assert plain.getpoint(45, 10)[:3] == [255, 0, 0]
        assert blurred.getpoint(45, 10)[1] > 40, "green bleeds over the red quadrant's edge"
        sharp = decoded(get(client, f"{path}?w=100&sharpen=100&blur=4").content)
        soft = decoded(get(client, f"{path}?w=100&blur=4").content)
        assert (sharp - soft).abs().max() > 10
        # the stored object, asked for as stored: its own bytes, untouched
        assert get(client, path).content == encoded(quadrants(300, 200))


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_formats_by_extension_and_quality(world: World) -> None:
    """The requested name's extension is the output format, from a source of any format."""
    source = encoded(quadrants(300, 200), "jpeg", Q=95)
    world.put("public", "alice", "q.jpg", source)
    for name in ("q.png", "q.webp", "q.avif", "q.gif", "q.jpeg"):
        world.put("public", "alice", name, source)  # each named for its format, JPEG inside
    base = world.serve()
    loaders = {
        "jpg": "jpegload",
        "jpeg": "jpegload",
        "png": "pngload",
        "webp": "webpload",
        "avif": "heifload",
        "gif": "gifload",
    }
    types = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "avif": "avif"}
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        for ext, loader in loaders.items():
            answer = get(client, f"/i/alice/q.{ext}?w=60")
            assert answer.status_code == 200, (ext, answer.text)
            assert answer.headers["content-type"] == f"image/{types.get(ext, ext)}"
            image = decoded(answer.content)
            assert image.get("vips-loader").startswith(loader), ext
            assert (image.width, image.height) == (60, 40)
            assert corners(image) == UPRIGHT, ext
        small = get(client, "/i/alice/q.jpg?w=200&q=10").content
        large = get(client, "/i/alice/q.jpg?w=200&q=95").content
        assert len(small) < len(large) / 2
        svg = get(client, "/i/alice/q.tiff?w=60")
        assert svg.status_code == 400 and svg.json()["error"]["code"] == "BAD_REQUEST"


def test_exif_upright_and_no_metadata_left(world: World) -> None:
    stored = quadrants(300, 200).rot("d270").copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)  # shown upright by viewers
    world.put("public", "alice", "turned.jpg", encoded(stored, "jpeg", Q=95))
    world.put("public", "alice", "tagged.jpg", tagged("jpeg"))
    base = world.serve()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        image = decoded(get(client, "/i/alice/turned.jpg?w=150").content)
        assert (image.width, image.height) == (150, 100)
        assert corners(image) == UPRIGHT
        for query in ("w=32", "w=32&q=90", "grayscale=false"):
            body = get(client, f"/i/alice/tagged.jpg?{query}").content
            out = decoded(body)
            assert not [f for f in out.get_fields() if f.startswith(("exif", "xmp", "iptc"))]
            for marker in (b"Exif", b"GPS", b"xmpmeta", b"Someone"):
                assert marker not in body


def test_variants_are_cached_revalidated_and_ranged(world: World) -> None:
    path = world.put("public", "alice", "q.png", encoded(quadrants(300, 200)))
    base = world.serve()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        first = get(client, f"{path}?w=100")
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        assert first.headers["cache-control"] == "public, max-age=86400"
        source = get(client, path)
        assert first.headers["last-modified"] == source.headers["last-modified"]
        assert source.headers["etag"] != etag
        same = get(client, f"{path}?q=80&w=100&blur=0&v=3")  # one effective transform
        assert same.headers["etag"] == etag and same.content == first.content
        other = get(client, f"{path}?w=101")
        assert other.headers["etag"] != etag
        assert get(client, f"{path}?w=100&q=81").headers["etag"] != etag
        ranged = get(client, f"{path}?w=100", range="bytes=0-9")
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 0-9/{len(first.content)}"
        assert ranged.content == first.content[:10]
        head = client.head(f"{path}?w=100")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(first.content))
        assert get(client, f"{path}?w=100", if_none_match=etag).status_code == 304

    # A fresh process (nothing cached) answers a revalidation from the source's validators:
    # one HEAD of the source, no GET, no transform.
    fresh = world.serve(EDGE_CACHE_TTL="0")
    before = len(world.storage_reads())
    with httpx.Client(base_url=fresh, timeout=30, verify=TLS) as client:
        again = get(client, f"{path}?w=100", if_none_match=etag)
        assert again.status_code == 304
        assert again.headers["etag"] == etag and again.content == b""
    reads = world.storage_reads()[before:]
    assert reads and all(method == "HEAD" for method, _ in reads), reads


def private_variants(world: World) -> tuple[str, str, str]:
    """A served world with a private ``secret.png`` (the canary in it) and ``both.png``
    in both folders (300 x 200 private, 30 x 20 public): the edge's URL and ``w=100`` URLs
    of the two private ones signed for 300 s."""
    world.put("private", "alice", "secret.png", encoded(quadrants(300, 200)) + CANARY)
    world.put("private", "alice", "both.png", encoded(quadrants(300, 200)))
    world.put("public", "alice", "both.png", encoded(quadrants(30, 20)))
    exp = int(time.time()) + 300
    signed = sign_url("/i/alice/secret.png", key=world.key, exp=exp, transform="w=100")
    both = sign_url("/i/alice/both.png", key=world.key, exp=exp, transform="w=100")
    return world.serve(), signed, both


def test_private_variants_stay_private(world: World) -> None:
    base, signed, both = private_variants(world)
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        answer = get(client, signed)
        assert answer.status_code == 200
        assert decoded(answer.content).width == 100
        control = answer.headers["cache-control"]
        assert control.startswith("private, max-age=") and int(control.split("=")[1]) <= 300
        for unsigned in ("/i/alice/secret.png?w=100", "/i/alice/secret.webp?w=100"):
            refused = get(client, unsigned)
            assert refused.status_code == 404 and CANARY not in refused.content
        # signed: the private source; unsigned: the public one, each cached apart
        assert decoded(get(client, both).content).height == 67
        public = get(client, "/i/alice/both.png?w=100")
        assert public.headers["cache-control"].startswith("public")
        assert decoded(public.content).height == 67
        assert get(client, both).headers["cache-control"].startswith("private")
        wider = signed.replace("w=100", "w=2000")
        assert get(client, wider).status_code == 403


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_remembered_variant_keys_never_open_a_private_variant(world: World) -> None:
    """Each request's variant keys are remembered (edge.image.variant_keys) with both folders'
    keys: asked unsigned before and after a signed request made the private variant, and
    with a forged signature, the private one is never answered."""
    base, signed, both = private_variants(world)
    at = signed.index("sig=") + 4
    forged = signed[:at] + ("B" if signed[at] == "A" else "A") + signed[at + 1 :]
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        public = get(client, "/i/alice/both.png?w=100")  # unsigned first: the public variant
        assert get(client, "/i/alice/secret.png?w=100").status_code == 404
        made = get(client, signed)
        assert made.status_code == 200 and made.headers["cache-control"].startswith("private")
        private = get(client, both)
        assert private.content != public.content
        for _ in range(2):  # the second from the memo and the hot cache
            for method in ("GET", "HEAD"):
                refused = client.request(method, "/i/alice/secret.png?w=100")
                assert refused.status_code == 404 and CANARY not in refused.content
            assert get(client, forged).status_code == 403
            again = get(client, "/i/alice/both.png?w=100")
            assert again.content == public.content
            assert again.headers["cache-control"].startswith("public")
            assert get(client, both).content == private.content
            assert get(client, signed).content == made.content


def test_unprocessable_sources_are_422_and_the_server_goes_on(world: World) -> None:
    good = world.put("public", "alice", "good.png", encoded(quadrants(300, 200)))
    world.put("public", "alice", "bomb.png", png_bomb(20000, 20000))
    world.put("public", "alice", "cut.jpg", encoded(quadrants(300, 200), "jpeg")[:400])
    world.put("public", "alice", "page.jpg", b"<!doctype html><script>alert(1)</script>")
    world.put("public", "alice", "big.png", encoded(quadrants(300, 200)))
    base = world.serve(EDGE_TRANSFORM_MAX_SOURCE_BYTES="1KiB")
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        for name in ("bomb.png", "cut.jpg", "page.jpg", "big.png"):
            for query in ("w=100", "w=100&fit=contain&h=50"):
                answer = get(client, f"/i/alice/{name}?{query}")
                assert answer.status_code == 422, (name, answer.text)
                assert answer.json()["error"]["code"] == "UNPROCESSABLE_IMAGE"
        tiny = world.put("public", "alice", "tiny.png", encoded(quadrants(30, 20)))
        assert get(client, f"{tiny}?w=10").status_code == 200
        assert get(client, f"{good}").status_code == 200, "stored objects are still served"


def transforms_made(base: str, output: str, outcome: str) -> float:
    """Transforms the server ran (its metrics, read at /metrics from loopback)."""
    metrics = httpx.get(f"{base}/metrics", timeout=30, verify=TLS).text
    labels = f'format="{output}",outcome="{outcome}"'
    found = re.search(rf"edge_transform_duration_seconds_count\{{{labels}\}} (\S+)", metrics)
    return 0.0 if found is None else float(found.group(1))


def test_concurrent_requests_for_one_variant_make_it_once(world: World) -> None:
    path = world.put("public", "alice", "q.png", encoded(quadrants(300, 200)))
    base = world.serve(EDGE_CACHE_TTL="60")  # concurrent requests share one made variant
    world.slow_storage(0.3)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30, verify=TLS) as client:
            return await asyncio.gather(*(client.get(f"{path}?w=77") for _ in range(8)))

    answers = asyncio.run(burst())
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    gets = [key for method, key in world.storage_reads() if method == "GET"]
    assert gets == ["public/alice/q.png"]
    assert transforms_made(base, "png", "ok") == 1


def test_signed_mode_and_bare_hosts(world: World) -> None:
    path = world.put("public", "alice", "q.png", encoded(quadrants(300, 200)))
    world.put("private", "alice", "p.png", encoded(quadrants(300, 200)) + CANARY)
    base = world.serve(EDGE_TRANSFORMS="signed", EDGE_BARE_HOSTS="cdn.example.com")
    exp = int(time.time()) + 300
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        unsigned = get(client, f"{path}?w=100")
        assert unsigned.status_code == 403
        assert unsigned.json()["error"]["code"] == "SIGNATURE_INVALID"
        signed = sign_url(path, key=world.key, exp=exp, transform="w=100")
        assert decoded(get(client, signed).content).width == 100
        assert get(client, f"{path}?w=100").status_code == 403, "cached: still signed only"
        assert get(client, path).content == encoded(quadrants(300, 200))
        # the short form on a bare host, with the same signature
        bare = {"host": "cdn.example.com"}
        assert client.get("/alice/q.png", headers=bare).content == encoded(quadrants(300, 200))
        assert decoded(client.get(signed[2:], headers=bare).content).width == 100
        private = sign_url("/i/alice/p.png", key=world.key, exp=exp)
        assert CANARY in client.get(private[2:], headers=bare).content
        assert client.get("/alice/p.png", headers=bare).status_code == 404
        assert client.get("/healthz", headers=bare).status_code == 200
        # any other host keeps /i/ only
        assert client.get("/alice/q.png", headers={"host": "other.example"}).status_code == 404


def test_presets_from_storage(world: World, caplog: pytest.LogCaptureFixture) -> None:
    path = world.put("public", "alice", "q.png", encoded(quadrants(300, 200)))
    world.put("presets", "alice", "thumb.json", b'{"w": 100, "h": 100.0, "fit": "fill", "q": 70}')
    world.put("presets", "alice", "gray.json", b'{"w": 60, "grayscale": true}')
    world.put("presets", "alice", "bad.json", b'{"w": "0800"}')
    world.put("presets", "alice", "nested.json", b'{"p:thumb": ""}')
    world.put("presets", "alice", "list.json", b"[1, 2]")
    base = world.serve()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        thumb = decoded(get(client, f"{path}?p:thumb").content)
        assert (thumb.width, thumb.height) == (100, 100)
        overridden = decoded(get(client, f"{path}?p:thumb&w=50").content)
        assert (overridden.width, overridden.height) == (50, 100)
        gray = decoded(get(client, f"{path}?p:gray").content)
        assert gray.width == 60 and len(set(gray.getpoint(5, 5)[:3])) == 1
        with caplog.at_level("WARNING", logger="edge"):
            for name in ("missing", "bad", "nested", "list"):
                answer = get(client, f"{path}?p:{name}")
                assert answer.status_code == 400, name
                assert answer.json()["error"]["code"] == "BAD_REQUEST"
        logged = caplog.text
        assert "presets/alice/bad.json is malformed" in logged
        assert "a preset cannot name another preset" in logged
        assert "presets/alice/missing.json" not in logged, "an unknown preset is not an error"


def listings(world: World) -> int:
    """Listing requests that reached storage so far."""
    if world.counting is not None:
        return len(world.counting.listings)
    assert world.moto is not None
    bucket = f"/{BUCKET}"
    return sum(1 for r in world.moto.seen if r.method == "GET" and r.path in (bucket, bucket + "/"))


def test_conversions_are_made_from_a_sibling(world: World) -> None:
    photo = encoded(quadrants(300, 200), "jpeg", Q=95)
    world.put("public", "alice", "photo.jpg", photo)
    world.put("public", "alice", "both.jpg", encoded(quadrants(30, 20), "jpeg"))
    world.put("public", "alice", "both.png", encoded(quadrants(60, 40)))  # preferred
    world.put("public", "alice", "photo.old.png", encoded(quadrants(10, 10)))
    world.put("private", "alice", "hidden.jpg", photo + CANARY)
    base = world.serve(EDGE_CACHE_TTL="60")  # a made conversion is kept
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        before = listings(world)
        webp = get(client, "/i/alice/photo.webp")
        assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"
        assert listings(world) == before + 1, "one listing of public/ for the unsigned request"
        image = decoded(webp.content)
        assert (image.width, image.height, corners(image)) == (300, 200, UPRIGHT)
        assert get(client, "/i/alice/photo.webp").content == webp.content
        assert listings(world) == before + 1, "the conversion is cached"
        avif = get(client, "/i/alice/photo.avif?w=100")
        assert avif.headers["content-type"] == "image/avif"
        assert decoded(avif.content).width == 100
        assert get(client, "/i/alice/photo.jpeg?w=90").headers["content-type"] == "image/jpeg"
        assert decoded(get(client, "/i/alice/both.webp").content).width == 60
        assert get(client, "/i/alice/photo.jpg").content == photo, "stored bytes, as stored"
        # nothing to make it from: 404, also for a private source and an unsigned request
        for missing in ("/i/alice/none.webp", "/i/alice/hidden.webp", "/i/alice/photo.tiff"):
            answer = get(client, missing)
            assert answer.status_code == 404, missing
            assert CANARY not in answer.content
        exp = int(time.time()) + 300
        signed = sign_url("/i/alice/hidden.webp", key=world.key, exp=exp)
        before = listings(world)
        hidden = get(client, signed)
        assert hidden.status_code == 200 and hidden.headers["content-type"] == "image/webp"
        assert hidden.headers["cache-control"].startswith("private")
        assert listings(world) == before + 1, "found in private/: public/ is not listed"
        unsigned = get(client, "/i/alice/hidden.webp")  # the private conversion is cached
        assert unsigned.status_code == 404 and CANARY not in unsigned.content


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_an_svg_is_rasterised_under_an_output_name(world: World) -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
        b'<rect width="20" height="20" fill="red"/><rect x="20" width="20" height="20" '
        b'fill="blue"/></svg>'
    )
    world.put("public", "alice", "logo.svg", svg)
    base = world.serve()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        assert get(client, "/i/alice/logo.svg").content == svg, "as stored, untransformed"
        answer = get(client, "/i/alice/logo.png?w=400")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        image = decoded(answer.content)
        assert (image.width, image.height) == (400, 200)
        assert corners(image) == ("red", "blue", "red", "blue")
        refused = get(client, "/i/alice/logo.svg?w=100")
        assert refused.status_code == 400, "no transform writes SVG"


def test_concurrent_requests_for_an_unprocessable_variant_fail_once(world: World) -> None:
    world.put("public", "alice", "cut.jpg", encoded(quadrants(300, 200), "jpeg")[:400])
    base = world.serve(EDGE_CACHE_TTL="60")  # concurrent requests share one failure
    world.slow_storage(0.3)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30, verify=TLS) as client:
            return await asyncio.gather(*(client.get("/i/alice/cut.jpg?w=50") for _ in range(6)))

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [422] * 6
    assert {a.json()["error"]["code"] for a in answers} == {"UNPROCESSABLE_IMAGE"}
    assert transforms_made(base, "jpeg", "unprocessable") == 1, "the followers share the 422"


def noise(width: int, height: int) -> bytes:
    """A PNG that does not compress: its variants are megabytes."""
    bands = [pyvips.Image.gaussnoise(width, height, mean=128, sigma=60) for _ in range(3)]
    return encoded(bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb"))


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_a_reader_that_stops_a_large_variant_is_cut_off(world: World) -> None:
    """A variant is held in memory: it goes out a chunk at a time, each within the send
    timeout, so a client that stops reading holds a chunk for half a second, not
    megabytes for as long as it likes."""
    world.put("public", "alice", "noise.png", noise(700, 700))
    world.send_buffer = 16384  # the variant cannot all wait in the kernel
    base = world.serve(EDGE_SEND_TIMEOUT="0.5")
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        length = len(get(client, "/i/alice/noise.png?q=80").content)
    assert length > 1024 * 1024
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.sendall(b"GET /i/alice/noise.png?q=80 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = len(conn.recv(1024))
        time.sleep(2.5)  # reads nothing: the server gives up meanwhile
        conn.settimeout(10)
        while chunk := conn.recv(65536):
            received += len(chunk)
    assert received < length, "the connection was cut, not the whole variant sent"


def test_odd_names_and_presets_are_client_errors(world: World) -> None:
    world.put("public", "alice", "UP.JPG", encoded(quadrants(300, 200), "jpeg"))
    deep = b"[" * 1500 + b"]" * 1500
    world.put("presets", "alice", "deep.json", deep)
    world.put("public", "alice", "noise.png", noise(300, 300))
    base = world.serve(EDGE_TRANSFORM_MAX_OUTPUT_BYTES="64KiB")
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        upper = get(client, "/i/alice/UP.JPG?w=30")
        assert upper.status_code == 200 and upper.headers["content-type"] == "image/jpeg"
        nested = get(client, "/i/alice/UP.JPG?p:deep")
        assert nested.status_code == 400 and nested.json()["error"]["code"] == "BAD_REQUEST"
        large = get(client, "/i/alice/noise.png?q=80")
        assert large.status_code == 422, "over EDGE_TRANSFORM_MAX_OUTPUT_BYTES"
        assert get(client, "/i/alice/noise.png?w=40").status_code == 200


def test_a_source_with_odd_characters_is_found(world: World) -> None:
    """The listing of a name with ``+``, a space and ``%``: moto encodes its keys as asked
    (``encoding-type=url``), s3rver sends them as XML text without saying so; each is read
    as its listing says."""
    world.put("public", "alice", "a+b c%41.jpg", encoded(quadrants(30, 20), "jpeg"))
    world.put("public", "alice", "a+b c%41.png.jpg", encoded(quadrants(8, 8), "jpeg"))
    base = world.serve()
    response = httpx.get(base + "/i/alice/a+b%20c%2541.webp", timeout=30, verify=TLS)
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert decoded(response.content).width == 30

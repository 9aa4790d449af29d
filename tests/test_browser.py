"""Real headless Chromium renders edge's images from a page on another origin.

Asserted from the page (natural sizes, canvas pixels) and from the edge's side
(what each request was answered); the screenshot is kept in tests/artifacts/.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import pyvips
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.app import Edge
from edge.samples import png
from edge.signing import sign_url
from tests.support.artifacts import ARTIFACTS
from tests.support.servers import run_uvicorn
from tests.support.world import World

BROWSER_DIR = Path(__file__).parent / "browser"
DISC = [250, 215, 110, 255]  # the colour of the disc png() draws at (0.7 w, 0.35 h)


class Recorder:
    """ASGI middleware noting each request's path, query and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int, float]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                query = scope["query_string"].decode()
                self.seen.append((scope["path"], query, message["status"], time.time()))
            await send(message)

        await self.app(scope, receive, record)

    def statuses(self, path: str, *, query: str | None = None, after: float = 0) -> list[int]:
        return [
            status
            for seen_path, seen_query, status, when in self.seen
            if seen_path == path and (query is None or seen_query == query) and when >= after
        ]


#: Set on an image whose load failed: its ``error`` event fired.
ON_ERROR = "onerror=\"this.dataset.error='1'\""


def figure(edge: str, ident: str, url: str, caption: str, extra: str = "") -> str:
    return (
        f'<figure><img data-check id="{ident}" src="{html.escape(edge + url)}" {extra}'
        f' {ON_ERROR} alt="✗ {ident}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def transform_figures(edge: str, photo: str, signed: str, changed: str) -> str:
    """A srcset of widths, a <picture> of AVIF, WebP and JPEG made from one stored JPEG, and
    a signed private variant with its tampered twin."""
    stem = html.escape(edge + photo.removesuffix(".jpg"))
    srcset = ", ".join(f"{html.escape(edge + photo)}?w={w} {w}w" for w in (400, 800, 1200))
    return (
        f'<figure><img data-check id="widths" srcset="{srcset}" sizes="800px" {ON_ERROR}'
        ' style="width:240px" alt="✗ widths">'
        "<figcaption>srcset ?w=400, 800, 1200; sizes 800px: 800w</figcaption></figure>"
        f'<figure><picture><source type="image/avif" srcset="{stem}.avif?w=300">'
        f'<source type="image/webp" srcset="{stem}.webp?w=300">'
        f'<img data-check id="picture" src="{stem}.jpg?w=300" {ON_ERROR} alt="✗ picture">'
        "</picture><figcaption>&lt;picture&gt; of photo.jpg: AVIF</figcaption></figure>"
        + figure(edge, "variant", signed, "private, signed for w=40: loads")
        + figure(edge, "changed", changed, "the same, w=60: 403")
    )


PAGE_SCRIPT = """
<script>
window.addEventListener('load', () => {
  const images = [...document.querySelectorAll('img[data-check]')];
  const source = document.getElementById('canvas');
  const canvas = document.createElement('canvas');
  canvas.width = source.naturalWidth; canvas.height = source.naturalHeight;
  const holder = document.createElement('figure');
  holder.append(canvas, Object.assign(document.createElement('figcaption'), {textContent: 'canvas copy, pixels read back'}));
  document.body.appendChild(holder);
  let pixel;
  try {
    const ctx = canvas.getContext('2d');
    ctx.drawImage(source, 0, 0);
    pixel = [...ctx.getImageData(Math.floor(canvas.width * 0.7), Math.floor(canvas.height * 0.35), 1, 1).data];
  } catch (error) { pixel = 'tainted: ' + error.name; }
  window.__results = {
    images: Object.fromEntries(images.map((i) => [i.id, {w: i.naturalWidth, h: i.naturalHeight, src: i.currentSrc, error: i.dataset.error === '1'}])),
    pixel,
  };
  window.__done = true;
});
</script>
"""


def jpeg(data: bytes) -> bytes:
    """An image re-encoded as JPEG."""
    return bytes(pyvips.Image.new_from_buffer(data, "").jpegsave_buffer(Q=85))


def page(body: str) -> HTMLResponse:
    style = (
        "<style>body{font:14px sans-serif;background:#f3f4f6}figure{display:inline-block;"
        "margin:8px;padding:8px;background:#fff;min-width:140px;vertical-align:top}"
        "img{display:block;min-height:20px}</style>"
    )
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><title>edge</title>{style}{body}{PAGE_SCRIPT}"
    )


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_images_in_a_real_browser(world: World) -> None:
    node = shutil.which("node")
    assert node is not None, "node is missing: .ci/run installs it"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").exists(), (
        "run npm ci in tests/browser"
    )
    public = world.put("public", "web", "public.png", png(64, 48))
    private = world.put("private", "web", "private.png", png(80, 60, hue=1))
    sizes = {
        width: world.put("private", "web", f"hero-{width}.png", png(width, width * 2 // 3, hue=2))
        for width in (120, 240, 480)
    }
    short = world.put("private", "web", "short-lived.png", png(50, 50, hue=1))
    # The only object named photo: its .avif and .webp are conversions.
    photo = world.put("public", "web", "photo.jpg", jpeg(png(1200, 800)))
    now = int(time.time())
    # The short-lived URL is signed when the browser asks for the page, not before: a
    # browser slow to start (a loaded machine) must still see it valid at first.
    short_lived: dict[str, Any] = {}
    signed = world.sign(private)
    tampered = signed.replace("sig=", "sig=A").replace("&", "&x=1&", 1)
    srcset = ", ".join(f"{html.escape(world.sign(path))} {w}w" for w, path in sizes.items())
    variant = sign_url(private, key=world.key, exp=now + 600, transform="w=40")
    changed = variant.replace("?w=40&", "?w=60&")
    assert changed != variant

    recorder = Recorder(Edge(world.settings()))
    with run_uvicorn(recorder) as edge:
        srcset = ", ".join(f"{edge}{item}" for item in srcset.split(", "))

        async def main_page(_: object) -> HTMLResponse:
            if not short_lived:
                short_lived["exp"] = int(time.time()) + 5
                short_lived["url"] = world.sign(short, exp=short_lived["exp"])
            expires_at, short_url = short_lived["exp"], short_lived["url"]
            return page(
                f'<meta name="short-lived-exp" content="{expires_at}">'
                + "<h1>edge in Chromium</h1>"
                + figure(edge, "public", public, "public: loads")
                + figure(edge, "private", signed, "private, signed: loads")
                + figure(edge, "unsigned", private, "private, unsigned: 404")
                + figure(edge, "expired", world.sign(private, exp=now - 10), "expired: 403")
                + figure(edge, "tampered", tampered, "tampered: 403")
                + figure(
                    edge,
                    "canvas",
                    public,
                    "crossorigin, drawn to canvas",
                    'crossorigin="anonymous"',
                )
                + figure(edge, "short", short_url, f"signed until {expires_at}")
                + f'<figure><img data-check id="srcset" srcset="{srcset}" sizes="240px" alt="✗ srcset">'
                "<figcaption>srcset of 3 signed sizes: 240w</figcaption></figure>"
                + transform_figures(edge, photo, variant, changed)
            )

        async def expired_page(_: object) -> HTMLResponse:
            return page(
                figure(edge, "short", short_lived["url"], "the same URL after exp: fails")
                + figure(edge, "canvas", public, "public", 'crossorigin="anonymous"')
            )

        site = Starlette(routes=[Route("/", main_page), Route("/expired", expired_page)])
        with run_uvicorn(site) as site_url:
            ARTIFACTS.mkdir(exist_ok=True)
            config = ARTIFACTS / "browser-config.json"
            config.write_text(
                json.dumps(
                    {
                        "pageUrl": site_url + "/",
                        "expiredPageUrl": site_url + "/expired",
                        "screenshot": str(ARTIFACTS / "browser.png"),
                    }
                )
            )
            reload_started = time.time()
            done = subprocess.run(
                [node, str(BROWSER_DIR / "check.mjs"), str(config)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=BROWSER_DIR,
            )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    expires_at = short_lived["exp"]
    images = results["first"]["images"]
    assert (images["public"]["w"], images["public"]["h"]) == (64, 48)
    assert (images["private"]["w"], images["private"]["h"]) == (80, 60)
    for failed in ("unsigned", "expired", "tampered"):
        assert images[failed]["w"] == 0, failed
    assert results["first"]["pixel"] == DISC, "CORS lets the page read the canvas"
    assert images["srcset"]["w"] == 240 and "hero-240.png" in images["srcset"]["src"]
    assert images["short"]["w"] == 50

    widths = images["widths"]
    assert widths["src"].endswith(f"{photo}?w=800") and widths["w"] == 800, widths
    picture = images["picture"]
    assert picture["src"].endswith(photo.removesuffix(".jpg") + ".avif?w=300"), picture
    assert (picture["w"], picture["h"]) == (300, 200) and not picture["error"]
    avif = photo.removesuffix(".jpg") + ".avif"
    assert recorder.statuses(avif, query="w=300")[:1] == [200]
    assert not recorder.statuses(avif.removesuffix(".avif") + ".webp"), "one source fetched"
    assert (images["variant"]["w"], images["variant"]["h"]) == (40, 30)
    assert not images["variant"]["error"]
    assert images["changed"]["error"] and images["changed"]["w"] == 0
    assert set(recorder.statuses(private, query=changed.partition("?")[2])) == {403}
    for loaded in ("public", "private", "widths", "picture", "variant"):
        assert not images[loaded]["error"], loaded
    for failed in ("unsigned", "expired", "tampered"):
        assert images[failed]["error"], failed

    assert set(recorder.statuses(private, query="")) == {404}, "errors are no-store: refetched"
    assert 403 in recorder.statuses(private)
    assert all(status in (200, 304) for status in recorder.statuses(public))
    public_loads = recorder.statuses(public)
    assert public_loads[0] == 200
    assert all(status == 304 for status in public_loads[1:]), "a reload is cached or revalidated"
    reloaded = results["reload"]["images"]
    assert reloaded["public"]["w"] == 64 and reloaded["private"]["w"] == 80

    after = results["afterExpiry"]["images"]
    assert after["short"]["w"] == 0, "a private image is not kept past its exp"
    assert recorder.statuses(short, after=expires_at) == [403]
    assert after["canvas"]["w"] == 64
    assert reload_started < expires_at
    assert (ARTIFACTS / "browser.png").stat().st_size > 10_000

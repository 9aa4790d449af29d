"""auth_request mode: edge's verdict on the original URI, directly and behind real nginx."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from edge.samples import CANARY, png, svg
from tests.conftest import World
from tests.nginx import run_nginx
from tests.test_serving_edges import raw_get

PNG = png(32, 32)
SECRET = png(40, 30, hue=1) + CANARY


def verdict(base: str, uri: str, header: str = "x-original-uri", **extra: str) -> httpx.Response:
    headers = {header: uri, **{k.replace("_", "-"): v for k, v in extra.items()}}
    return httpx.get(base + "/auth", headers=headers)


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_auth_verdicts_without_storage(world: World) -> None:
    private = world.put("private", "alice", "secret.png", SECRET)
    base = world.serve(EDGE_PRIVATE_MAX_AGE="120")
    public = verdict(base, "/i/alice/photo.png?v=2")
    assert public.status_code == 200 and public.content == b""
    assert public.headers["x-edge-visibility"] == "public"
    assert public.headers["x-edge-cache-control"] == "public, max-age=86400"
    signed = verdict(base, world.sign(private), header="x-forwarded-uri")
    assert signed.headers["x-edge-visibility"] == "private"
    assert signed.headers["x-edge-cache-control"] == "private, max-age=120"
    for uri, code in [
        (world.sign(private).replace("sig=", "sig=x"), "SIGNATURE_INVALID"),
        (world.sign(private, exp=int(time.time()) - 1), "SIGNATURE_EXPIRED"),
        ("/i/alice/%2e%2e/bob/x.png", "BAD_REQUEST"),
        ("/i/alice", "BAD_REQUEST"),
    ]:
        denied = verdict(base, uri)
        assert denied.status_code == 403, uri
        assert denied.headers["x-edge-error"] == code
        assert denied.json() == {
            "error": {"code": code, "message": denied.json()["error"]["message"], "status": 403}
        }
    assert httpx.get(base + "/auth").headers["x-edge-error"] == "BAD_REQUEST"
    assert (
        verdict(base, "/i/alice/photo.png", x_original_method="POST").headers["x-edge-error"]
        == "METHOD_NOT_ALLOWED"
    )
    assert world.storage_reads() == [], "a verdict never touches storage"


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_nginx_serves_files_on_edges_verdict(world: World, tmp_path: Path) -> None:
    assert world.root is not None
    public = world.put("public", "alice", "photo.png", PNG)
    private = world.put("private", "alice", "secret.png", SECRET)
    both = world.put("public", "alice", "both.png", PNG)
    world.put("private", "alice", "both.png", SECRET)
    accented = world.put("private", "bob", "café au lait.png", SECRET)
    world.put("public", "alice", "logo.svg", svg())
    (world.root / "public" / "alice" / "leak.png").symlink_to(
        world.root / "private" / "alice" / "secret.png"
    )
    edge = world.serve()
    with run_nginx(
        "auth-request.conf",
        tmp_path / "nginx",
        upstreams=[edge.removeprefix("http://")],
        root=world.root,
    ) as base:
        ok = httpx.get(base + public)
        assert ok.status_code == 200 and ok.content == PNG
        assert ok.headers["cache-control"] == "public, max-age=86400"
        assert ok.headers["x-content-type-options"] == "nosniff"
        signed = httpx.get(base + world.sign(private))
        assert signed.status_code == 200 and signed.content == SECRET
        assert signed.headers["cache-control"].startswith("private, max-age=")
        assert httpx.get(base + world.sign(both)).content == SECRET
        assert httpx.get(base + both).content == PNG
        assert httpx.get(base + world.sign(accented)).content == SECRET
        svg_response = httpx.get(base + "/i/alice/logo.svg")
        assert svg_response.headers["content-security-policy"].startswith("default-src 'none'")
        for url, status, code in [
            (private, 404, None),
            ("/i/alice/leak.png", 404, None),
            (world.sign(private).replace("sig=", "sig=x"), 403, "SIGNATURE_INVALID"),
            (world.sign(private, exp=int(time.time()) - 1), 403, "SIGNATURE_EXPIRED"),
        ]:
            response = httpx.get(base + url)
            assert response.status_code == status, url
            assert CANARY not in response.content
            assert response.headers["cache-control"] == "no-store"
            if code:
                assert response.json()["error"]["code"] == code
                assert response.headers["x-edge-error"] == code
        status, _, body = raw_get(base, "/i/alice/%2e%2e/alice/secret.png")
        assert status in (400, 403) and CANARY not in body
        assert httpx.post(base + public).status_code == 403
    assert world.storage_reads() == [], "nginx read the files; edge only judged"

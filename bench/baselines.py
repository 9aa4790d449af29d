"""Baselines run in the same process model as edge (uvicorn, httptools, uvloop, one worker).

``bare`` is the Python ceiling: a raw ASGI app that answers every request with
the same bytes and edge's own response headers. ``afternoon`` is what a user
writes in an afternoon: a Starlette route that checks the HMAC and sends the file's
bytes. (Starlette's ``FileResponse`` did 0.09x the bare app here, its thread hops
being costly on one pinned core; reading the bytes is the stronger baseline.)
``thumbnail`` is libvips' ``thumbnail_buffer`` behind a bare ASGI app, what the
transform scenarios hold edge to. All read their setup from ``BENCH_*`` variables set
by the harness.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pyvips
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

_BODY = Path(os.environ.get("BENCH_BODY", "/dev/null")).read_bytes()
_HEADERS = [
    (name.encode(), value.encode())
    for name, value in json.loads(os.environ.get("BENCH_HEADERS", "[]"))
] + [(b"content-length", str(len(_BODY)).encode())]


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


_ROOT = Path(os.environ.get("BENCH_ROOT", "."))
_KEY = base64.urlsafe_b64decode(os.environ.get("BENCH_KEY", "") + "==")


async def image(request: Request) -> Response:
    path = request.url.path
    user, name = request.path_params["user"], request.path_params["name"]
    sig, exp = request.query_params.get("sig"), request.query_params.get("exp")
    if sig is None:
        file = _ROOT / "public" / user / name
    else:
        if exp is None or not exp.isdigit():
            return JSONResponse({"error": "bad exp"}, status_code=400)
        mac = hmac.new(_KEY, f"v1\n{path}\n{exp}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"=").decode(), sig):
            return JSONResponse({"error": "bad signature"}, status_code=403)
        if int(exp) < time.time():
            return JSONResponse({"error": "expired"}, status_code=403)
        file = _ROOT / "private" / user / name
    try:
        data = file.read_bytes()  # 16 KiB from the page cache: faster than FileResponse's threads
    except OSError:
        return JSONResponse({"error": "not found"}, status_code=404)
    return Response(data, media_type="image/png", headers={"cache-control": "public, max-age=3600"})


afternoon: Any = Starlette(routes=[Route("/i/{user}/{name}", image)])


# The bare pyvips app: ``/t/{name}?w=W[&h=H&crop=attention]&fmt=jpeg|webp|avif``, the
# transform stack used plainly: the file read, ``thumbnail_buffer``, the same saver and
# options as edge's engine (WebP effort 1, AVIF effort 2), in a thread pool of
# ``BENCH_THREADS`` (edge's pool size). libvips' own settings are left at their defaults
# (operation cache, concurrency).
_SOURCES = Path(os.environ.get("BENCH_SOURCES", "."))
_POOL = ThreadPoolExecutor(int(os.environ.get("BENCH_THREADS", "1")))
_TYPES = {"jpeg": b"image/jpeg", "webp": b"image/webp", "avif": b"image/avif"}


def _thumbnail(name: str, query: dict[str, str]) -> bytes:
    data = (_SOURCES / name).read_bytes()
    width = int(query["w"])
    if "h" in query:
        image = pyvips.Image.thumbnail_buffer(
            data, width, height=int(query["h"]), crop=query.get("crop", "centre")
        )
    else:
        image = pyvips.Image.thumbnail_buffer(data, width)
    match query.get("fmt", "jpeg"):
        case "webp":
            return bytes(image.webpsave_buffer(Q=80, effort=1, keep="none"))
        case "avif":
            return bytes(image.heifsave_buffer(Q=80, compression="av1", effort=2, keep="none"))
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    return bytes(image.jpegsave_buffer(Q=80, optimize_coding=True, keep="none"))


async def thumbnail(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    name = scope["path"].rpartition("/")[2]
    query = dict(parse_qsl(scope["query_string"].decode()))
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(_POOL, _thumbnail, name, query)
    kind = _TYPES[query.get("fmt", "jpeg")]
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""The API's ``POST /api/v1/images/{id}/signed-url``: a complete Starlette app that mints
signed URLs with this package. From the repository's folder:

    export EDGE_SIGNING_KEYS="$(.venv/bin/edge keygen --kid api)"
    .venv/bin/uvicorn --app-dir docs/examples signed_url_endpoint:app --port 8000

docs/recipes.md ("Minting URLs from an API endpoint") shows requests and answers. The
API owns the image records and who may see them (stand-ins below); the edge only checks
the signature, so the API must authorise the caller *before* signing.

The body is optional; when given, a JSON object with at most ``expires_in`` (whole
seconds, 60 to 86400 and at most ``EDGE_MAX_TTL``; default 3600) and ``transform`` (an
object of transform parameters, as in the URL: ``{"w": 200, "fit": "cover"}``). Every
refusal is an error in edge's shape: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.errors import BadTransform
from edge.settings import Settings
from edge.signing import sign_url

SETTINGS = Settings.from_env()  # the same EDGE_SIGNING_KEYS and EDGE_MAX_TTL as the edges
BASE_URL = "https://img.example.com"
DEFAULT_TTL = 3600
MIN_TTL, MAX_TTL = 60, 86400
FIELDS = ("expires_in", "transform")
#: A request body is a few dozen bytes; one this long is refused before it is parsed.
MAX_BODY_BYTES = 4096


@dataclass(frozen=True)
class Image:
    id: str
    owner: str
    file: str  # decoded, e.g. "albums/2026/café.png"
    private: bool


def find_image(image_id: str) -> Image | None:
    """Stand-in for the API's database."""
    demo = {"img_1": Image("img_1", "bob", "albums/2026/café.png", private=True)}
    return demo.get(image_id)


def may_view(user: str | None, image: Image) -> bool:
    """Stand-in for the API's authorisation: here, owners see their own images."""
    return user == image.owner


class Refused(Exception):
    """The request body is not what the endpoint takes; the message says why."""


async def signed_url(request: Request) -> JSONResponse:
    image = find_image(request.path_params["id"])
    user = request.headers.get("x-user")  # the API's real authentication goes here
    if image is None or not may_view(user, image):  # the same answer for both: no name leaks
        return error(404, "NOT_FOUND", "Image not found")
    try:
        ttl, transform = read_body(await read_bounded(request))
    except Refused as refused:
        return error(400, "BAD_REQUEST", str(refused))
    key = SETTINGS.signing_keys.signing_key
    if key is None:
        return error(503, "NOT_CONFIGURED", "No signing key is configured")
    exp = int(time.time()) + ttl
    path = f"/i/{image.owner}/{image.file}"
    try:
        url = BASE_URL + sign_url(path, key=key, exp=exp, transform=transform)
    except BadTransform as bad:  # the edge's own check of every transform parameter
        return error(400, "BAD_REQUEST", f"transform: {bad.reason}")
    return JSONResponse({"url": url, "expires_at": exp})


async def read_bounded(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(f"the body is over {MAX_BODY_BYTES} bytes")
    return body


def read_body(body: bytes) -> tuple[int, list[tuple[str, str]] | None]:
    """The lifetime and transform a request body asks for, or :class:`Refused`."""
    if not body.strip():
        return DEFAULT_TTL, None
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        raise Refused("the body must be a JSON object") from None
    if not isinstance(fields, dict):
        raise Refused("the body must be a JSON object")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise Refused(f"unknown field {unknown[0]!r}: the fields are {', '.join(FIELDS)}")
    return read_ttl(fields.get("expires_in", DEFAULT_TTL)), read_transform(fields.get("transform"))


def read_ttl(value: object) -> int:
    """Whole seconds within bounds; ``true`` is not 1, ``60.0`` and ``"60"`` are not 60."""
    longest = min(MAX_TTL, SETTINGS.max_ttl or MAX_TTL)  # 0: EDGE_MAX_TTL sets no limit
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_TTL <= value <= longest:
        raise Refused(f"expires_in must be a whole number of seconds from {MIN_TTL} to {longest}")
    return value


def read_transform(value: object) -> list[tuple[str, str]] | None:
    """The transform parameters as ``(name, value)`` pairs in the URL's text; their values
    are checked by :func:`sign_url`, as the edge checks them."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Refused('transform must be an object of transform parameters, e.g. {"w": 200}')
    pairs = []
    for name, given in value.items():
        if isinstance(given, bool):
            text = "true" if given else "false"
        elif isinstance(given, int | float | str):
            text = str(given)
        else:
            raise Refused(f"transform {name!r} must be a string, a number, true or false")
        pairs.append((name, text))
    return pairs or None


def error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "status": status}}
    return JSONResponse(body, status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, another method) in the same shape."""
    assert isinstance(exc, HTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error(
        exc.status_code, codes.get(exc.status_code, "BAD_REQUEST"), exc.detail, exc.headers
    )


app = Starlette(
    routes=[Route("/api/v1/images/{id}/signed-url", signed_url, methods=["POST"])],
    exception_handlers={HTTPException: http_error},
)

"""What the API's ``POST /api/v1/images/{id}/signed-url`` does with this package.

A Starlette endpoint for the example; the same few lines fit any framework.
The API owns the image records and who may see them; the edge only checks
the signature, so the API must authorise the caller *before* signing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

from edge.settings import Settings
from edge.signing import sign_url

SETTINGS = Settings.from_env()  # the same EDGE_SIGNING_KEYS and EDGE_MAX_TTL as the edges
DEFAULT_TTL = 3600


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


async def signed_url(request: Request) -> JSONResponse:
    image = find_image(request.path_params["id"])
    user = request.headers.get("x-user")  # the API's real authentication goes here
    if image is None or not may_view(user, image):  # the same answer for both: no name leaks
        return error(404, "NOT_FOUND", "Image not found")
    body = await request.json() if await request.body() else {}
    ttl = body.get("expires_in", DEFAULT_TTL)
    if not isinstance(ttl, int) or not 1 <= ttl <= (SETTINGS.max_ttl or 10**9):
        return error(400, "BAD_REQUEST", f"expires_in must be 1 to {SETTINGS.max_ttl} seconds")
    key = SETTINGS.signing_keys.signing_key
    if key is None:
        return error(503, "NOT_CONFIGURED", "No signing key is configured")
    exp = int(time.time()) + ttl
    path = f"/i/{image.owner}/{image.file}"
    return JSONResponse(
        {"url": "https://img.example.com" + sign_url(path, key=key, exp=exp), "expires_at": exp}
    )


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status)

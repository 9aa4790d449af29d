"""``/auth``: the edge's verdict for a proxy that serves the bytes itself.

For nginx ``auth_request``, Traefik ``forwardAuth`` and the like. The original
URI comes from ``X-Original-URI`` (nginx) or ``X-Forwarded-Uri`` (Traefik);
storage is never touched. A grant is ``200`` with ``X-Edge-Visibility``
(``public``, or ``private`` meaning "private, else public") and the
``Cache-Control`` the proxy should send. Every refusal is ``403``, since nginx
turns any other status into 500; the real code is in ``X-Edge-Error`` and the
JSON body.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from edge.errors import BadRequest, EdgeError, MethodNotAllowed
from edge.images import ImageHandler
from edge.observe import Exchange
from edge.paths import request_path
from edge.responses import JSON, NO_STORE, NOSNIFF, error_body

DENIED = 403
_METHODS = (b"GET", b"HEAD")


class AuthHandler:
    def __init__(self, images: ImageHandler) -> None:
        self.images = images  # its verifier and caching policy: one source of truth

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> None:
        uri = method = None
        for name, value in scope["headers"]:
            if name in (b"x-original-uri", b"x-forwarded-uri"):
                uri = value
            elif name in (b"x-original-method", b"x-forwarded-method"):
                method = value.upper()
        try:
            if uri is None:
                raise BadRequest("no X-Original-URI or X-Forwarded-Uri header: check the proxy")
            if method is not None and method not in _METHODS:
                raise MethodNotAllowed(f"original method {method!r}")
            raw_path, _, query = uri.partition(b"#")[0].partition(b"?")
            path = request_path(raw_path)
            grant = self.images.verifier.verify(path, query)
        except EdgeError as error:
            exchange.status, exchange.outcome = DENIED, error.code.lower()
            body = error_body(error.code, error.message, DENIED)
            headers = [JSON, NO_STORE, NOSNIFF, (b"x-edge-error", error.code.encode())]
            await _send(send, DENIED, headers, body)
            exchange.sent = len(body)
            return
        visibility = b"public" if grant is None else b"private"
        exchange.status, exchange.outcome = 200, "auth_" + visibility.decode()
        cache = self.images.cache_control(private=grant is not None, grant=grant)
        headers = [
            (b"x-edge-visibility", visibility),
            (b"x-edge-cache-control", cache[1]),
            NO_STORE,  # the verdict itself: it must not be cached by the proxy as a response
            NOSNIFF,
            (b"content-length", b"0"),
        ]
        await _send(send, 200, headers, b"")


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if body:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

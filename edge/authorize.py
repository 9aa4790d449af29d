"""``/auth``: the edge's verdict for a proxy that serves the bytes itself.

For nginx ``auth_request``, Traefik ``forwardAuth`` and the like; storage is
never touched. The original URI is read from exactly one header,
``EDGE_AUTH_URI_HEADER`` (``X-Original-URI`` by default, which the shipped
nginx config sets; ``X-Forwarded-Uri`` for Traefik): a proxy that passes its
client's headers on would otherwise let the client name the URI judged, so
every other URI header is ignored and the configured one given twice is
refused. The method comes from the header of the same family (see
:func:`method_header`).

A grant is ``200`` naming what to serve: ``X-Edge-Visibility`` (``public``,
or ``private`` meaning "private, else public"), ``X-Edge-Object`` (the
validated, decoded ``{user}/{file}``, so the proxy serves exactly the object
judged and never a path it derived itself), and the headers the proxy must
send: ``X-Edge-Cache-Control`` for what the visibility names,
``X-Edge-Public-Cache-Control`` for a public object served instead, and
``X-Edge-Allow-Origin`` (``*`` unless ``EDGE_CORS=off``). A URL with transform
parameters gets no grant, even a valid one (``BAD_REQUEST``): the proxy would
serve the stored original for a URL signed for a thumbnail. Every refusal is
``403``, since nginx turns any other status into 500; the real code is in
``X-Edge-Error`` and the JSON body.
"""

from __future__ import annotations

from typing import Protocol

from starlette.types import Receive, Scope, Send

from edge.errors import BadRequest, EdgeError, MethodNotAllowed, TransformElsewhere
from edge.paths import PREFIX, request_path
from edge.record import Record, with_reason
from edge.requestid import HEADER as REQUEST_ID
from edge.responses import JSON, NO_STORE, NOSNIFF, Header, error_body
from edge.settings import Settings
from edge.signing import Grant, Verifier
from edge.transform_params import parse_transform

#: nginx's auth_request passes 2xx, 401 and 403 on and turns anything else into 500.
DENIED = 403
_METHODS = (b"GET", b"HEAD")
#: nginx drops the trailing spaces of a header value: an object named with one would reach
#: try_files as another object's name, so such names get no verdict (leading spaces cannot
#: occur: a user name starts with a letter, digit, ``_`` or ``-``).
_UNSENDABLE_END = b" "


class CachePolicy(Protocol):
    """The image handler's Cache-Control rule, which the verdict must repeat exactly."""

    def __call__(self, *, private: bool, grant: Grant | None) -> Header: ...


def method_header(uri_header: str) -> str:
    """The method header of a URI header's family: its last word replaced by ``method``.

    ``x-original-uri`` (nginx) goes with ``x-original-method``, ``x-forwarded-uri``
    (Traefik) with ``x-forwarded-method``: each proxy sets both, and a header of the
    other family may come from the client.
    """
    family, dash, _ = uri_header.lower().rpartition("-")
    return f"{family}{dash}method"


class AuthHandler:
    """Judges the one URI the proxy names; answers what to serve and how, or why not."""

    def __init__(self, verifier: Verifier, cache_control: CachePolicy, settings: Settings) -> None:
        self.verifier = verifier
        self.cache_control = cache_control
        self.uri_header = settings.auth_uri_header.lower().encode("ascii")
        self.method_header = method_header(settings.auth_uri_header).encode("ascii")
        #: Access-Control-Allow-Origin for the proxy to send, as edge would (EDGE_CORS).
        self.cors: tuple[Header, ...] = ((b"x-edge-allow-origin", b"*"),) if settings.cors else ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send, record: Record) -> None:
        try:
            uri, method = self._original(scope["headers"])
            if method is not None and method not in _METHODS:
                raise MethodNotAllowed(f"original method {method[:20]!r}")
            raw_path, _, query = uri.partition(b"#")[0].partition(b"?")
            path = request_path(raw_path)
            name = path[len(PREFIX) :].encode("utf-8")
            if name.endswith(_UNSENDABLE_END):
                raise BadRequest(
                    "the file name ends with a space, which a header cannot carry",
                    slug="name_ends_with_space",
                )
            grant = self.verifier.verify(path, query)
            if parse_transform(query) is not None:  # after the verdict: 403 stays 403
                raise TransformElsewhere(
                    "a transform URL: the proxy serves stored files only; send transform"
                    " URLs to edge itself (deploy/nginx/edge-proxy.conf)"
                )
        except EdgeError as error:
            record.status, record.outcome = DENIED, with_reason(error.code.lower(), error.slug)
            body = error_body(error.code, error.message, DENIED)
            headers = [JSON, NO_STORE, NOSNIFF, (b"x-edge-error", error.code.encode()), *self.cors]
            await _send(send, DENIED, headers, body, record)
            record.sent = len(body)
            return
        visibility = b"public" if grant is None else b"private"
        record.status, record.outcome = 200, "auth_" + visibility.decode()
        cache = self.cache_control(private=grant is not None, grant=grant)
        public_cache = self.cache_control(private=False, grant=None)
        headers = [
            (b"x-edge-visibility", visibility),
            (b"x-edge-object", name),
            (b"x-edge-cache-control", cache[1]),
            (b"x-edge-public-cache-control", public_cache[1]),  # a private verdict's fallback
            *self.cors,
            NO_STORE,  # the verdict itself: it must not be cached by the proxy as a response
            NOSNIFF,
        ]
        await _send(send, 200, headers, b"", record)

    def _original(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes | None]:
        """The original URI and method, each from its one header; refused when either is
        repeated, since a client's copy may then be among them."""
        uris: list[bytes] = []
        methods: list[bytes] = []
        for name, value in headers:
            if name == self.uri_header:
                uris.append(value)
            elif name == self.method_header:
                methods.append(value)
        header = self.uri_header.decode()
        if not uris:
            raise BadRequest(
                f"no {header} header (EDGE_AUTH_URI_HEADER): check the proxy",
                slug="uri_header_missing",
            )
        if len(uris) > 1 or len(methods) > 1:
            raise BadRequest(
                f"{header} or its method header given more than once", slug="uri_header_repeated"
            )
        return uris[0], methods[0] if methods else None


async def _send(
    send: Send, status: int, headers: list[Header], body: bytes, record: Record
) -> None:
    headers = [
        *headers,
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID, record.request_id),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

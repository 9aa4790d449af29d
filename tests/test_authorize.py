"""edge.authorize: /auth, the verdict for nginx `auth_request` and Traefik `forwardAuth`, on
the original URI a proxy passes in its header: called as an ASGI app (the header rules), and
over HTTP. The shipped nginx config that asks it: test_nginx_auth_request.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.types import Message, Scope

from edge.app import Edge
from edge.authorize import AuthHandler, method_header
from edge.keys import parse_keyring
from edge.paths import quote_path
from edge.record import Record
from edge.responses import Header
from edge.samples import CANARY, png
from edge.settings import Settings
from edge.signing import Grant, Verifier, sign_url
from edge.storage import FileStorage
from tests.support.auth import NAMES, private
from tests.support.client import TLS, raw_request
from tests.support.world import KEYS, CountingStorage, World

PNG = png(32, 32)
SECRET = png(40, 30, hue=1) + CANARY


# --- /auth itself, called as an ASGI app: the header rules -----------------------------


class Answer:
    """One ASGI response, its headers as a list (repeats kept) and a dict."""

    def __init__(self, messages: list[Message]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.header_list = [(k.decode(), v.decode("utf-8")) for k, v in start["headers"]]
        self.headers = dict(self.header_list)
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    @property
    def code(self) -> str:
        return str(json.loads(self.body)["error"]["code"])


def call(app: Any, headers: list[tuple[str, str]], *, path: str = "/auth") -> Answer:
    """One GET through an ASGI callable (edge's app, or a handler with an exchange)."""
    scope: Scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode("utf-8")) for k, v in headers],
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    async def run() -> None:
        if isinstance(app, AuthHandler):
            await app(scope, receive, send, Record(0.0))
        else:
            await app(scope, receive, send)

    asyncio.run(run())
    return Answer(messages)


@contextmanager
def edge_app(world: World, **overrides: str) -> Iterator[tuple[Edge, CountingStorage]]:
    """Edge's whole ASGI app on the world's folder, storage reads counted."""
    assert world.root is not None
    storage = CountingStorage(FileStorage(world.root))
    yield Edge(world.settings(**overrides), storage=storage), storage
    assert storage.reads == [], "a verdict never touches storage"


def assert_denied(answer: Answer, code: str) -> None:
    assert answer.status == 403, answer.body
    assert answer.headers["x-edge-error"] == code
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert json.loads(answer.body) == {
        "error": {
            "code": code,
            "message": json.loads(answer.body)["error"]["message"],
            "status": 403,
        }
    }


FAMILIES = {"X-Original-URI": "X-Original-Method", "X-Forwarded-Uri": "X-Forwarded-Method"}


@pytest.mark.parametrize("world", ["file"], indirect=True)
@pytest.mark.parametrize("configured", list(FAMILIES))
def test_auth_reads_the_uri_from_the_configured_header_only(world: World, configured: str) -> None:
    other = next(name for name in FAMILIES if name != configured)
    mallory = world.sign(world.put("private", "mallory", "own.png", private("own")))
    bob = world.put("private", "bob", "secret.png", private("secret"))
    with edge_app(world, EDGE_AUTH_URI_HEADER=configured) as (app, _):
        granted = call(app, [(configured, mallory)])
        assert granted.status == 200 and granted.headers["x-edge-object"] == "mallory/own.png"
        assert granted.headers["x-edge-visibility"] == "private"
        # The client's header of the other family (passed on by the proxy) is never read,
        # before or after the proxy's own.
        for headers in (
            [(other, mallory), (configured, bob)],
            [(configured, bob), (other, mallory)],
        ):
            judged = call(app, headers)
            assert judged.status == 200
            assert judged.headers["x-edge-visibility"] == "public"
            assert judged.headers["x-edge-object"] == "bob/secret.png"
        assert_denied(call(app, [(other, mallory)]), "BAD_REQUEST")
        assert_denied(
            call(app, [("X_" + configured[2:].replace("-", "_"), mallory)]), "BAD_REQUEST"
        )
        assert_denied(call(app, []), "BAD_REQUEST")


@pytest.mark.parametrize("world", ["file"], indirect=True)
@pytest.mark.parametrize("configured", list(FAMILIES))
def test_auth_refuses_its_headers_given_twice(world: World, configured: str) -> None:
    mallory = world.sign(world.put("private", "mallory", "own.png", private("own")))
    bob = "/i/bob/secret.png"
    method = FAMILIES[configured]
    with edge_app(world, EDGE_AUTH_URI_HEADER=configured) as (app, _):
        for headers in (
            [(configured, mallory), (configured, bob)],
            [(configured, bob), (configured, mallory)],
            [(configured, mallory), (configured, mallory)],
            [(configured.upper(), mallory), (configured.lower(), mallory)],
            [(configured, mallory), (method, "GET"), (method, "GET")],
        ):
            assert_denied(call(app, headers), "BAD_REQUEST")


@pytest.mark.parametrize("world", ["file"], indirect=True)
@pytest.mark.parametrize("configured", list(FAMILIES))
def test_auth_reads_the_method_of_its_uri_header_family(world: World, configured: str) -> None:
    public = world.put("public", "alice", "photo.png", PNG)
    method = FAMILIES[configured]
    other = next(FAMILIES[name] for name in FAMILIES if name != configured)
    with edge_app(world, EDGE_AUTH_URI_HEADER=configured) as (app, _):
        for value in ("GET", "HEAD"):
            assert call(app, [(configured, public), (method, value)]).status == 200
        assert call(app, [(configured, public)]).status == 200  # no method header: the proxy's
        for value in ("POST", "get", "PROPFIND", ""):
            assert_denied(call(app, [(configured, public), (method, value)]), "METHOD_NOT_ALLOWED")
        # The other family's method header may be the client's: it is ignored.
        assert call(app, [(configured, public), (other, "POST")]).status == 200


@pytest.mark.parametrize(
    ("uri_header", "expected"),
    [
        ("X-Original-URI", "x-original-method"),
        ("X-Forwarded-Uri", "x-forwarded-method"),
        ("x-original-url", "x-original-method"),
        ("X-Auth-Request-Uri", "x-auth-request-method"),
        ("Uri", "method"),
    ],
)
def test_method_header_is_the_uri_headers_family(uri_header: str, expected: str) -> None:
    assert method_header(uri_header) == expected


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_auth_names_the_object_it_judged(world: World) -> None:
    with edge_app(world) as (app, _):
        for name in NAMES:
            signed = world.sign(f"/i/bob/{name}")
            granted = call(app, [("x-original-uri", signed)])
            assert granted.status == 200, name
            assert granted.headers["x-edge-object"] == f"bob/{name}"
            unsigned = call(app, [("x-original-uri", quote_path(f"/i/bob/{name}"))])
            assert unsigned.headers["x-edge-object"] == f"bob/{name}"
        # nginx drops a header value's trailing spaces: such a name gets no verdict.
        for name in ("t.png ", "t.png  "):
            assert_denied(
                call(app, [("x-original-uri", world.sign(f"/i/bob/{name}"))]), "BAD_REQUEST"
            )


@pytest.mark.parametrize("world", ["file"], indirect=True)
@pytest.mark.parametrize("cors", ["on", "off"])
def test_auth_tells_the_proxy_edges_cors_policy(world: World, cors: str) -> None:
    expected = "*" if cors == "on" else None
    with edge_app(world, EDGE_CORS=cors) as (app, _):
        for uri in ("/i/alice/photo.png", "/i/alice/%2e%2e/x.png"):
            answer = call(app, [("x-original-uri", uri)])
            assert answer.headers.get("x-edge-allow-origin") == expected
            assert "access-control-allow-origin" not in answer.headers, "the verdict, not a page"


def test_auth_handler_needs_only_a_verifier_and_a_cache_policy() -> None:
    asked: list[tuple[bool, Grant | None]] = []

    def cache_control(*, private: bool, grant: Grant | None) -> Header:
        asked.append((private, grant))
        return (b"cache-control", b"private, max-age=7")

    settings = Settings.from_env({"EDGE_SIGNING_KEYS": KEYS})
    verifier = Verifier(parse_keyring(KEYS), max_ttl=settings.max_ttl)
    handler = AuthHandler(verifier, cache_control, settings)
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    signed = sign_url("/i/a/b.png", key=key, exp=int(time.time()) + 60)
    answer = call(handler, [("x-original-uri", signed)])
    assert answer.status == 200 and answer.headers["x-edge-cache-control"] == "private, max-age=7"
    assert asked and asked[0][0] is True


# --- /auth over HTTP -------------------------------------------------------------------


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_auth_verdicts_over_http(world: World) -> None:
    secret = world.put("private", "alice", "secret.png", SECRET)
    base = world.serve(EDGE_PRIVATE_MAX_AGE="120")

    def verdict(uri: str, header: str = "x-original-uri", **extra: str) -> httpx.Response:
        headers = {header: uri, **{k.replace("_", "-"): v for k, v in extra.items()}}
        return httpx.get(base + "/auth", headers=headers, verify=TLS)

    public = verdict("/i/alice/photo.png?v=2")
    assert public.status_code == 200 and public.content == b""
    assert public.headers["x-edge-visibility"] == "public"
    assert public.headers["x-edge-object"] == "alice/photo.png"
    assert public.headers["x-edge-cache-control"] == "public, max-age=86400"
    assert public.headers["x-edge-allow-origin"] == "*"
    signed = verdict(world.sign(secret))
    assert signed.headers["x-edge-visibility"] == "private"
    assert signed.headers["x-edge-cache-control"] == "private, max-age=120"
    for uri, code in [
        (world.sign(secret).replace("sig=", "sig=x"), "SIGNATURE_INVALID"),
        (world.sign(secret, exp=int(time.time()) - 1), "SIGNATURE_EXPIRED"),
        ("/i/alice/%2e%2e/bob/x.png", "BAD_REQUEST"),
        ("/i/alice", "BAD_REQUEST"),
    ]:
        denied = verdict(uri)
        assert denied.status_code == 403, uri
        assert denied.headers["x-edge-error"] == code
        assert denied.json() == {
            "error": {"code": code, "message": denied.json()["error"]["message"], "status": 403}
        }
    assert httpx.get(base + "/auth", verify=TLS).headers["x-edge-error"] == "BAD_REQUEST"
    assert verdict(world.sign(secret), header="x-forwarded-uri").headers["x-edge-error"] == (
        "BAD_REQUEST"
    )
    assert (
        verdict("/i/alice/photo.png", x_original_method="POST").headers["x-edge-error"]
        == "METHOD_NOT_ALLOWED"
    )
    # Two copies that differ only in case are one header, given twice.
    status, headers, _ = raw_request(
        base,
        "/auth",
        headers=[("X-Original-URI", world.sign(secret)), ("x-original-uri", "/i/alice/p.png")],
    )
    assert status == 403 and ("x-edge-error", "BAD_REQUEST") in headers
    assert world.storage_reads() == [], "a verdict never touches storage"

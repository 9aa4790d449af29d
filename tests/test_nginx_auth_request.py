"""nginx `auth_request` mode: the shipped deploy/nginx/auth-request.conf, read and run with
real nginx in front of edge's /auth (test_authorize.py tests /auth itself).

Every private object holds the canary, and every response nginx gives goes through
:class:`Client`, which fails the test when a body holds the canary without the test having
asked for exactly that object's bytes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from edge import errors
from edge.authorize import method_header
from edge.http import IMAGE_TYPES
from edge.paths import quote_path
from edge.responses import error_body
from edge.samples import CANARY, png, svg
from edge.settings import Settings
from edge.signing import sign_url
from tests.support.auth import NAMES, private
from tests.support.client import raw_request
from tests.support.nginx import DEPLOY_NGINX, run_nginx
from tests.support.servers import free_port, run_uvicorn
from tests.support.world import World

PNG = png(32, 32)
CONFIG = (DEPLOY_NGINX / "auth-request.conf").read_text()
#: Longer than EDGE_PRIVATE_MAX_AGE: a private max-age is then the cap, the same for the
#: edge and for nginx whichever second each answers in.
LONG = 7200


# --- the shipped config, read ----------------------------------------------------------


def config_blocks(name: str) -> list[str]:
    """The bodies of every ``name {...}`` block (no nested braces inside)."""
    return re.findall(rf"^\s*{name} \{{([^{{}}]*)\}}", CONFIG, re.MULTILINE)


def test_config_types_are_edges_image_types() -> None:
    tables = [body for body in config_blocks("types") if body.strip()]
    assert len(tables) == 1, "one table: the image location's"
    types: dict[str, str] = {}
    for line in tables[0].strip().splitlines():
        media_type, *extensions = line.strip().rstrip(";").split()
        for extension in extensions:
            assert extension not in types, extension
            types[extension] = media_type
    assert types == IMAGE_TYPES
    assert re.search(r"^\s*types \{\}\s*\n\s*default_type application/json;", CONFIG, re.M)
    assert "default_type application/octet-stream;" in CONFIG
    assert "include" not in CONFIG, "no mime.types: its text/html would render uploads"


def test_config_error_bodies_are_edges() -> None:
    kinds: dict[str, type[errors.EdgeError]] = {}
    for kind in vars(errors).values():
        if _is_error(kind):
            kinds.setdefault(kind.code, kind)  # a code's base class: its message is the proxy's
    bodies = re.findall(r"return (\d+) '(\{.*\})';", CONFIG)
    assert len(bodies) >= 8
    for status, body in bodies:
        code = json.loads(body)["error"]["code"]
        kind = kinds[code]
        assert int(status) == kind.status, code
        assert body.encode() == error_body(code, kind.message, kind.status), code


def _is_error(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, errors.EdgeError)


def test_config_asks_edge_with_its_own_headers_only() -> None:
    (auth,) = re.findall(r"location = /_edge/auth \{([^}]*)\}", CONFIG)
    assert "proxy_pass_request_headers off;" in auth
    assert "proxy_pass_request_body off;" in auth
    uri_header = Settings.from_env({}).auth_uri_header
    set_headers = {
        name.lower(): value for name, value in re.findall(r"proxy_set_header (\S+) (\S+);", auth)
    }
    assert set_headers[uri_header] == "$request_uri"
    assert set_headers[method_header(uri_header)] == "$request_method"
    # Storage only under /i/: one root, inside that location.
    assert len(re.findall(r"^\s*root ", CONFIG, re.MULTILINE)) == 1
    (images,) = re.findall(r"location /i/ \{(.*?)\n        \}", CONFIG, re.DOTALL)
    assert "root /srv/images;" in images and "disable_symlinks on;" in images
    assert "try_files /$edge_folder/$edge_file /public/$edge_file =404;" in images
    # Every code a refusal can carry has its page.
    (denied,) = re.findall(r"location = /_edge/denied \{(.*?)\n        \}", CONFIG, re.DOTALL)
    assert set(re.findall(r"\$edge_error = (\w+)", denied)) == {
        "SIGNATURE_INVALID",
        "SIGNATURE_EXPIRED",
        "BAD_REQUEST",
        "METHOD_NOT_ALLOWED",
    }


# --- the shipped config, run: nothing private leaks ---------------------------------------


class Client:
    """Requests to nginx; every body is scanned for the canary."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen = 0

    def get(
        self,
        target: str,
        *,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        granted: bytes | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """``granted``: the one private object this request may receive, whole."""
        status, received, body = raw_request(self.base, target, method=method, headers=headers)
        self.seen += 1
        if granted is not None:
            assert (status, body) == (200, granted), (target, headers, status, body[:200])
        else:
            assert CANARY not in body, (target, headers, status)
        return status, received, body

    def error(
        self,
        target: str,
        status: int,
        code: str,
        *,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
    ) -> dict[str, str]:
        """An error in edge's shape; returns its headers (each must appear once)."""
        got, received, body = self.get(target, method=method, headers=headers)
        assert got == status, (target, headers, got, body[:200])
        answer = dict(received)
        assert len(answer) == len(received), received
        assert answer["content-type"] == "application/json", target
        assert answer["cache-control"] == "no-store", target
        assert answer["x-content-type-options"] == "nosniff", target
        if method != "HEAD":
            assert json.loads(body) == {
                "error": {
                    "code": code,
                    "message": json.loads(body)["error"]["message"],
                    "status": status,
                }
            }, (target, body)
        return answer


def stock(world: World) -> dict[str, bytes]:
    """The objects every nginx test serves: private ones named after themselves."""
    objects = {
        "public/alice/photo.png": PNG,
        "public/alice/logo.svg": svg(),
        "public/alice/page.html": b"<script>alert(document.domain)</script>",
        "public/alice/notes.txt": b"plain text",
        "public/alice/noext": PNG,
        "public/alice/PHOTO.JPG": PNG,
        "public/alice/both.png": PNG,
        "private/alice/both.png": private("both"),
        "private/bob/secret.png": private("secret"),
        "private/bob/secret.svg": private("secret.svg"),
        "private/bob/secret.html": private("secret.html"),
        "private/mallory/own.png": private("own"),
    }
    for key, data in objects.items():
        visibility, user, file = key.split("/", 2)
        world.put(visibility, user, file, data)
    assert world.root is not None
    (world.root / "public" / "alice" / "leak.png").symlink_to(
        world.root / "private" / "bob" / "secret.png"
    )
    return objects


@contextmanager
def behind_nginx(
    world: World, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[tuple[Client, str]]:
    """nginx with the shipped config in front of one edge; yields the client, and the URL of
    another edge with the same settings that serves the same folder itself (to compare)."""
    direct = world.serve(**settings)
    edge = world.serve(**settings)  # storage_reads() counts this one's
    with run_nginx(
        "auth-request.conf",
        tmp_path_factory.mktemp("nginx"),  # outside the storage folder
        upstreams=[edge.removeprefix("http://")],
        root=world.root,
    ) as base:
        client = Client(base)
        yield client, direct
        assert client.seen
    assert world.storage_reads() == [], "nginx read the files; edge only judged"


#: Paths outside /i/, or that nginx normalises out of it: the storage folder must stay out of
#: reach whatever nginx makes of them.
OUTSIDE = [
    "/private/bob/secret.png",
    "//private/bob/secret.png",
    "/%70rivate/bob/secret.png",
    "/%2Fprivate/bob/secret.png",
    "/private%2Fbob%2Fsecret.png",
    "/./private/bob/secret.png",
    "/i/../private/bob/secret.png",
    "/x/../private/bob/secret.png",
    "/i/alice/../../private/bob/secret.png",
    "/i/%2e%2e/private/bob/secret.png",
    "/i/%2E%2E/private/bob/secret.png",
    "/i/./../private/bob/secret.png",
    "/i%2F..%2Fprivate%2Fbob%2Fsecret.png",
    "/i/..%2Fprivate%2Fbob%2Fsecret.png",
    "/i/bob/..%2F..%2Fprivate%2Fbob%2Fsecret.png",
    "/public/alice/photo.png",
    "/public/alice/page.html",
    "/private/",
    "/public/",
    "/",
    "/I/bob/secret.png",
    "http://evil.example/private/bob/secret.png",
    "/auth",
    "/_edge/auth",
    "/_edge/denied",
    "/healthz",
    "/metrics",
    "/nginx.conf",
]


#: Paths under /i/ that edge refuses to judge.
MALFORMED = [
    "/i/",
    "/i/bob",
    "/i/bob/",
    "/i//bob/secret.png",
    "/i/bob//secret.png",
    "/i/bob/secret.png/",
    "/i/bob/./secret.png",
    "/i/alice/../bob/secret.png",
    "/i/alice/%2e%2e/bob/secret.png",
    "/i/alice/%2e%2e%2fbob%2fsecret.png",
    "/i/bob/secret.png%00",
    "/i/bob/a%5Cb.png",
    "/i/bob/%ff.png",
    "/i/.bob/secret.png",
    "/i/bob/secret.png/..",
]


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_nginx_serves_no_storage_path_of_its_own(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stock(world)
    signature = world.sign("/i/bob/secret.png").partition("?")[2]
    with behind_nginx(world, tmp_path_factory) as (client, _):
        for target in OUTSIDE:
            for method in ("GET", "HEAD"):
                status, _, _ = client.get(target, method=method)
                assert status in (400, 404), target
                client.error(
                    target, status, "BAD_REQUEST" if status == 400 else "NOT_FOUND", method=method
                )
            # A valid signature for the object does not help a path that is not its own.
            client.get(f"{target}?{signature}")
        for target in MALFORMED:
            client.error(target, 400, "BAD_REQUEST")
            client.error(f"{target}?{signature}", 400, "BAD_REQUEST")
        client.error("/i/bob/secret.png", 404, "NOT_FOUND")
        client.error("/i/alice/leak.png", 404, "NOT_FOUND")  # a symlink to a private file
        client.error("/i/bob%2Fsecret.png", 404, "NOT_FOUND")  # edge decodes: bob/secret.png
        status, _, body = client.get("/i/alice/photo.png")
        assert (status, body) == (200, PNG)


#: Headers a client may send to change what /auth judges; nginx must pass none of them on.
def smuggled(uri: str, method: str = "GET") -> list[list[tuple[str, str]]]:
    return [
        [("X-Forwarded-Uri", uri)],
        [("X-Original-URI", uri)],
        [("x-original-uri", uri)],
        [("X-ORIGINAL-URI", uri)],
        [("X-Original-Uri", uri), ("X-Original-Uri", uri)],
        [("X-Forwarded-Uri", uri), ("X-Original-URI", uri)],
        [("X-Original-URI", uri), ("X-Forwarded-Uri", uri), ("x-forwarded-uri", uri)],
        [("X_Original_URI", uri), ("X_Forwarded_Uri", uri)],
        [("X-Original-URL", uri), ("X-Rewrite-URL", uri), ("X-Auth-Request-Uri", uri)],
        [("X-Original-Method", method), ("X-Forwarded-Method", method)],
        [("X-Original-URI", uri), ("X-Original-Method", method)],
        [("X-Edge-Visibility", "private"), ("X-Edge-Object", "bob/secret.png")],
    ]


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_no_client_header_changes_the_verdict(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    objects = stock(world)
    own = world.sign("/i/mallory/own.png")  # mallory's one valid signed URL
    with behind_nginx(world, tmp_path_factory) as (client, _):
        for headers in smuggled(own):
            client.error("/i/bob/secret.png", 404, "NOT_FOUND", headers=headers)
            client.error("/i/bob/secret.png?sig=x&exp=1", 403, "SIGNATURE_INVALID", headers=headers)
        for headers in smuggled("/i/bob/secret.png"):
            client.get(own, headers=headers, granted=objects["private/mallory/own.png"])
        for headers in smuggled("/i/alice/photo.png", method="GET"):
            client.error(
                "/i/alice/photo.png", 405, "METHOD_NOT_ALLOWED", method="POST", headers=headers
            )
        for headers in smuggled("/i/alice/photo.png", method="POST"):
            status, _, body = client.get("/i/alice/photo.png", headers=headers)
            assert (status, body) == (200, PNG)


#: (path, signed): every type of answer, public and private.
SERVED = [
    ("/i/alice/photo.png", False),
    ("/i/alice/PHOTO.JPG", False),
    ("/i/alice/logo.svg", False),
    ("/i/alice/page.html", False),
    ("/i/alice/notes.txt", False),
    ("/i/alice/noext", False),
    ("/i/alice/both.png", False),
    ("/i/alice/both.png", True),
    ("/i/alice/photo.png", True),  # signed, no private object: the public one
    ("/i/bob/secret.png", True),
    ("/i/bob/secret.svg", True),
    ("/i/bob/secret.html", True),
]


COMPARED = (
    "content-type",
    "content-disposition",
    "content-security-policy",
    "x-content-type-options",
    "access-control-allow-origin",
    "cache-control",
    "accept-ranges",
    "allow",
    "content-range",
)


def policy(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The header policy of a response: each compared header with all its values."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if name in COMPARED:
            found.setdefault(name, []).append(value)
    return found


@pytest.mark.parametrize("world", ["file"], indirect=True)
@pytest.mark.parametrize("cors", ["on", "off"])
def test_nginx_answers_as_edge_does(
    world: World, tmp_path_factory: pytest.TempPathFactory, cors: str
) -> None:
    objects = stock(world)
    with behind_nginx(world, tmp_path_factory, EDGE_CORS=cors) as (client, edge):
        for path, signed in SERVED:
            target = world.sign(path, expires_in=LONG) if signed else quote_path(path)
            key = ("private" if signed else "public") + path[2:]
            granted = objects.get(key) if key.startswith("private/") else None
            for method in ("GET", "HEAD"):
                allowed = granted if method == "GET" else None
                status, headers, body = client.get(target, method=method, granted=allowed)
                direct = raw_request(edge, target, method=method)
                assert (status, body) == direct[::2], target
                assert policy(headers) == policy(direct[1]), (method, target)
        expired = world.sign("/i/bob/secret.png", exp=int(time.time()) - 5)
        for target, method, status, code in [
            ("/i/alice/missing.png", "GET", 404, "NOT_FOUND"),
            ("/i/alice/missing.svg", "GET", 404, "NOT_FOUND"),
            ("/i/bob/secret.png", "GET", 404, "NOT_FOUND"),
            ("/i/bob/secret.png", "HEAD", 404, "NOT_FOUND"),
            (
                world.sign("/i/bob/secret.png").replace("sig=", "sig=x"),
                "GET",
                403,
                "SIGNATURE_INVALID",
            ),
            (expired, "GET", 403, "SIGNATURE_EXPIRED"),
            ("/i/alice/%2e%2e/x.png", "GET", 400, "BAD_REQUEST"),
            ("/i/alice", "GET", 400, "BAD_REQUEST"),
            ("/i/alice/photo.png", "POST", 405, "METHOD_NOT_ALLOWED"),
            ("/i/alice/photo.png", "DELETE", 405, "METHOD_NOT_ALLOWED"),
            ("/i/bob/secret.png", "PUT", 405, "METHOD_NOT_ALLOWED"),
            ("/nope", "GET", 404, "NOT_FOUND"),
            ("/private/bob/secret.png", "GET", 404, "NOT_FOUND"),
        ]:
            answer = client.error(target, status, code, method=method)
            direct_status, direct_headers, direct_body = raw_request(edge, target, method=method)
            assert direct_status == status, target
            assert policy(list(answer.items())) == policy(direct_headers), (method, target)
            if method != "HEAD":
                _, _, body = client.get(target, method=method)
                assert body == direct_body, target
        # A range nginx cannot satisfy: edge's error, Content-Range and no-store. nginx adds
        # an image's headers before its range filter fails, so the image's Cache-Control
        # comes first (no-store prevails) and its type headers stay: see the config.
        for path in ("/i/alice/photo.png", "/i/alice/logo.svg"):
            target = quote_path(path)
            range_past_end = [("Range", "bytes=100000-")]
            status, received, body = client.get(target, headers=range_past_end)
            direct = raw_request(edge, target, headers=range_past_end)
            assert status == direct[0] == 416 and body == direct[2]
            got, want = policy(received), policy(direct[1])
            assert got["content-type"] == want["content-type"] == ["application/json"]
            assert got["content-range"] == want["content-range"]
            assert got["x-content-type-options"] == ["nosniff"]
            assert got.get("access-control-allow-origin") == want.get("access-control-allow-origin")
            assert got["cache-control"][-1] == "no-store"
        # One range: 206 with the image's headers.
        status, received, body = client.get("/i/alice/photo.png", headers=[("Range", "bytes=1-4")])
        direct = raw_request(edge, "/i/alice/photo.png", headers=[("Range", "bytes=1-4")])
        assert status == direct[0] == 206 and body == direct[2] == PNG[1:5]
        got, want = policy(received), policy(direct[1])
        assert want.pop("accept-ranges") == ["bytes"] and "accept-ranges" not in got  # nginx's 206
        assert got == want
        # Revalidation keeps the caching of the visibility.
        signed_url = world.sign("/i/bob/secret.png", expires_in=LONG)
        _, received, _ = client.get(signed_url, granted=objects["private/bob/secret.png"])
        etag = dict(received)["etag"]
        status, received, _ = client.get(signed_url, headers=[("If-None-Match", etag)])
        assert status == 304 and dict(received)["cache-control"] == "private, max-age=3600"


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_nginx_serves_exactly_the_object_edge_named(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    decoys = ["a", "100", "x", "semi", "t.png", "quote", "plus", "lead.png"]
    for name in [*NAMES, *decoys, "t.png "]:
        world.put("private", "bob", name, private(name))
    with behind_nginx(world, tmp_path_factory) as (client, _):
        for name in NAMES:
            client.get(world.sign(f"/i/bob/{name}"), granted=private(name))
            client.error(quote_path(f"/i/bob/{name}"), 404, "NOT_FOUND")
        # A name nginx would shorten (a trailing space) gets no verdict, not another object.
        client.error(world.sign("/i/bob/t.png "), 400, "BAD_REQUEST")


def fake_edge(status: int, headers: list[tuple[bytes, bytes]]) -> Any:
    """An /auth that answers one fixed verdict: what nginx does with a broken one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_nginx_without_a_sound_verdict_serves_nothing(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stock(world)
    target = world.sign("/i/bob/secret.png")
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    with run_nginx(
        "auth-request.conf", tmp_path_factory.mktemp("nginx"), upstreams=[down], root=world.root
    ) as base:
        client = Client(base)
        for path in (target, "/i/alice/photo.png"):
            answer = client.error(path, 502, "STORAGE_ERROR")
            assert "access-control-allow-origin" not in answer
        client.error("/private/bob/secret.png", 404, "NOT_FOUND")
    private_verdict = [(b"x-edge-visibility", b"private")]
    for status, headers, expected in [
        (200, [], (404, "NOT_FOUND")),
        (200, [*private_verdict, (b"x-edge-object", b"")], (404, "NOT_FOUND")),
        (200, [*private_verdict, (b"x-edge-object", b"bob/")], (404, "NOT_FOUND")),
        (200, [*private_verdict, (b"x-edge-object", b"bob")], (404, "NOT_FOUND")),
        (200, [*private_verdict, (b"x-edge-object", b"/bob/secret.png")], (404, "NOT_FOUND")),
        (200, [(b"x-edge-object", b"bob/../../private/bob/secret.png")], (404, "NOT_FOUND")),
        (200, [(b"x-edge-object", b"../private/bob/secret.png")], (404, "NOT_FOUND")),
        (200, [(b"x-edge-object", b"bob/./secret.png")], (404, "NOT_FOUND")),
        (403, [], (502, "STORAGE_ERROR")),
        (403, [(b"x-edge-error", b"SOMETHING_NEW")], (502, "STORAGE_ERROR")),
        (503, [], (502, "STORAGE_ERROR")),
        (404, [], (502, "STORAGE_ERROR")),
        (401, [], (502, "STORAGE_ERROR")),
    ]:
        with (
            run_uvicorn(fake_edge(status, headers)) as fake,
            run_nginx(
                "auth-request.conf",
                tmp_path_factory.mktemp("nginx"),
                upstreams=[fake.removeprefix("http://")],
                root=world.root,
            ) as base,
        ):
            client = Client(base)
            client.error("/i/bob/secret.png", *expected)
            client.error(target, *expected)


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_transform_urls_get_no_verdict(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """nginx serves the stored file itself: a grant for a URL signed for a thumbnail would
    hand out the whole original. Transform URLs are refused, signed or not; other
    parameters (a cache buster) still pass."""
    world.put("private", "bob", "secret.png", private("secret.png"))
    world.put("public", "alice", "photo.png", png(4, 4))
    exp = int(time.time()) + 300
    thumb = sign_url("/i/bob/secret.png", key=world.key, exp=exp, transform="w=200")
    with behind_nginx(world, tmp_path_factory) as (client, _):
        client.error(thumb, 400, "BAD_REQUEST")
        client.error(thumb.replace("w=200", "p:thumb"), 403, "SIGNATURE_INVALID")
        client.error("/i/alice/photo.png?w=200", 400, "BAD_REQUEST")
        client.error("/i/alice/photo.png?p:thumb", 400, "BAD_REQUEST")
        status, _, body = client.get("/i/alice/photo.png?v=3")
        assert (status, body) == (200, png(4, 4))
        client.get(world.sign("/i/bob/secret.png"), granted=private("secret.png"))

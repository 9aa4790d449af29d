"""Real nginx in front of two real edge processes (deploy/nginx/edge-proxy.conf)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl

import httpx
import pytest

from edge.errors import (
    BadRequest,
    EdgeError,
    HeadersTooLarge,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    RangeNotSatisfiable,
    StorageError,
    StorageTimeout,
)
from edge.responses import error_body
from edge.samples import CANARY, png, svg
from tests.support.client import TLS
from tests.support.fleet import EdgeProcess, fleet, signed
from tests.support.nginx import run_nginx

PNG = png(32, 32)
SECRET = png(40, 30, hue=1) + CANARY


Site = tuple[Path, list[EdgeProcess], str]


@contextlib.contextmanager
def proxied_site(
    tmp_path: Path, files: dict[str, bytes] | None = None, edits: Sequence[tuple[str, str]] = ()
) -> Iterator[Site]:
    """Two edges on one storage folder, nginx with edge-proxy.conf (and ``edits``) in front."""
    root = tmp_path / "images"
    for folder in ("public/alice", "private/alice"):
        (root / folder).mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(PNG)
    (root / "private" / "alice" / "secret.png").write_bytes(SECRET)
    for name, data in (files or {}).items():
        (root / name).write_bytes(data)
    with fleet(root, tmp_path, edits=edits) as (edges, base):
        yield root, edges, base


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with proxied_site(tmp_path) as running:
        yield running


def test_a_signed_url_verifies_on_every_instance(site: tuple[Path, list[EdgeProcess], str]) -> None:
    _, edges, _ = site
    url = signed("/i/alice/secret.png")
    for edge in edges:
        response = httpx.get(edge.base + url, verify=TLS)
        assert response.status_code == 200 and response.content == SECRET


def test_public_images_are_cached_by_nginx(site: tuple[Path, list[EdgeProcess], str]) -> None:
    _, edges, base = site
    first = httpx.get(base + "/i/alice/photo.png", verify=TLS)
    second = httpx.get(base + "/i/alice/photo.png", verify=TLS)
    assert first.content == second.content == PNG
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    reached = sum(len(edge.requests("/i/alice/photo.png")) for edge in edges)
    assert reached == 1, "the second request never reached an edge"
    (line,) = [line for edge in edges for line in edge.requests("/i/alice/photo.png")]
    assert line["client"] == "127.0.0.1"  # forwarded by a trusted proxy: the real client


def test_private_images_are_never_cached(site: tuple[Path, list[EdgeProcess], str]) -> None:
    _, edges, base = site
    url = signed("/i/alice/secret.png")
    for _ in range(3):
        response = httpx.get(base + url, verify=TLS)
        assert response.status_code == 200 and response.content == SECRET
        assert response.headers["x-cache-status"] != "HIT"
    unsigned = httpx.get(base + "/i/alice/secret.png", verify=TLS)
    assert unsigned.status_code == 404 and CANARY not in unsigned.content
    again = httpx.get(base + "/i/alice/secret.png", verify=TLS)
    assert again.status_code == 404 and CANARY not in again.content
    assert sum(len(edge.requests("/i/alice/secret.png")) for edge in edges) == 5
    cache = list((site[0].parent / "nginx" / "cache").rglob("*"))
    stored = b"".join(path.read_bytes() for path in cache if path.is_file())
    assert CANARY not in stored, "no private byte in nginx's cache"


def test_killing_an_edge_under_load_fails_no_request(
    site: tuple[Path, list[EdgeProcess], str],
) -> None:
    _, edges, base = site
    url = base + signed(
        "/i/alice/secret.png"
    )  # private: never cached, every request reaches an edge
    assert httpx.get(url, verify=TLS).status_code == 200
    # The edge the image's path hashes to: the one killed, so its requests move.
    edges.sort(key=lambda edge: -len(edge.requests("/i/alice/secret.png")))
    total, concurrency = 3000, 16
    statuses: list[int] = []
    errors: list[str] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=10, verify=TLS) as client:
            queue = iter(range(total))

            async def worker() -> None:
                for n in queue:
                    if n == total // 3:
                        edges[0].process.kill()  # no goodbye: connections just die
                    try:
                        response = await client.get(url)
                        statuses.append(response.status_code)
                        if response.content != SECRET:
                            errors.append(f"body of {len(response.content)} bytes")
                    except httpx.HTTPError as error:
                        errors.append(repr(error))

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)

    asyncio.run(load())
    assert len(statuses) + len(errors) == total
    assert errors == [] and set(statuses) == {200}, (errors[:3], sorted(set(statuses)))
    assert edges[0].process.poll() is not None
    with contextlib.suppress(Exception):
        edges[0].process.wait(5)


# --- What edge guarantees survives nginx: ranges, conditions, headers, errors ---------

BIG = 8 << 20  # an image large enough that moving it whole would show in the edge's log


def big_image(seed: int) -> bytes:
    return random.Random(seed).randbytes(BIG)


def edge_lines(edges: list[EdgeProcess], path: str) -> list[tuple[object, object, object]]:
    """``(method, status, bytes)`` of every request the edges answered for ``path``."""
    return sorted(
        (line["method"], line["status"], line["bytes"])
        for edge in edges
        for line in edge.requests(path)
    )


def test_a_signed_range_moves_only_its_bytes(site: Site) -> None:
    root, edges, base = site
    image = big_image(1)
    (root / "private" / "alice" / "big.bin").write_bytes(image)
    url = base + signed("/i/alice/big.bin")

    part = httpx.get(url, headers={"Range": "bytes=0-9"}, verify=TLS)
    assert part.status_code == 206 and part.content == image[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{BIG}"
    head = httpx.head(url, verify=TLS)
    assert head.status_code == 200 and head.headers["content-length"] == str(BIG)
    etag = head.headers["etag"]
    same = httpx.get(url, headers={"If-None-Match": etag}, verify=TLS)
    assert same.status_code == 304 and same.content == b""
    tail = httpx.get(url, headers={"Range": f"bytes={BIG - 5}-", "If-Range": etag}, verify=TLS)
    assert tail.status_code == 206 and tail.content == image[-5:]
    assert {part.headers["x-cache-status"], same.headers["x-cache-status"]} == {"BYPASS"}
    # What each request cost: the bytes asked for, nothing more (HEAD stayed a HEAD).
    assert edge_lines(edges, "/i/alice/big.bin") == [
        ("GET", 206, 5),
        ("GET", 206, 10),
        ("GET", 304, 0),
        ("HEAD", 200, 0),
    ]


def test_unsigned_ranges_come_from_whole_cached_images(site: Site) -> None:
    root, edges, base = site
    image = big_image(2)
    (root / "public" / "alice" / "big.bin").write_bytes(image)
    url = base + "/i/alice/big.bin"

    answers = [
        httpx.get(url, headers={"Range": r}, verify=TLS)
        for r in ("bytes=0-9", "bytes=0-9", "bytes=-5")
    ]
    assert [(a.status_code, a.headers["x-cache-status"]) for a in answers] == [
        (206, "MISS"),
        (206, "HIT"),
        (206, "HIT"),
    ]
    assert [a.content for a in answers] == [image[:10], image[:10], image[-5:]]
    assert answers[2].headers["content-range"] == f"bytes {BIG - 5}-{BIG - 1}/{BIG}"
    # The miss fetched the whole image, once, for the cache.
    assert edge_lines(edges, "/i/alice/big.bin") == [("GET", 200, BIG)]

    # A range nginx would not cut as edge does goes to edge: its 206, its 416.
    middle = httpx.get(url, headers={"Range": "bytes=100-109"}, verify=TLS)
    assert middle.status_code == 206 and middle.content == image[100:110]
    beyond = httpx.get(url, headers={"Range": f"bytes={BIG}-"}, verify=TLS)
    assert beyond.status_code == 416
    assert beyond.content == error_body(RangeNotSatisfiable.code, RangeNotSatisfiable.message, 416)
    assert beyond.headers["content-range"] == f"bytes */{BIG}"
    assert beyond.headers["cache-control"] == "no-store"
    assert beyond.headers.get_list("access-control-allow-origin") == ["*"]
    # Several ranges, or a precondition edge does not judge: edge's answer, the whole image.
    for headers in ({"Range": "bytes=0-1,5-6"}, {"If-Match": '"other"'}):
        whole = httpx.get(url, headers=headers, verify=TLS)
        assert whole.status_code == 200 and whole.content == image, headers


def _cache_control(response: httpx.Response) -> str:
    """Cache-Control without its numbers: a private max-age counts down between two requests."""
    return re.sub(r"\d+", "N", response.headers.get("cache-control", ""))


def _same_answer(through: httpx.Response, direct: httpx.Response) -> bool:
    return (
        through.status_code == direct.status_code
        and through.content == direct.content
        and _cache_control(through) == _cache_control(direct)
        and all(through.headers.get(h) == direct.headers.get(h) for h in ("content-range", "etag"))
    )


def test_no_way_of_spelling_a_signature_poisons_the_cache(site: Site) -> None:
    """A client picks how nginx classifies its request. Whatever it picks, nginx answers
    exactly what edge answers, a cached answer is never private or partial, and no private
    byte reaches a request edge does not judge validly signed."""
    root, edges, base = site
    (root / "public" / "alice" / "both.png").write_bytes(PNG)
    (root / "private" / "alice" / "both.png").write_bytes(SECRET)  # one name, two images
    valid: dict[str, str] = {}
    for path in ("/i/alice/both.png", "/i/alice/secret.png", "/i/alice/photo.png"):
        valid[path] = signed(path).partition("?")[2]
    spellings = {
        "genuine": ("{q}", True),
        "encoded name": ("{q_encoded}", True),
        "upper case": ("{q_upper}", False),  # edge: not a signature, the public image
        "sig twice": ("{q}&sig={sig}", False),
        "empty sig": ("sig=&exp={exp}", False),
        "bare sig": ("v=1&sig", False),
        "Sig alone": ("Sig={sig}", False),
        "encoded upper case": ("%53IG={sig}", False),
        "kid alone": ("kid=test", False),
        "double-encoded": ("%2573ig={sig}&%2565xp={exp}", False),  # edge: not a signature
        "cache-buster": ("v=2", False),
        "none": ("", False),
    }
    mismatches: list[str] = []
    with httpx.Client(verify=TLS) as client:
        for path, query in valid.items():
            sig, exp = (dict(parse_qsl(query))[name] for name in ("sig", "exp"))
            for name, (template, is_signed) in spellings.items():
                q = template.format(
                    q=query,
                    q_encoded=query.replace("sig=", "%73ig=").replace("exp=", "%65%78p="),
                    q_upper=query.replace("sig=", "SIG=").replace("exp=", "EXP="),
                    sig=sig,
                    exp=exp,
                )
                target = f"{path}?{q}" if q else path
                # Ranges first: a partial answer cached under this URI would show afterwards.
                for ranged in ("bytes=0-9", "bytes=5-", "bytes=-3", None):
                    headers = {"Range": ranged} if ranged else {}
                    direct = client.get(edges[0].base + target, headers=headers)
                    for attempt in (1, 2):  # a miss, then perhaps a hit
                        through = client.get(base + target, headers=headers)
                        if not _same_answer(through, direct):
                            mismatches.append(
                                f"{name} {target} {ranged} #{attempt}: nginx"
                                f" {through.status_code} {len(through.content)} B,"
                                f" edge {direct.status_code} {len(direct.content)} B"
                            )
                        if CANARY in through.content and not is_signed:
                            mismatches.append(f"{name} {target}: a private byte, unsigned")
    assert mismatches == []
    entries = [f.read_bytes() for f in (root.parent / "nginx" / "cache").rglob("*") if f.is_file()]
    assert entries, "public answers were cached"
    for entry in entries:
        head = entry.partition(b"\r\n\r\n")[0].lower()
        assert head.count(b"http/1.1 200 ok") == 1 and b"cache-control: public" in head
        assert b"content-range" not in head and CANARY not in entry


class _Upstream(BaseHTTPRequestHandler):
    """An upstream that misbehaves on purpose: what edge never sends to the cache."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[dict[str, tuple[int, str, list[tuple[str, str]]]]] = {
        "/i/a/partial.png": (206, "public, max-age=600", [("Content-Range", "bytes 0-9/100")]),
        "/i/a/unmarked.png": (200, "max-age=600", []),
        "/i/a/public.png": (200, "public, max-age=600", []),
    }
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status, cache_control, extra = self.answers[self.path]
        self.send_response(status)
        for name, value in [("Cache-Control", cache_control), ("Content-Length", "10"), *extra]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"0123456789")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_only_whole_answers_marked_public_are_cached(tmp_path: Path) -> None:
    """nginx 1.22 would cache a 206 marked public and serve it as the whole image to
    everyone (checked); the config refuses to store it, and anything not marked public."""
    _Upstream.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        upstreams = [f"127.0.0.1:{server.server_port}"]
        with run_nginx("edge-proxy.conf", tmp_path, upstreams=upstreams) as base:
            for path in _Upstream.answers:
                statuses = [
                    httpx.get(base + path, verify=TLS).headers["x-cache-status"] for _ in range(2)
                ]
                expected = ["MISS", "HIT"] if path.endswith("public.png") else ["MISS", "MISS"]
                assert statuses == expected, path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert Counter(_Upstream.seen) == {
        "/i/a/partial.png": 2,
        "/i/a/unmarked.png": 2,
        "/i/a/public.png": 1,
    }


#: What edge sends so that nothing it serves turns into script on its origin.
SECURITY_HEADERS = (
    "content-type",
    "content-security-policy",
    "content-disposition",
    "x-content-type-options",
    "access-control-allow-origin",
)
#: What caches and range requests rely on. (nginx's own 206 and 304 answers from its cache
#: leave out Accept-Ranges, which the stored answer has: not compared.)
METADATA = ("etag", "last-modified", "content-length", "content-range")


def test_security_headers_survive_the_proxy_and_its_cache(site: Site) -> None:
    root, edges, base = site
    files = {
        "public/alice/logo.svg": svg(),
        "public/alice/page.html": b"<script>alert(document.domain)</script>",
        "private/alice/secret.svg": svg("secret") + CANARY,
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    targets = [
        "/i/alice/photo.png",
        "/i/alice/logo.svg",
        "/i/alice/page.html",
        signed("/i/alice/secret.svg"),
        signed("/i/alice/secret.png"),
    ]
    differences: list[str] = []
    with httpx.Client(verify=TLS) as client:
        for target in targets:
            whole = client.get(edges[0].base + target)
            kinds = {
                "GET": {},
                "range": {"Range": "bytes=0-9"},
                "conditional": {"If-None-Match": whole.headers["etag"]},
            }
            for method in ("GET", "HEAD"):
                for kind, headers in kinds.items():
                    direct = client.request(method, edges[0].base + target, headers=headers)
                    for attempt in ("miss", "hit"):
                        through = client.request(method, base + target, headers=headers)
                        where = f"{method} {kind} {target} ({attempt})"
                        got = [through.status_code, _cache_control(through)]
                        want = [direct.status_code, _cache_control(direct)]
                        got += [through.headers.get_list(h) for h in METADATA]
                        want += [direct.headers.get_list(h) for h in METADATA]
                        if got != want:
                            differences.append(f"{where}: {got} != {want}")
                        for h in SECURITY_HEADERS:
                            # A 304 need not repeat the stored answer's headers (edge does not);
                            # nginx's may, unchanged.
                            allowed = [direct.headers.get_list(h)]
                            if direct.status_code == 304:
                                allowed.append(whole.headers.get_list(h))
                            if through.headers.get_list(h) not in allowed:
                                differences.append(f"{where}: {h} {through.headers.get_list(h)}")
    assert differences == [], "\n".join(differences)


# --- nginx's own answers: edge's error shape, never an HTML page ------------------------


def exchange(base: str, request: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Send raw bytes on a connection of their own; nginx's status, headers and body."""
    host, _, port = base.removeprefix("http://").partition(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), headers, body


def edge_error_problems(
    answer: tuple[int, dict[str, list[str]], bytes], kind: type[EdgeError], *, head: bool = False
) -> list[str]:
    """How an answer differs from the one edge itself gives for ``kind``."""
    status, headers, body = answer
    expected = {
        "status": kind.status,
        "body": b"" if head else error_body(kind.code, kind.message, kind.status),
        "content-type": ["application/json"],
        "cache-control": ["no-store"],
        "x-content-type-options": ["nosniff"],
    }
    if kind is MethodNotAllowed:
        expected["allow"] = ["GET, HEAD"]
    if kind is Overloaded:
        expected["retry-after"] = ["1"]
    got: dict[str, object] = {k: headers.get(k) for k in expected}
    got.update(status=status, body=body)
    return [f"{k}: {got[k]!r} != {v!r}" for k, v in expected.items() if got[k] != v]


def request(line: str, *headers: str, body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request that asks nginx to close the connection after answering."""
    head = "\r\n".join([line, "Host: img.example.com", *headers, "Connection: close", "", ""])
    return head.encode("latin-1") + body


NO_ROUTE = [
    "/",
    "/metrics",
    "/metrics?format=text",
    "/readyz",
    "/auth",
    "/i",
    "/favicon.ico",
    "//metrics",
    "/%6detrics",
    "/metrics/../i/alice/photo.png",  # edge would not route it to /i/ either
    "//i/alice/photo.png",
    "/_edge_pass",
    "/_edge_error/internal",
]
#: Image URIs that nginx's normalisation takes out of /i/: edge's path rules refuse them.
DOT_SEGMENTS = ["/i/../metrics", "/i/%2e%2e/metrics", "/i/alice/../../auth", "/i/.."]
REFUSED: list[tuple[str, bytes, type[EdgeError]]] = [
    *[
        (method, request(f"{method} /i/alice/photo.png HTTP/1.1"), MethodNotAllowed)
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PURGE")
    ],
    (
        "POST with a body",
        request("POST /i/alice/photo.png HTTP/1.1", "Content-Length: 5000", body=b"x" * 5000),
        MethodNotAllowed,
    ),
    (
        "GET with a body",
        request("GET /i/alice/photo.png HTTP/1.1", "Content-Length: 5000", body=b"x" * 5000),
        BadRequest,
    ),
    ("lower-case method", request("get /i/alice/photo.png HTTP/1.1"), BadRequest),
    ("broken request line", request("GET /i/alice/photo.png HTTP/1.1 x"), BadRequest),
    ("unknown version", request("GET /i/alice/photo.png HTTP/2.0"), BadRequest),
    ("space in a header name", request("GET /i/alice/photo.png HTTP/1.1", "X Y: z"), BadRequest),
    ("two Hosts", request("GET /i/alice/photo.png HTTP/1.1", "Host: evil.example"), BadRequest),
    (
        "unknown transfer coding",
        request("GET /i/alice/photo.png HTTP/1.1", "Transfer-Encoding: gzip"),
        BadRequest,
    ),
    # Over nginx's 16 KiB lines (large_client_header_buffers 2 16k).
    ("20 KiB request line", request(f"GET /i/alice/{'a' * 20000}.png HTTP/1.1"), HeadersTooLarge),
    (
        "20 KiB header",
        request("GET /i/alice/photo.png HTTP/1.1", f"Cookie: {'a' * 20000}"),
        HeadersTooLarge,
    ),
    (
        "40 KiB of headers",
        request("GET /i/alice/photo.png HTTP/1.1", *[f"X-{n}: {'a' * 4000}" for n in range(10)]),
        HeadersTooLarge,
    ),
]


def test_nginx_answers_in_edges_error_shape(site: Site) -> None:
    _, edges, base = site
    problems: list[str] = []
    for path in NO_ROUTE:
        for method in ("GET", "HEAD"):
            answer = exchange(base, request(f"{method} {path} HTTP/1.1"))
            found = edge_error_problems(answer, NotFound, head=method == "HEAD")
            problems += [f"{method} {path}: {problem}" for problem in found]
    for path in DOT_SEGMENTS:
        found = edge_error_problems(exchange(base, request(f"GET {path} HTTP/1.1")), BadRequest)
        problems += [f"{path}: {problem}" for problem in found]
    for name, raw, kind in REFUSED:
        found = edge_error_problems(exchange(base, raw), kind)
        problems += [f"{name}: {problem}" for problem in found]
    # HTTP/0.9 has no headers to carry nosniff or a CSP: no image goes out that way.
    with socket.create_connection(("127.0.0.1", int(base.rpartition(":")[2])), timeout=5) as old:
        old.sendall(b"GET /i/alice/photo.png\r\n")
        assert old.recv(65536) == error_body(BadRequest.code, BadRequest.message, 400)
    assert problems == [], "\n".join(problems)
    # The edges saw their start-up health checks and the dot segments, nothing else.
    time.sleep(0.3)  # the log thread writes asynchronously
    reached = {
        str(json.loads(line)["path"])
        for edge in edges
        for line in edge.log.read_text().splitlines()
        if line.startswith("{")
    }
    assert reached == {"/healthz", *DOT_SEGMENTS}


def test_metrics_are_never_reachable_through_the_proxy(site: Site) -> None:
    _, edges, base = site
    spellings = ["/metrics", "/%6detrics", "//metrics", "/i/../metrics", "/i/%2e%2e/metrics"]
    for path in spellings:
        response = httpx.get(base + path, verify=TLS)
        assert response.json()["error"]["code"] in ("NOT_FOUND", "BAD_REQUEST"), path
        assert b"edge_requests_total" not in response.content
    metrics = httpx.get(edges[0].base + "/metrics", verify=TLS)  # nginx is a loopback client too
    assert metrics.status_code == 200 and b"edge_requests_total" in metrics.content
    assert len([line for edge in edges for line in edge.requests("/metrics")]) == 1


def test_edges_silent_or_down_are_json_errors_never_cached(tmp_path: Path) -> None:
    # proxy_read_timeout shortened so that silent edges time out within the test.
    edits = [("proxy_read_timeout 30s;", "proxy_read_timeout 1s;")]
    with proxied_site(tmp_path, edits=edits) as (_, edges, base):
        assert httpx.get(base + "/i/alice/photo.png", verify=TLS).status_code == 200  # now cached
        for edge in edges:
            edge.stop()
        url = signed("/i/alice/secret.png")
        # Edges that accept connections and never answer: 504 after proxy_read_timeout.
        silent = [socket.create_server(("127.0.0.1", edge.port)) for edge in edges]
        try:
            answer = exchange(base, request(f"GET {url} HTTP/1.1"))
            assert edge_error_problems(answer, StorageTimeout) == []
        finally:
            for listener in silent:
                listener.close()
        # Edges gone: 502.
        for method in ("GET", "HEAD"):
            for target in (url, "/i/alice/photo.png?v=2", "/healthz"):
                answer = exchange(base, request(f"{method} {target} HTTP/1.1"))
                found = edge_error_problems(answer, StorageError, head=method == "HEAD")
                assert found == [], (method, target, found)
        stale = httpx.get(
            base + "/i/alice/photo.png", verify=TLS
        )  # a cached public image outlives them
        assert stale.status_code == 200 and stale.content == PNG
    cache = tmp_path / "nginx" / "cache"
    stored = b"".join(f.read_bytes() for f in cache.rglob("*") if f.is_file())
    assert b'"error"' not in stored, "an error was cached"


# --- Clients that stop reading ----------------------------------------------------------

STALLED_CLIENTS = 40
SEND_TIMEOUT = 2.0  # the test's send_timeout; the shipped one is 30 s


def kernel_buffers() -> int:
    """Roughly the most the kernel buffers on one TCP connection (the receiving end's and
    the sending end's maxima): what edge can have sent that nginx has not read yet."""
    rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return rmem + wmem


def nginx_disk(workdir: Path) -> int:
    """Bytes nginx holds on disk: files in its folders, and temporary files it holds open
    after unlinking them (nginx unlinks a temporary file as soon as it has opened it)."""
    kept = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file() and f.suffix == "")
    master = (workdir / "nginx.pid").read_text().strip()
    unlinked = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if parent != master:  # not one of nginx's workers
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).endswith(" (deleted)") and stat.S_ISREG(fd.stat().st_mode):
                    unlinked += fd.stat().st_size
        except OSError:  # a process or descriptor that went away meanwhile
            continue
    return kept + unlinked


def stalled_download(base: str, target: str) -> socket.socket:
    """A client that asks for ``target`` and never reads: a tiny receive window, set before
    connecting so the window is small from the handshake on."""
    host, _, port = base.removeprefix("http://").partition(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(request(f"GET {target} HTTP/1.1").replace(b"Connection: close\r\n", b""))
    return client


def still_open(client: socket.socket) -> bool:
    """Whether the connection is still established, seen without reading from it (reading
    would let nginx send again)."""
    return client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 1  # ESTABLISHED


def received(client: socket.socket) -> int:
    """What a cut connection still had for the client: read it all, to the reset or the end."""
    client.settimeout(5)
    got = 0
    with contextlib.suppress(ConnectionResetError):
        while chunk := client.recv(1 << 20):
            got += len(chunk)
    return got


def test_clients_that_stop_reading_hold_no_disk_and_are_cut(tmp_path: Path) -> None:
    # Far more than the kernel can swallow (its accounting is approximate: 4 times).
    size = max(64 << 20, 4 * kernel_buffers())
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as sparse:
        sparse.truncate(size)
    edits = [("send_timeout 30s;", f"send_timeout {SEND_TIMEOUT:g}s;")]
    with proxied_site(tmp_path, edits=edits) as (root, edges, base):
        huge.rename(root / "private" / "alice" / "huge.bin")
        target = signed("/i/alice/huge.bin")
        started = time.monotonic()
        stalled = [stalled_download(base, target) for _ in range(STALLED_CLIENTS)]
        try:
            held = 0
            with httpx.Client(timeout=2, verify=TLS) as others:
                # While they stall (before send_timeout), everyone else is served at once.
                while time.monotonic() - started < SEND_TIMEOUT - 1:
                    for path in ("/i/alice/photo.png", signed("/i/alice/secret.png"), "/healthz"):
                        asked = time.monotonic()
                        assert others.get(base + path).status_code == 200
                        assert time.monotonic() - asked < 1, path
                    held = max(held, nginx_disk(tmp_path / "nginx"))
                    time.sleep(0.2)
            assert held < 1 << 20, f"nginx spooled {held} bytes to disk"
            # After send_timeout, each stalled client is cut, far short of the file.
            while any(still_open(client) for client in stalled):
                assert time.monotonic() - started < SEND_TIMEOUT + 5, "stalled clients stay"
                time.sleep(0.1)
            assert max(received(client) for client in stalled) < size // 2
        finally:
            for client in stalled:
                client.close()
        # Edge stopped sending when nginx's memory buffers and the kernel's were full.
        deadline = time.monotonic() + 10
        while len(lines := edge_lines(edges, "/i/alice/huge.bin")) < STALLED_CLIENTS:
            assert time.monotonic() < deadline, f"{len(lines)} of the stalled requests ended"
        assert max(int(str(sent)) for _, _, sent in lines) < size // 2

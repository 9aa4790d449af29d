"""One transform per variant across the fleet: real nginx (deploy/nginx/edge-proxy.conf)
in front of real `edge serve` processes on one storage folder. nginx sends every request
for an image to the edge its path hashes to (consistently), whatever the query, so each
variant is transformed once, counted on the edges' own /metrics; an edge that dies or
joins moves only its own share of images; private variants never enter nginx's cache."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from edge.samples import CANARY, png
from tests.support.client import TLS
from tests.support.fleet import EdgeProcess, fleet, signed
from tests.support.nginx import run_nginx

pytestmark = pytest.mark.slow

PHOTO = (Path(__file__).parent.parent / "edge" / "samples" / "mountains.jpg").read_bytes()
#: Images of their own for the spreading tests: alice/p0.png ... (each a cache miss).
IMAGES = 40
#: nginx without its cache: every request reaches an edge, so only the hashing is tested.
NO_CACHE = [("            proxy_cache edge;\n", "            proxy_cache off;\n")]


def storage(tmp_path: Path) -> Path:
    """A storage folder: public alice/photo.jpg and p0.png..., private alice/secret.png, and
    alice/both.png in each folder (the private one another picture)."""
    root = tmp_path / "images"
    public, private = root / "public" / "alice", root / "private" / "alice"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "photo.jpg").write_bytes(PHOTO)
    for n in range(IMAGES):
        (public / f"p{n}.png").write_bytes(png(32, 32, hue=n % 3))
    (private / "secret.png").write_bytes(png(40, 30, hue=1) + CANARY)
    (public / "both.png").write_bytes(png(32, 32))
    (private / "both.png").write_bytes(png(40, 30, hue=2) + CANARY)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return storage(tmp_path)


def fetch_all(base: str, targets: Sequence[str], *, concurrency: int = 10) -> list[httpx.Response]:
    """Every target through nginx, ``concurrency`` at a time, in order of ``targets``."""

    async def run() -> list[httpx.Response]:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30, verify=TLS) as client:

            async def one(target: str) -> httpx.Response:
                async with gate:
                    return await client.get(base + target)

            return await asyncio.wait_for(asyncio.gather(*(one(t) for t in targets)), 120)

    return asyncio.run(run())


def owners(edges: Sequence[EdgeProcess]) -> dict[str, set[int]]:
    """Each image path the edges served (percent-decoded, query left out), and which
    edges served it."""
    found: dict[str, set[int]] = {}
    for index, edge in enumerate(edges):
        for line in edge.lines():
            path = unquote(str(line["path"]).split("?")[0])
            if path.startswith("/i/"):
                found.setdefault(path, set()).add(index)
    return found


def all_ok(answers: Sequence[httpx.Response]) -> bool:
    return {answer.status_code for answer in answers} == {200}


def test_one_variant_asked_50_times_is_transformed_once(root: Path, tmp_path: Path) -> None:
    with fleet(root, tmp_path) as (edges, base):
        answers = fetch_all(base, ["/i/alice/photo.jpg?w=300"] * 50)
        assert all_ok(answers) and len({answer.content for answer in answers}) == 1
        assert answers[0].headers["content-type"] == "image/jpeg"
        assert [edge.transforms() for edge in edges] in ([1, 0], [0, 1])


def test_every_spelling_of_a_variant_is_made_on_one_edge_once(root: Path, tmp_path: Path) -> None:
    """Without nginx's cache every request reaches an edge: what a client adds to the query
    (junk parameters, another order, a default written out) or how it escapes the path
    chooses neither the edge nor a second transform. A private variant signed anew for
    each of 50 requests (a new exp, a new sig) is made once as well."""
    spellings = [
        "/i/alice/photo.jpg?w=300",
        "/i/alice/photo.jpg?w=300&q=80",
        "/i/alice/%70hoto.jpg?w=300",
        *[f"/i/alice/photo.jpg?w=300&v={n}" for n in range(20)],
        *[f"/i/alice/photo.jpg?junk{n}=x&w=300" for n in range(27)],
    ]
    private = [signed("/i/alice/secret.png", 600 + n, transform="w=20") for n in range(50)]
    with fleet(root, tmp_path, edits=NO_CACHE) as (edges, base):
        public_answers = fetch_all(base, spellings)
        assert all_ok(public_answers) and len({a.content for a in public_answers}) == 1
        assert sorted(edge.transforms() for edge in edges) == [0, 1]
        private_answers = fetch_all(base, private)
        assert all_ok(private_answers) and len({a.content for a in private_answers}) == 1
        assert sorted(edge.transforms() for edge in edges) in ([0, 2], [1, 1])
        served = owners(edges)
        reached = sum(str(line["path"]).startswith("/i/") for e in edges for line in e.lines())
    # Each image's 50 requests all went to one edge.
    assert reached == 100 and len(served) == 2, served
    assert all(len(edges_) == 1 for edges_ in served.values()), served


def test_images_spread_over_the_edges_each_on_one(root: Path, tmp_path: Path) -> None:
    """Many images, each asked as three variants and a conversion: every image's requests
    meet on one edge, and both edges get images (neither gets all)."""
    targets = [
        f"/i/alice/p{n}.{form}"
        for n in range(IMAGES)
        for form in ("png?w=8", "png?w=16", "png?w=24&h=8", "webp")
    ]
    with fleet(root, tmp_path, edits=NO_CACHE) as (edges, base):
        assert all_ok(fetch_all(base, targets))
        served = owners(edges)
        made = [edge.transforms() for edge in edges]
    homes: dict[str, set[int]] = {}  # each image (its path without the extension)
    for path, served_by in served.items():
        homes.setdefault(path.rsplit(".", 1)[0], set()).update(served_by)
    assert len(homes) == IMAGES and all(len(home) == 1 for home in homes.values()), homes
    per_edge = [sum(home == {index} for home in homes.values()) for index in range(2)]
    assert min(per_edge) > 0, per_edge
    assert made == [4 * count for count in per_edge]  # each variant made once, at home


def private_round(base: str, round_: int) -> list[httpx.Response]:
    """Each image's private-style variant, signed anew (a new signature each round)."""
    targets = [signed(f"/i/alice/p{n}.png", 600 + round_, transform="w=12") for n in range(IMAGES)]
    return fetch_all(base, targets)


def test_an_edge_that_dies_moves_only_its_images(root: Path, tmp_path: Path) -> None:
    """Signed variants, never cached by nginx, so every request reaches an edge: once one
    edge is killed, its images are served by the other (made there once), with no failed
    request; the other's own images are not made again."""
    with fleet(root, tmp_path) as (edges, base):
        assert all_ok(private_round(base, 1))
        first = owners(edges)
        homes = {path: next(iter(home)) for path, home in first.items()}
        assert all(len(home) == 1 for home in first.values()) and set(homes.values()) == {0, 1}
        kept = sum(home == 0 for home in homes.values())
        assert [edge.transforms() for edge in edges] == [kept, IMAGES - kept]

        edges[1].process.send_signal(signal.SIGKILL)  # no goodbye: connections just die
        edges[1].process.wait(10)
        for round_ in (2, 3):
            answers = private_round(base, round_)
            assert all_ok(answers), sorted({a.status_code for a in answers})
            # The dead edge's images were made once on the living one, its own not again.
            assert edges[0].transforms() == IMAGES
        served = {str(line["path"]).split("?")[0] for line in edges[0].lines()}
        assert served >= set(homes)
    access = tmp_path / "nginx" / "edge-proxy-access.log"
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    retried = [line for line in lines if "," in line["upstream_addr"]]
    assert retried and all(line["status"] == 200 for line in retried)
    assert all(line["upstream_status"].startswith("502, ") for line in retried)


def test_an_edge_that_joins_takes_images_only_for_itself(root: Path, tmp_path: Path) -> None:
    """The same images through nginx with two edges, then with a third added: every image
    that moves, moves to the new edge (the hash is consistent; a plain one would move
    most images, between the old edges too)."""
    edges = [EdgeProcess(root, tmp_path / f"edge{n}", wait=False) for n in range(3)]
    try:
        for edge in edges:
            edge.wait_ready()
        addresses = [edge.base.removeprefix("http://") for edge in edges]
        before = homes_through(tmp_path / "two", addresses[:2], edges)
        after = homes_through(tmp_path / "three", addresses, edges)
    finally:
        for edge in edges:
            edge.stop()
    moved = {path for path in before if after[path] != before[path]}
    assert moved and all(after[path] == 2 for path in moved), (before, after)
    assert len(moved) < IMAGES * 2 // 3, len(moved)  # about a third: the new edge's share


def homes_through(workdir: Path, upstreams: list[str], edges: list[EdgeProcess]) -> dict[str, int]:
    """Which edge served each image, through nginx with ``upstreams`` (its own cache)."""
    seen = [len(edge.lines()) for edge in edges]
    with run_nginx("edge-proxy.conf", workdir, upstreams=upstreams, edits=NO_CACHE) as base:
        assert all_ok(fetch_all(base, [f"/i/alice/p{n}.png" for n in range(IMAGES)]))
    homes: dict[str, int] = {}
    for index, edge in enumerate(edges):
        for line in edge.lines()[seen[index] :]:
            path = str(line["path"])
            if path.startswith("/i/"):
                assert path not in homes, f"{path} reached two edges"
                homes[path] = index
    assert len(homes) == IMAGES
    return homes


def test_private_variants_never_enter_nginx_cache(root: Path, tmp_path: Path) -> None:
    """A signed variant reaches an edge every time, whatever the client's cache headers;
    an unsigned request for the same name gets the public picture (or 404), never the
    private bytes; nothing private is stored."""
    odd = {
        "Cache-Control": "max-age=3600, only-if-cached",
        "Pragma": "cache",
        "Cookie": "session=1",
        "Authorization": "Bearer x",
        "X-Accel-Expires": "3600",
    }
    with fleet(root, tmp_path) as (edges, base), httpx.Client(timeout=30, verify=TLS) as client:
        public = [client.get(base + "/i/alice/both.png?w=16", headers=odd) for _ in range(2)]
        assert [a.headers["x-cache-status"] for a in public] == ["MISS", "HIT"]
        url = signed("/i/alice/both.png", transform="w=16")
        private = [client.get(base + url, headers=odd) for _ in range(3)]
        assert {(a.status_code, a.headers["x-cache-status"]) for a in private} == {(200, "BYPASS")}
        assert {a.headers["cache-control"].split(",")[0] for a in private} == {"private"}
        secret = client.get(base + signed("/i/alice/secret.png", transform="w=16")).content
        assert private[0].content not in (public[0].content, secret)
        again = client.get(base + "/i/alice/both.png?w=16", headers=odd)
        assert again.headers["x-cache-status"] == "HIT" and again.content == public[0].content
        for target in ("/i/alice/secret.png?w=16", "/i/alice/secret.png"):
            unsigned = client.get(base + target, headers=odd)
            assert unsigned.status_code == 404 and unsigned.content != secret
        reached = sum(len(edge.requests("/i/alice/both.png")) for edge in edges)
        assert reached == 1 + 3, "every signed request reached an edge"
    stored = b"".join(
        f.read_bytes() for f in (tmp_path / "nginx" / "cache").rglob("*") if f.is_file()
    )
    assert stored and private[0].content not in stored and secret not in stored

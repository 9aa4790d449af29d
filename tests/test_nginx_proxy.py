"""Real nginx in front of two real edge processes (deploy/nginx/edge-proxy.conf)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.keys import parse_keyring
from edge.samples import CANARY, png
from edge.signing import sign_url
from tests.conftest import KEYS
from tests.nginx import run_nginx
from tests.servers import free_port
from tests.test_process import EDGE, clean_env, wait_ready

PNG = png(32, 32)
SECRET = png(40, 30, hue=1) + CANARY


class EdgeProcess:
    def __init__(self, root: Path, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.log = workdir / "access.log"
        env = clean_env(
            EDGE_STORAGE=str(root), EDGE_SIGNING_KEYS=KEYS, EDGE_TRUSTED_PROXIES="127.0.0.1"
        )
        with self.log.open("wb") as out, (workdir / "stderr.log").open("wb") as err:
            self.process = subprocess.Popen(
                [*EDGE, "serve", "--port", str(self.port)],
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=err,
            )
        wait_ready(self.base, self.process)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str) -> list[dict[str, object]]:
        time.sleep(0.3)  # the log thread writes asynchronously
        lines = [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]
        return [line for line in lines if str(line["path"]).split("?")[0] == path]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, list[EdgeProcess], str]]:
    root = tmp_path / "images"
    for folder in ("public/alice", "private/alice"):
        (root / folder).mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(PNG)
    (root / "private" / "alice" / "secret.png").write_bytes(SECRET)
    edges = [EdgeProcess(root, tmp_path / f"edge{n}") for n in (1, 2)]
    try:
        upstreams = [edge.base.removeprefix("http://") for edge in edges]
        with run_nginx("edge-proxy.conf", tmp_path / "nginx", upstreams=upstreams) as base:
            yield root, edges, base
    finally:
        for edge in edges:
            edge.stop()


def signed(path: str, seconds: int = 600) -> str:
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    return sign_url(path, key=key, exp=int(time.time()) + seconds)


def test_a_signed_url_verifies_on_every_instance(site: tuple[Path, list[EdgeProcess], str]) -> None:
    _, edges, _ = site
    url = signed("/i/alice/secret.png")
    for edge in edges:
        response = httpx.get(edge.base + url)
        assert response.status_code == 200 and response.content == SECRET


def test_public_images_are_cached_by_nginx(site: tuple[Path, list[EdgeProcess], str]) -> None:
    _, edges, base = site
    first = httpx.get(base + "/i/alice/photo.png")
    second = httpx.get(base + "/i/alice/photo.png")
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
        response = httpx.get(base + url)
        assert response.status_code == 200 and response.content == SECRET
        assert response.headers["x-cache-status"] != "HIT"
    unsigned = httpx.get(base + "/i/alice/secret.png")
    assert unsigned.status_code == 404 and CANARY not in unsigned.content
    again = httpx.get(base + "/i/alice/secret.png")
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
    total, concurrency = 3000, 16
    statuses: list[int] = []
    errors: list[str] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
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

"""Request IDs through nginx (deploy/nginx/edge-proxy.conf, and auth-request.conf) in front
of real edges: every answer carries nginx's own ID for that request, the one in nginx's
access log and, when the request reached an edge (auth-request.conf: its verdict's
subrequest), in the edge's; never a client's, never a cached answer's."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from edge.samples import CANARY, png
from tests.support.client import TLS
from tests.support.fleet import EdgeProcess, fleet, signed
from tests.support.nginx import run_nginx

pytestmark = pytest.mark.slow

CHOSEN = "client-chosen-id"


def images(tmp_path: Path) -> Path:
    """A folder with a public and a private image of alice's."""
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private" / "alice").mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(png(32, 32))
    (root / "private" / "alice" / "secret.png").write_bytes(png(32, 32) + CANARY)
    return root


def one_id_each(answers: dict[str, httpx.Response]) -> dict[str, str]:
    """Each answer's one X-Request-ID, checked nginx's (32 hex digits) and its own."""
    ids = {name: answer.headers.get_list("x-request-id") for name, answer in answers.items()}
    assert all(
        len(found) == 1 and re.fullmatch(r"[0-9a-f]{32}", found[0]) for found in ids.values()
    ), ids
    assert len({found[0] for found in ids.values()}) == len(answers), ids  # one per request
    return {name: found[0] for name, found in ids.items()}


def nginx_logged(log: Path) -> list[str]:
    """The request IDs in nginx's access log, in order (its readiness probes left out)."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line["request_id"] for line in lines if line["path"] != "/nginx-ready-probe"]


def test_every_answer_has_nginxs_id_for_that_request(tmp_path: Path) -> None:
    root = images(tmp_path)
    asked = {
        "miss": "/i/alice/photo.png?w=16",
        "hit": "/i/alice/photo.png?w=16",
        "hit, an ID of the client's": "/i/alice/photo.png?w=16",
        "signed, an ID of the client's": signed("/i/alice/secret.png"),
        "nginx's own 404": "/metrics",
    }
    with fleet(root, tmp_path) as (edges, base), httpx.Client(verify=TLS) as client:
        answers = {}
        for name, target in asked.items():
            headers = {"X-Request-ID": CHOSEN} if "client's" in name else {}
            answers[name] = client.get(base + target, headers=headers)
        time.sleep(0.3)  # the edges' log threads write asynchronously
        edge_ids = {
            json.loads(line)["request_id"]
            for edge in edges
            for line in edge.log.read_text().splitlines()
            if line.startswith('{"') and "/i/alice/" in line
        }
    ids = one_id_each(answers)
    assert [answers[name].headers["x-cache-status"] for name in list(asked)[:3]] == [
        "MISS",
        "HIT",
        "HIT",
    ]
    assert answers["nginx's own 404"].status_code == 404
    # nginx's access log holds each ID; the edges' hold those of the requests they served.
    assert nginx_logged(tmp_path / "nginx" / "edge-proxy-access.log") == list(ids.values())
    assert edge_ids == {ids["miss"], ids["signed, an ID of the client's"]}


def test_auth_request_answers_and_verdicts_share_nginxs_id(tmp_path: Path) -> None:
    """auth-request.conf: every answer (a file nginx serves, each of edge's refusals, nginx's
    own pages) has nginx's ID, and the edge logs the verdict it gave under the same one."""
    root = images(tmp_path)
    secret = signed("/i/alice/secret.png")
    asked: dict[str, tuple[str, str, dict[str, str]]] = {
        "public": ("GET", "/i/alice/photo.png", {}),
        "signed, an ID of the client's": ("GET", secret, {"X-Request-ID": CHOSEN}),
        "unsigned private": ("GET", "/i/alice/secret.png", {"X-Request-ID": CHOSEN}),
        "tampered": ("GET", secret.replace("/secret.png", "/photo.png"), {}),
        "POST": ("POST", "/i/alice/photo.png", {}),
        "range past the end": ("GET", "/i/alice/photo.png", {"Range": "bytes=99999-"}),
        "nginx's own 404": ("GET", "/metrics", {}),
    }
    edge = EdgeProcess(root, tmp_path / "edge")
    try:
        with (
            run_nginx(
                "auth-request.conf",
                tmp_path / "nginx",
                upstreams=[f"127.0.0.1:{edge.port}"],
                root=root,
            ) as base,
            httpx.Client(verify=TLS) as client,
        ):
            answers = {
                name: client.request(method, base + target, headers=headers)
                for name, (method, target, headers) in asked.items()
            }
        verdicts = [line["request_id"] for line in edge.requests("/auth")]
    finally:
        edge.stop()
    statuses = [answer.status_code for answer in answers.values()]
    assert statuses == [200, 200, 404, 403, 405, 416, 404], statuses
    ids = one_id_each(answers)
    assert nginx_logged(tmp_path / "nginx" / "edge-auth-access.log") == list(ids.values())
    assert verdicts == list(ids.values())[:-1], "each /i/ request's verdict, under its ID"

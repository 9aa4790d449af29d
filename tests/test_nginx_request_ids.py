"""Request IDs through nginx (deploy/nginx/edge-proxy.conf) in front of real edges: every
answer carries nginx's own ID for that request, the one in nginx's access log and, when
the request reached an edge, in the edge's; never a client's, never a cached answer's."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from edge.samples import CANARY, png
from tests.support.client import TLS
from tests.support.fleet import fleet, signed

pytestmark = pytest.mark.slow

CHOSEN = "client-chosen-id"


def test_every_answer_has_nginxs_id_for_that_request(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private" / "alice").mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(png(32, 32))
    (root / "private" / "alice" / "secret.png").write_bytes(png(32, 32) + CANARY)
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
    ids = {name: answer.headers.get_list("x-request-id") for name, answer in answers.items()}
    assert all(
        len(found) == 1 and re.fullmatch(r"[0-9a-f]{32}", found[0]) for found in ids.values()
    )
    assert len({found[0] for found in ids.values()}) == len(asked), ids  # one per request
    assert [answers[name].headers["x-cache-status"] for name in list(asked)[:3]] == [
        "MISS",
        "HIT",
        "HIT",
    ]
    assert answers["nginx's own 404"].status_code == 404
    # nginx's access log holds each ID; the edges' hold those of the requests they served.
    log = (tmp_path / "nginx" / "edge-proxy-access.log").read_text().splitlines()
    lines = [json.loads(line) for line in log]
    logged = [line["request_id"] for line in lines if line["path"] != "/nginx-ready-probe"]
    assert logged == [found[0] for found in ids.values()]
    assert edge_ids == {ids["miss"][0], ids["signed, an ID of the client's"][0]}

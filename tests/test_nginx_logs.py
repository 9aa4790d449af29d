"""What nginx writes with each shipped config (deploy/nginx/edge-proxy.conf,
deploy/nginx/auth-request.conf, deploy/compose/nginx.conf), run for real: signed URLs in
every spelling edge accepts, with the edge up and then stopped, and no signature reaches
any file nginx wrote, while the JSON access log still shows each upstream failure. The same
run with the error log at `warn` (what the configs shipped before) finds the signatures
there: nginx writes every message about a request with its request line."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from edge.app import Edge
from edge.keys import parse_keyring
from edge.settings import Settings
from edge.signing import sign_url
from tests.support.client import raw_request
from tests.support.nginx import STARTUP_LOG, run_nginx
from tests.support.processes import populated
from tests.support.servers import run_uvicorn
from tests.support.world import KEYS

#: Each shipped config: its file, its error and access logs once run by the tests
#: (tests.support.nginx.adapt writes them into the test's folder), and the lines that
#: set the levels of messages about requests.
CONFIGS = {
    "edge-proxy": (
        "edge-proxy.conf",
        "edge-proxy-error.log",
        "edge-proxy-access.log",
        ["error_log /var/log/nginx/edge-proxy-error.log crit;"],
    ),
    "auth-request": (
        "auth-request.conf",
        "edge-auth-error.log",
        "edge-auth-access.log",
        [
            "error_log /var/log/nginx/edge-auth-error.log crit;",
            "error_log /var/log/nginx/edge-auth-error.log alert;",
        ],
    ),
    "compose": (
        "../compose/nginx.conf",
        "stderr.log",
        "stdout.log",
        ["error_log /dev/stderr crit;"],
    ),
}
#: compose's nginx reaches its edges by service name.
COMPOSE_EDGES = [
    ("server edge1:8080 ", "server 127.0.0.1:8080 "),
    ("server edge2:8080 ", "server 127.0.0.1:8081 "),
]


def signed_targets() -> dict[str, str]:
    """Signed URLs, each with a signature of its own, in the spellings edge reads."""
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    now = int(time.time())
    exp = iter(range(now + 600, now + 700))

    def url(path: str, **options: object) -> str:
        return sign_url(path, key=key, exp=next(exp), **options)  # type: ignore[arg-type]

    return {
        "private": url("/i/alice/secret.png"),
        "with kid": url("/i/alice/secret.png", include_kid=True),
        "public, signed": url("/i/alice/photo.png"),
        "name escaped": url("/i/alice/secret.png").replace("sig=", "%73ig="),
        "sig last": _sig_last(url("/i/alice/secret.png")),
        "transform": url("/i/alice/photo.png", transform="w=16"),
        "a link": url("/i/alice/link.png"),
        "no such image": url("/i/alice/none.png"),
        "expired": sign_url("/i/alice/secret.png", key=key, exp=now - 60),
        "twice": url("/i/alice/secret.png") + "&sig=" + "B" * 43,
        "upper case": url("/i/alice/secret.png").replace("sig=", "SIG="),
    }


def _sig_last(target: str) -> str:
    path, _, query = target.partition("?")
    sig, _, rest = query.partition("&")
    return f"{path}?{rest}&{sig}"


def signatures(targets: dict[str, str]) -> list[bytes]:
    found = []
    for target in targets.values():
        for part in target.partition("?")[2].split("&"):
            name, _, value = part.partition("=")
            if name.lower() in ("sig", "%73ig") and value:
                found.append(value.encode())
    return found


def run(config: str, tmp_path: Path, *, levels: str | None = None) -> tuple[Path, dict[str, str]]:
    """Run ``config`` in front of an edge: the signed URLs with the edge up, then stopped.
    ``levels`` replaces the shipped levels of messages about requests. Gives nginx's folder
    (once nginx has stopped) and the URLs asked."""
    name, _, _, level_lines = CONFIGS[config]
    root = populated(tmp_path)
    (root / "private" / "alice" / "link.png").symlink_to(root / "private" / "alice" / "secret.png")
    settings = Settings.from_env(
        {"EDGE_STORAGE": str(root), "EDGE_SIGNING_KEYS": KEYS, "EDGE_ACCESS_LOG": "off"}
    )
    edits = list(COMPOSE_EDGES) if config == "compose" else []
    if levels is not None:
        edits += [(line, line.rsplit(" ", 1)[0] + f" {levels};") for line in level_lines]
    targets = signed_targets()
    workdir = tmp_path / "nginx"
    with contextlib.ExitStack() as edge:
        upstream = edge.enter_context(run_uvicorn(Edge(settings))).removeprefix("http://")
        with run_nginx(name, workdir, upstreams=[upstream], root=root, edits=edits) as base:
            for target in targets.values():
                raw_request(base, target)
            assert raw_request(base, targets["private"])[0] == 200
            edge.close()  # the edge is down: nginx fails to reach it
            for target in targets.values():
                raw_request(base, target)
            assert raw_request(base, targets["private"])[0] == 502
    return workdir, targets


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_no_signature_reaches_any_file_nginx_writes(config: str, tmp_path: Path) -> None:
    workdir, targets = run(config, tmp_path)
    _, error_log, access_log, _ = CONFIGS[config]
    written = [path for path in workdir.rglob("*") if path.is_file()]
    assert {error_log, access_log, STARTUP_LOG} <= {path.name for path in written}
    for path in written:
        data = path.read_bytes()
        for sig in signatures(targets):
            assert sig not in data, f"{path.name} holds a signature"
    # Messages about requests stay out of the error log in all of this: none holds a URL.
    assert "request:" not in (workdir / error_log).read_text()
    lines = [json.loads(line) for line in (workdir / access_log).read_text().splitlines()]
    images = [line for line in lines if line["path"].startswith("/i/")]
    assert len(images) == 2 * len(targets) + 2
    assert sum("sig=[redacted]" in line["path"] for line in images) >= len(targets)
    # The upstream failures nginx no longer writes in the error log are in the access log:
    # the edge tried and what it answered (502: no connection), for every request it made.
    down = images[len(targets) + 1 :]
    failed = [line for line in down if line["status"] == 502 and line["upstream_status"]]
    assert failed and all("502" in line["upstream_status"] for line in failed)
    assert all(line["upstream_addr"] for line in failed)
    up = images[: len(targets) + 1]
    assert {line["status"] for line in up} >= {200, 403}


@pytest.mark.slow
@pytest.mark.parametrize("config", ["edge-proxy", "auth-request"])
def test_the_error_log_at_warn_would_hold_signatures(config: str, tmp_path: Path) -> None:
    """The control: nginx's upstream errors (error, warn) and, in auth_request mode, a file
    try_files cannot open (crit) are written with the request line, signature and all."""
    workdir, targets = run(config, tmp_path, levels="warn")
    logged = (workdir / CONFIGS[config][1]).read_bytes()
    assert any(sig in logged for sig in signatures(targets))
    assert b"request: " in logged

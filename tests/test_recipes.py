"""The docs' commands, run as written: the README's quick start on a clean clone, the
recipes of docs/recipes.md (load testing, the API endpoint), and every shipped nginx
config tried without root (docs/deployment.md). tests/support/console.py says the little
a run changes: free ports for the docs' ports, a shorter wrk run, a user who is not root."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.keys import parse_keyring
from edge.signing import Verifier, check_url
from tests.support.client import TLS
from tests.support.console import (
    ROOT,
    Run,
    commands,
    console_block,
    console_blocks,
    outputs,
    recipe_folder,
    run_console,
    stop_group,
)
from tests.support.nginx import DEPLOY_NGINX
from tests.support.processes import clean_env
from tests.support.servers import MotoServer, free_port, s3_client

pytestmark = pytest.mark.slow

DOCS = ROOT / "docs"
#: The image the recipes store as their private one.
ORIGINAL = (DOCS / "transforms" / "original.png").read_bytes()


def recipe_env() -> dict[str, str]:
    """A shell's environment with no edge or AWS settings of the suite's own."""
    return clean_env()


# --- README: the quick start ---------------------------------------------------------------


def test_quick_start_goes_from_a_clean_clone_to_a_signed_private_image(tmp_path: Path) -> None:
    """The README's quick start in a fresh `git clone`, each command as written, then the
    `curl` line it prints: the signed private image, byte for byte.

    One step stands in for the network, and only that one: `.venv` is made beforehand,
    seeing the suite's own venv for the packages edge needs and the clone for edge
    itself (what `pip install -e` makes of it), and `make -t demo` marks the Makefile's
    install steps done. `PORT` in the environment gives the demo a free port, as
    `make demo PORT=8081` does."""
    lines = commands(console_block(ROOT / "README.md", "Quick start"))
    clone = tmp_path / "edge"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {**clean_env(), "PORT": str(free_port())}
    env.pop("PYTHONPATH", None)  # the clone's edge, not this checkout's
    preinstall(clone)
    subprocess.run(["make", "-t", "demo"], cwd=clone, env=env, check=True, capture_output=True)

    *before, server = lines
    for line in before:
        subprocess.run(["bash", "-c", line], cwd=clone, env=env, check=True, timeout=60)
    log = tmp_path / "quick-start.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", server],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        text = wait_for_line(log, process, "Ctrl-C stops the server.")
        curl = re.search(r"^Try one with: (curl .*)$", text, re.MULTILINE)
        assert curl, text
        answer = fetch_when_listening(curl.group(1), process, log)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        stored = clone / "demo-images" / "private" / "demo" / "albums" / "2026" / "sunrise.png"
        assert "sig=" in curl.group(1) and body == stored.read_bytes()
        unsigned = re.search(r"the same private image, unsigned .*\n +(http://\S+)", text)
        assert unsigned, text
        assert httpx.get(unsigned.group(1), timeout=10, verify=TLS).status_code == 404
    finally:
        stop_group(process, how=signal.SIGINT)


def preinstall(clone: Path) -> None:
    """``clone/.venv`` as `make demo` would install it, without the network: a venv whose
    path holds the clone (edge, editable) and the suite's site-packages (its
    dependencies), and the `edge` command."""
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / python / "site-packages"
    # Where the suite finds its packages (its site-packages, and what their .pth files add),
    # never this checkout: the clone's edge comes first.
    suite = [
        entry
        for entry in dict.fromkeys(sys.path)
        if entry and Path(entry).is_dir() and Path(entry).resolve() != ROOT.resolve()
    ]
    (site / "edge-quick-start.pth").write_text("\n".join([str(clone), *suite]) + "\n")
    edge = venv / "bin" / "edge"
    edge.write_text(
        f"#!{venv}/bin/python\nimport sys\n\nfrom edge.cli import main\n\nsys.exit(main())\n"
    )
    edge.chmod(0o755)


def wait_for_line(log: Path, process: subprocess.Popen[bytes], line: str) -> str:
    deadline = time.monotonic() + 60
    while line not in (text := log.read_text()):
        assert process.poll() is None, f"the quick start stopped:\n{text}"
        assert time.monotonic() < deadline, f"no {line!r}:\n{text}"
        time.sleep(0.1)
    return text


def fetch_when_listening(curl: str, process: subprocess.Popen[bytes], log: Path) -> bytes:
    """What ``curl`` prints once the server it names listens (a reader runs it after
    seeing the server start)."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(["bash", "-c", curl], capture_output=True, timeout=30, check=False)
        if done.returncode != 7:  # 7: could not connect (yet)
            assert done.returncode == 0, done.stderr
            return done.stdout
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


# --- docs/recipes.md: load testing ---------------------------------------------------------


def test_load_testing_recipe_measures_a_private_hit() -> None:
    """The recipe as written (wrk for 2 s, not 20): a fresh folder, an edge that starts,
    and every request of the run served the private image."""
    assert shutil.which("wrk"), "wrk is missing: .ci/run installs it (Debian's wrk)"
    lines = commands(console_block(DOCS / "recipes.md", "Load testing"))
    with (
        recipe_folder() as folder,
        run_console(lines, folder, env=recipe_env(), edits=[("-d20s", "-d2s")]) as run,
    ):
        assert "200 image/png" in run.output, run.output
        done = re.search(r"(\d+) requests in", run.output)
        assert done and int(done.group(1)) > 0, run.output
        assert "Non-2xx" not in run.output and "Socket errors" not in run.output, run.output
        outcomes = access_log_outcomes(folder / "edge.log", at_least=int(done.group(1)) + 1)
        assert set(outcomes) == {"private"}, outcomes


def access_log_outcomes(log: Path, *, at_least: int) -> list[str]:
    """The ``outcome`` of every access-log line, once there are ``at_least`` (the log is
    written a few milliseconds after each response)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return [line["outcome"] for line in lines]
        time.sleep(0.1)


# --- docs/recipes.md: the API endpoint -----------------------------------------------------

API = "/api/v1/images/img_1/signed-url"
BOB = {"x-user": "bob"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[Run, str]]:
    """The endpoint recipe, run as written; the app it started stays up for the tests."""
    lines = commands(console_block(DOCS / "recipes.md", "Minting URLs from an API endpoint"))
    with recipe_folder() as folder, run_console(lines, folder, env=recipe_env()) as run:
        yield run, f"http://127.0.0.1:{run.ports[8000]}"


def test_api_endpoint_recipe_prints_what_the_docs_show(endpoint: tuple[Run, str]) -> None:
    run, _ = endpoint
    block = console_block(DOCS / "recipes.md", "Minting URLs from an API endpoint")
    for shown in outputs(block):
        pattern = ".*?".join(re.escape(part) for part in shown.split("…"))
        assert re.search(pattern, run.output), (shown, run.output)


@pytest.mark.parametrize(
    ("body", "ttl", "transform"),
    [
        (None, 3600, ""),
        ({}, 3600, ""),
        ({"expires_in": 60}, 60, ""),
        ({"expires_in": 86400}, 86400, ""),
        ({"transform": {}}, 3600, ""),
        ({"expires_in": 600, "transform": {"w": 200, "fit": "cover"}}, 600, "fit=cover&w=200"),
        ({"transform": {"grayscale": True, "dpr": 1.5}}, 3600, "dpr=1.5&grayscale=true"),
        ({"transform": {"p:thumbnail": ""}}, 3600, "p:thumbnail"),
    ],
)
def test_api_endpoint_mints_urls_the_edge_accepts(
    endpoint: tuple[Run, str], body: object, ttl: int, transform: str
) -> None:
    run, base = endpoint
    if body is None:  # no body at all
        answer = httpx.post(base + API, headers=BOB, verify=TLS)
    else:
        answer = httpx.post(base + API, headers=BOB, json=body, verify=TLS)
    assert answer.status_code == 200, answer.text
    url, expires_at = answer.json()["url"], answer.json()["expires_at"]
    assert url.startswith("https://img.example.com/i/bob/albums/2026/caf%C3%A9.png?")
    assert abs(expires_at - (time.time() + ttl)) < 30 and f"exp={expires_at}" in url
    keyring = parse_keyring(run.env["EDGE_SIGNING_KEYS"])
    outcome = check_url(url, Verifier(keyring, max_ttl=86400))
    assert outcome.result == "VALID", outcome
    grants = f"transform {transform}" if transform else "the stored object only"
    assert outcome.explanation.endswith(f"for {grants}"), outcome
    if transform:  # the signature grants that transform and no other
        other = check_url(url.replace("?", "?blur=5&", 1), Verifier(keyring, max_ttl=86400))
        assert other.result == "SIGNATURE_INVALID", other


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"notjson", "the body must be a JSON object"),
        (b"[1]", "the body must be a JSON object"),
        (b'"text"', "the body must be a JSON object"),
        (b"\xff\xfe{", "the body must be a JSON object"),
        (b"[" * 4000, "the body must be a JSON object"),
        (b'{"expires_in": 60' + b" " * 4096 + b"}", "the body is over 4096 bytes"),
        (b'{"expires_in": true}', "expires_in must be a whole number of seconds from 60 to 86400"),
        (b'{"expires_in": false}', "expires_in must be a whole number of seconds"),
        (b'{"expires_in": 59}', "expires_in must be a whole number of seconds"),
        (b'{"expires_in": 86401}', "expires_in must be a whole number of seconds"),
        (b'{"expires_in": 60.0}', "expires_in must be a whole number of seconds"),
        (b'{"expires_in": "600"}', "expires_in must be a whole number of seconds"),
        (b'{"expires_in": null}', "expires_in must be a whole number of seconds"),
        (b'{"expiresIn": 600}', "unknown field 'expiresIn': the fields are expires_in, transform"),
        (b'{"transform": [1]}', "transform must be an object of transform parameters"),
        (b'{"transform": "w=200"}', "transform must be an object of transform parameters"),
        (b'{"transform": {"w": null}}', "transform 'w' must be a string, a number, true or false"),
        (b'{"transform": {"w": 0}}', "transform: transform parameter w='0' is malformed"),
        (b'{"transform": {"W": 200}}', "transform: 'W' is not a transform parameter"),
        (b'{"transform": {"p:a": "", "p:b": ""}}', "transform: more than one preset"),
    ],
)
def test_api_endpoint_refuses_a_bad_body_with_a_clear_400(
    endpoint: tuple[Run, str], body: bytes, message: str
) -> None:
    _, base = endpoint
    answer = httpx.post(base + API, headers=BOB, content=body, verify=TLS)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "BAD_REQUEST" and error["status"] == 400, error
    assert error["message"].startswith(message), error


def test_api_endpoint_answers_every_refusal_in_the_error_shape(endpoint: tuple[Run, str]) -> None:
    _, base = endpoint
    stranger = httpx.post(base + API, headers={"x-user": "eve"}, verify=TLS)
    missing = httpx.post(base + "/api/v1/images/nope/signed-url", headers=BOB, verify=TLS)
    assert stranger.status_code == missing.status_code == 404
    assert (
        stranger.json()
        == missing.json()
        == {"error": {"code": "NOT_FOUND", "message": "Image not found", "status": 404}}
    )
    wrong_method = httpx.get(base + API, headers=BOB, verify=TLS)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    nowhere = httpx.post(base + "/api/v2/images", headers=BOB, verify=TLS)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "NOT_FOUND"


# --- docs/deployment.md: each shipped nginx config, without root ---------------------------


@pytest.mark.parametrize("config", sorted(p.name for p in DEPLOY_NGINX.glob("*.conf")))
def test_each_nginx_config_runs_locally_without_root_as_the_docs_say(config: str) -> None:
    """deployment.md has one block per shipped config that starts it with
    deploy/nginx/try.sh; run as written, try.sh by a user who is not root, it fetches a
    signed private image through nginx, which keeps everything in the folder it ran in."""
    blocks = [
        block
        for block in console_blocks(DOCS / "deployment.md", section="Trying a config without root")
        if f"$ deploy/nginx/try.sh {config} " in block
    ]
    assert len(blocks) == 1, f"docs/deployment.md: no single block that tries {config}"
    lines = commands(blocks[0])
    with (
        recipe_folder() as folder,
        run_console(lines, folder, env=recipe_env(), not_root=["deploy/nginx/try.sh "]) as run,
    ):
        assert re.search(r"^200$", run.output, re.MULTILINE), run.output
        assert (folder / "photo.png").read_bytes() == ORIGINAL
        local = folder / "nginx-local" / config.removesuffix(".conf")
        assert f"listen 127.0.0.1:{run.ports[8000]};" in (local / "nginx.conf").read_text()
        if os.geteuid() == 0:  # the commands ran as nobody: so did nginx
            assert {path.stat().st_uid for path in local.rglob("*")} == {65534}


# --- docs/configuration.md: edge check-storage ---------------------------------------------


def test_check_storage_prints_what_the_docs_show(moto_server: MotoServer) -> None:
    """The documented `edge check-storage`, run as written against a bucket `images` on a
    local store (moto at localhost), prints the documented lines, its port aside."""
    port = moto_server.server.server_port
    client = s3_client(moto_server.endpoint_url)
    client.create_bucket(Bucket="images")
    client.put_object(Bucket="images", Key="public/alice/photo.png", Body=ORIGINAL)
    block = console_block(DOCS / "configuration.md", "Checking the storage")
    env = {
        **recipe_env(),
        "EDGE_STORAGE": "s3://images/",
        "AWS_ENDPOINT_URL_S3": f"http://localhost:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with recipe_folder() as folder, run_console(commands(block), folder, env=env) as run:
        printed = run.output.splitlines()
    assert printed == [line.replace(":9000", f":{port}") for line in outputs(block)]


def test_fleet_recipe_makes_one_variant_once_across_two_edges() -> None:
    """deployment.md's fleet block as written: 50 requests for one private variant, signed
    five times, all 200; the two edges' /metrics add up to one transform, on one edge."""
    block = console_block(DOCS / "deployment.md", "A fleet: one transform per variant")
    with (
        recipe_folder() as folder,
        run_console(
            commands(block), folder, env=recipe_env(), not_root=["deploy/nginx/try.sh "]
        ) as run,
    ):
        assert re.search(r"^ +50 200\n0\n1\n", run.output, re.MULTILINE), run.output
        for shown in outputs(block):
            assert shown in run.output.replace(str(run.ports[8000]), "8000"), (shown, run.output)
        edges = [
            line
            for port in (8080, 8081)
            for line in (folder / f"edge-{port}.log").read_text().splitlines()
            if line.startswith("{") and "/i/bob/photo.png" in line
        ]
        assert len(edges) == 50 and all('"status":200' in line for line in edges), edges

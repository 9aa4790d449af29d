"""The JavaScript signer for Node teams: the vectors' URLs byte for byte, and URLs edge accepts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge.keys import parse_keyring
from edge.samples import CANARY, png
from edge.signing import Verifier, check_url
from tests.support.typescript import StrictErrors, tsc
from tests.support.vectors import DATA, VECTORS
from tests.support.world import World

ROOT = Path(__file__).parent.parent
NODE = shutil.which("node")


def node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert NODE is not None, "node is missing: .ci/run installs it (apt-get install nodejs)"
    return subprocess.run(
        [NODE, *args], capture_output=True, text=True, timeout=30, check=False, env=env, cwd=ROOT
    )


def test_node_signer_reproduces_every_sign_vector() -> None:
    done = node("tests/support/sign_vectors.mjs", str(DATA / "vectors.json"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [case["url"] for case in VECTORS["sign"]]


def test_node_signer_command_mints_urls_edge_verifies() -> None:
    keys = VECTORS["keys"]["signing"]
    env = {"PATH": os.environ.get("PATH", ""), "EDGE_SIGNING_KEYS": keys}
    verifier = Verifier(parse_keyring(VECTORS["keys"]["verifying"]), max_ttl=3600)
    for kid in ("", "old", "ed1"):
        done = node(
            "signers/node/edge-signer.mjs",
            "/i/bob/ça va?.png",
            "600",
            *([kid] if kid else []),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        assert url.startswith("/i/bob/%C3%A7a%20va%3F.png?sig=")
        outcome = check_url(url, verifier)
        assert outcome.result == "VALID", outcome
        assert outcome.grant is not None
        granted_kid, exp = outcome.grant
        assert exp - time.time() > 590
        assert granted_kid == (kid or "main")


def test_node_signer_usage_error() -> None:
    done = node("signers/node/edge-signer.mjs")
    assert done.returncode == 2 and "usage" in done.stderr


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_node_signer_against_a_live_edge(world: World) -> None:
    """URLs minted in Node fetch private bytes from a running edge, with hs256 and ed25519."""
    signing = VECTORS["keys"]["signing"]
    data = png(40, 30) + CANARY
    path = world.put("private", "bob", "ça va?.png", data)
    expected = hashlib.sha256(data).hexdigest()
    base = world.serve(EDGE_SIGNING_KEYS=VECTORS["keys"]["verifying"])
    env = {"PATH": os.environ.get("PATH", ""), "EDGE_SIGNING_KEYS": signing}
    for kid in ("", "old", "ed1"):
        done = node(
            "tests/support/sign_and_fetch.mjs", base, path, *([kid] if kid else []), env=env
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == 200, result
        assert result["sha256"] == expected
    done = node("tests/support/sign_and_fetch.mjs", base, "/i/bob/missing.png", env=env)
    assert json.loads(done.stdout)["status"] == 404


def test_typescript_sees_the_signers_types(strict_typescript: StrictErrors) -> None:
    """The .d.mts types compile for correct use and reject a wrong call: they are not `any`.
    The wrong call is tests/browser/strict/signer-wrong-exp.mts (tests/support/typescript.py)."""
    good = tsc("-p", "tests/browser/tsconfig.json")
    assert good.returncode == 0, good.stdout
    bad = strict_typescript.codes("signer-wrong-exp.mts")
    assert bad, strict_typescript.output
    assert {"TS2345", "TS2322", "TS2741"} & set(bad), strict_typescript.output


def test_node_signer_command_aligns_and_refuses() -> None:
    """--align=SECONDS rounds exp up; what the edge would refuse is one line, exit 2."""
    env = {"PATH": os.environ.get("PATH", ""), "EDGE_SIGNING_KEYS": VECTORS["keys"]["signing"]}
    before = int(time.time())
    done = node("signers/node/edge-signer.mjs", "/i/bob/x.png", "600", "--align=3600", env=env)
    assert done.returncode == 0, done.stderr
    exp = int(done.stdout.strip().rpartition("exp=")[2])
    assert exp % 3600 == 0 and before + 600 <= exp < int(time.time()) + 600 + 3600
    for path in ("/i/bob/../x.png", "/i/bob/x.png/", "/i/b@b/x.png", "/i/bob/x\x7f.png"):
        done = node("signers/node/edge-signer.mjs", path, "600", env=env)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("edge-signer: path") and done.stderr.count("\n") == 1
    done = node("signers/node/edge-signer.mjs", "/i/bob/x.png", "600", "--align=1h", env=env)
    assert done.returncode == 2 and "usage" in done.stderr


def test_node_signer_command_takes_kids_that_look_like_options() -> None:
    """A kid may start with '-' (A-Z a-z 0-9 _ -): the command takes it as the KID argument."""
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    keys = f"--x:hs256:{key},-k:hs256:{key}"
    env = {"PATH": os.environ.get("PATH", ""), "EDGE_SIGNING_KEYS": keys}
    verifier = Verifier(parse_keyring(keys), max_ttl=3600)
    for kid in ("--x", "-k"):
        done = node("signers/node/edge-signer.mjs", "/i/bob/x.png", "600", kid, env=env)
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        assert url.endswith(f"&kid={kid}")
        outcome = check_url(url, verifier)
        assert outcome.grant is not None and outcome.grant[0] == kid, outcome

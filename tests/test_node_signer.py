"""The JavaScript signer for Node teams: the vectors' URLs byte for byte, and URLs edge accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from edge.keys import parse_keyring
from edge.signing import Verifier, check_url
from tests.conftest import DATA, VECTORS

ROOT = Path(__file__).parent.parent
NODE = shutil.which("node")


def node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert NODE is not None, "node is missing: .ci/run installs it (apt-get install nodejs)"
    return subprocess.run(
        [NODE, *args], capture_output=True, text=True, timeout=30, check=False, env=env, cwd=ROOT
    )


def test_node_signer_reproduces_every_sign_vector() -> None:
    done = node("tests/sign_vectors.mjs", str(DATA / "vectors.json"))
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

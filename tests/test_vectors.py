"""Every case of the spec's vectors, through the Python API and through the real `edge` command."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from edge.keys import parse_keyring
from edge.signing import Verifier, check_url, sign_url, string_to_sign
from tests.support.vectors import VECTORS

SIGN = VECTORS["sign"]
VERIFY = VECTORS["verify"]
SETTINGS = VECTORS["settings"]
EXIT = {"VALID": 0, "UNSIGNED": 0}


def case_id(case: dict[str, Any]) -> str:
    return str(case.get("why") or case["result"] if "result" in case else case["kid"])


def verifier_at(now: int) -> Verifier:
    return Verifier(
        parse_keyring(VECTORS["keys"]["verifying"]),
        max_ttl=SETTINGS["max_ttl_s"],
        leeway=SETTINGS["leeway_s"],
        clock=lambda: float(now),
    )


def test_vectors_cover_every_verdict() -> None:
    verdicts = {case["result"] for case in VERIFY}
    assert verdicts == {
        "VALID",
        "UNSIGNED",
        "SIGNATURE_INVALID",
        "SIGNATURE_EXPIRED",
        "BAD_REQUEST",
    }
    assert VECTORS["scheme"] == "v1"


@pytest.mark.parametrize("case", SIGN, ids=[f"{c['kid']}-{c['path']}" for c in SIGN])
def test_sign_api(case: dict[str, Any]) -> None:
    keyring = parse_keyring(VECTORS["keys"]["signing"])
    key = keyring.by_kid[case["kid"]]
    assert string_to_sign(case["path"], str(case["exp"])) == case["string_to_sign"].encode()
    url = sign_url(case["path"], key=key, exp=case["exp"], include_kid=case["include_kid"])
    assert url == case["url"]


@pytest.mark.parametrize("case", VERIFY, ids=[case_id(c) for c in VERIFY])
def test_verify_api(case: dict[str, Any]) -> None:
    outcome = check_url(case["url"], verifier_at(case["now"]))
    assert outcome.result == case["result"], outcome.explanation


def run_edge(*args: str, keys: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_SIGNING_KEYS"] = keys
    env["EDGE_MAX_TTL"] = str(SETTINGS["max_ttl_s"])
    env["EDGE_CLOCK_LEEWAY"] = str(SETTINGS["leeway_s"])
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("case", SIGN, ids=[f"{c['kid']}-{c['path']}" for c in SIGN])
def test_sign_cli(case: dict[str, Any]) -> None:
    keys = VECTORS["keys"]["signing"]
    args = ["sign", case["path"], "--expires-at", str(case["exp"]), "--allow-expired"]
    if case["include_kid"]:
        args += ["--kid", case["kid"]]
    elif case["kid"] != parse_keyring(keys).signing_key.kid:  # type: ignore[union-attr]
        pytest.fail("a kid-less sign case must use the keyring's first signing key")
    done = run_edge(*args, keys=keys)
    assert done.returncode == 0, done.stderr
    assert done.stdout == case["url"] + "\n"


@pytest.mark.parametrize("case", VERIFY, ids=[case_id(c) for c in VERIFY])
def test_verify_cli(case: dict[str, Any]) -> None:
    done = run_edge(
        "verify", case["url"], "--now", str(case["now"]), keys=VECTORS["keys"]["verifying"]
    )
    lines = done.stdout.splitlines()
    assert lines[0] == case["result"]
    assert len(lines) == 2 and lines[1], "a short explanation follows the verdict"
    assert done.returncode == EXIT.get(case["result"], 1)
    assert "Traceback" not in done.stderr

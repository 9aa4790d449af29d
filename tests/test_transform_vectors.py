"""Every case of the transform vectors (tests/data/vectors-transforms.json), through the
Python API and through the real ``edge`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.keys import parse_keyring
from edge.signing import Verifier, check_url, sign_url, string_to_sign
from edge.transform_params import TRANSFORM_NAMES, parse_transform, transform_from_pairs

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "vectors-transforms.json").read_text(encoding="utf-8")
)
SIGN = VECTORS["sign"]
VERIFY = VECTORS["verify"]
SETTINGS = VECTORS["settings"]
EXIT = {"VALID": 0, "UNSIGNED": 0}
SIGN_IDS = [f"{c['kid']}-{c['transform_string']}" for c in SIGN]
VERIFY_IDS = [c["note"] for c in VERIFY]


def verifier_at(now: int) -> Verifier:
    return Verifier(
        parse_keyring(VECTORS["keys"]["verifying"]),
        max_ttl=SETTINGS["max_ttl_s"],
        leeway=SETTINGS["leeway_s"],
        clock=lambda: float(now),
    )


def test_vectors_cover_every_verdict_and_parameter() -> None:
    assert {case["result"] for case in VERIFY} == {
        "VALID",
        "UNSIGNED",
        "SIGNATURE_INVALID",
        "SIGNATURE_EXPIRED",
        "BAD_REQUEST",
    }
    named = {"p:" if n.startswith("p:") else n for case in SIGN for n, _ in case["transform"]}
    assert named == TRANSFORM_NAMES | {"p:"}


@pytest.mark.parametrize("case", SIGN, ids=SIGN_IDS)
def test_sign_api(case: dict[str, Any]) -> None:
    key = parse_keyring(VECTORS["keys"]["signing"]).by_kid[case["kid"]]
    pairs = [(name, value) for name, value in case["transform"]]
    transform = transform_from_pairs(pairs)
    assert transform is not None and transform.canonical() == case["transform_string"]
    signed = string_to_sign(case["path"], str(case["exp"]), case["transform_string"])
    assert signed == case["string_to_sign"].encode()
    text = "&".join(f"{name}={value}" for name, value in pairs)
    for given in (pairs, dict(pairs).items(), text):  # each form sign_url takes, in URL order
        url = sign_url(
            case["path"], key=key, exp=case["exp"], include_kid=case["include_kid"], transform=given
        )
        assert url == case["url"]
    # A Transform is written in name order: another URL, the same signature.
    url = sign_url(case["path"], key=key, exp=case["exp"], transform=transform)
    assert url.partition("&sig=")[2] == case["url"].partition("&sig=")[2].partition("&kid=")[0]
    assert parse_transform(url.partition("?")[2].encode()) == transform


@pytest.mark.parametrize("case", VERIFY, ids=VERIFY_IDS)
def test_verify_api(case: dict[str, Any]) -> None:
    outcome = check_url(case["url"], verifier_at(case["now"]))
    assert outcome.result == case["result"], outcome.explanation


@pytest.mark.parametrize("case", VERIFY, ids=VERIFY_IDS)
def test_verify_api_twice_through_the_memo(case: dict[str, Any]) -> None:
    """The second verdict on the same URL comes from the verifier's memos, and is the same."""
    verifier = verifier_at(case["now"])
    first = check_url(case["url"], verifier)
    assert check_url(case["url"], verifier) == first


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


@pytest.mark.slow
@pytest.mark.parametrize("case", SIGN, ids=SIGN_IDS)
def test_sign_cli(case: dict[str, Any]) -> None:
    keys = VECTORS["keys"]["signing"]
    transform = "&".join(f"{name}={value}" for name, value in case["transform"])
    args = ["sign", case["path"], "--expires-at", str(case["exp"]), "--allow-expired"]
    args += ["--transform", transform]
    if case["include_kid"]:
        args += ["--kid", case["kid"]]
    else:
        assert case["kid"] == parse_keyring(keys).signing_key.kid  # type: ignore[union-attr]
    done = run_edge(*args, keys=keys)
    assert done.returncode == 0, done.stderr
    assert done.stdout == case["url"] + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("case", VERIFY, ids=VERIFY_IDS)
def test_verify_cli(case: dict[str, Any]) -> None:
    done = run_edge(
        "verify", case["url"], "--now", str(case["now"]), keys=VECTORS["keys"]["verifying"]
    )
    lines = done.stdout.splitlines()
    assert lines[0] == case["result"]
    assert len(lines) == 2 and lines[1], "a short explanation follows the verdict"
    transform = _transform_or_none(case["url"])
    if transform is not None:  # the explanation names what the signature must cover
        assert f"transform {transform}" in lines[1]
    assert done.returncode == EXIT.get(case["result"], 1)
    assert "Traceback" not in done.stderr


def _transform_or_none(url: str) -> str | None:
    try:
        transform = parse_transform(url.partition("?")[2].encode())
    except Exception:
        return None
    return None if transform is None else transform.canonical()

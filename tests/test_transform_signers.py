"""The Node, Go and Rust signers with transforms: every sign vector byte for byte, every
canonical value as edge signs it, and every malformed one refused.

Go needs only its standard library; Rust builds offline against Debian's crate
registry, as in tests/test_other_signers.py; both built once a session (the ``signers`` fixture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge.errors import BadRequest
from edge.keys import parse_keyring
from edge.signing import Verifier, check_url, sign_url
from tests.support.signers import ROOT, Signers
from tests.support.transform_params import MALFORMED, VALID
from tests.support.typescript import StrictErrors

VECTORS: dict[str, Any] = json.loads(
    (ROOT / "tests" / "data" / "vectors-transforms.json").read_text(encoding="utf-8")
)
KEYS = VECTORS["keys"]["signing"]
PATH, EXP = "/i/bob/ça va.png", 1_704_070_800

Case = dict[str, Any]


def case(transform: list[tuple[str, str]], kid: str = "main", include_kid: bool = False) -> Case:
    return {
        "kid": kid,
        "include_kid": include_kid,
        "exp": EXP,
        "path": PATH,
        "transform": transform,
    }


every_parameter = [(name, next(iter(values))) for name, values in reversed(VALID.items())]
#: Transforms every signer must sign exactly as edge does: each canonical value alone, all at once.
GOOD: list[Case] = [
    *(case([(name, text)]) for name, values in VALID.items() for text in values),
    case([*every_parameter, ("p:Thumb_1-x", "")], kid="ed1", include_kid=True),
    case([("p:" + "z" * 64, ""), ("w", "1")], kid="old"),
]
#: Transforms every signer must refuse (an object cannot hold a name twice: not for Node).
BAD: list[Case] = [
    *(case([(name, value)]) for name, values in MALFORMED.items() for value in values),
    *(
        case([(name, value)])
        for name, value in [
            ("p:", ""),
            ("p:" + "a" * 65, ""),
            ("p:a.b", ""),
            ("p:a b", ""),
            ("p:é", ""),
            ("p:thumb", "x"),
            ("v", "3"),
            ("sig", "x"),
            ("W", "9"),
            ("p", ""),
        ]
    ),
    case([("p:a", ""), ("p:b", "")]),
    case([("w", "800"), ("p:a", ""), ("p:b", "")]),
]
TWICE: list[Case] = [case([("w", "800"), ("w", "800")]), case([("p:a", ""), ("p:a", "")])]


def expected_url(c: Case) -> str:
    key = parse_keyring(KEYS).by_kid[c["kid"]]
    return sign_url(
        c["path"], key=key, exp=c["exp"], include_kid=c["include_kid"], transform=c["transform"]
    )


def cases_with_urls() -> tuple[list[Case], list[str]]:
    vectors = [
        {**c, "transform": [tuple(pair) for pair in c["transform"]]} for c in VECTORS["sign"]
    ]
    return [*vectors, *GOOD], [c["url"] for c in vectors] + [expected_url(c) for c in GOOD]


def lines(cases: list[Case]) -> str:
    """The Go and Rust harnesses' input: kid, include_kid, exp, path, transform in URL order."""
    return "".join(
        f"{c['kid']}\t{str(c['include_kid']).lower()}\t{c['exp']}\t{c['path']}\t"
        + "&".join(f"{name}={value}" for name, value in c["transform"])
        + "\n"
        for c in cases
    )


def check_outputs(outputs: list[str], *, good: list[str], bad: int) -> None:
    assert outputs[: len(good)] == good
    refused = outputs[len(good) :]
    assert len(refused) == bad
    assert all(out.startswith("error: transform: ") for out in refused), refused


def test_the_cases_are_what_edge_says() -> None:
    """The Python signer agrees: good cases verify, bad ones are refused before signing."""
    verifier = Verifier(parse_keyring(VECTORS["keys"]["verifying"]), max_ttl=0, clock=lambda: 0.0)
    for c, url in zip(*cases_with_urls(), strict=True):
        assert check_url(url, verifier).result == "VALID", (c, url)
    for c in BAD + TWICE:
        with pytest.raises(BadRequest, match=r"transform|preset"):
            expected_url(c)


@pytest.mark.parametrize("language", ["go", pytest.param("rust", marks=pytest.mark.slow)])
def test_compiled_signer(signers: Signers, language: str) -> None:
    cases, urls = cases_with_urls()
    refused = BAD + TWICE
    outputs = signers.vectors(language, KEYS, lines(cases + refused))
    check_outputs(outputs, good=urls, bad=len(refused))


# --- Node ---------------------------------------------------------------------------------

NODE = shutil.which("node")


def node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert NODE is not None, "node is missing: .ci/run installs it (apt-get install nodejs)"
    return subprocess.run(
        [NODE, *args], capture_output=True, text=True, timeout=30, check=False, env=env, cwd=ROOT
    )


def test_node_signer(tmp_path: Path) -> None:
    cases, urls = cases_with_urls()
    data = tmp_path / "cases.json"
    data.write_text(json.dumps({"keys": KEYS, "cases": cases + BAD}), encoding="utf-8")
    done = node("tests/support/sign_transform_vectors.mjs", str(data))
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs[: len(urls)] == urls
    refused = outputs[len(urls) :]
    assert len(refused) == len(BAD)
    assert all(out["error"].startswith("transform: ") for out in refused), refused


def test_node_signer_command_signs_transforms_edge_verifies() -> None:
    env = {"PATH": os.environ.get("PATH", ""), "EDGE_SIGNING_KEYS": KEYS}
    verifier = Verifier(parse_keyring(VECTORS["keys"]["verifying"]), max_ttl=3600)
    command = ["signers/node/edge-signer.mjs", "/i/bob/x.png", "600"]
    for kid in ("", "ed1"):
        done = node(*command, *([kid] if kid else []), "--transform=w=800&fit=cover&p:a", env=env)
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()
        assert url.startswith("/i/bob/x.png?w=800&fit=cover&p:a&sig=")
        outcome = check_url(url, verifier)
        assert outcome.result == "VALID" and "transform fit=cover&p:a&w=800" in outcome.explanation
    for transform in ("w=0800", "w=8&w=8", "v=3", "p:a&p:b"):
        done = node(*command, f"--transform={transform}", env=env)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("edge-signer: transform: ") and done.stderr.count("\n") == 1


def test_typescript_sees_the_transform_option(strict_typescript: StrictErrors) -> None:
    """tests/browser/strict/transform-good.mts compiles, transform-wrong.mts does not."""
    assert strict_typescript.codes("transform-good.mts") == []
    assert strict_typescript.unexpected() == {}, strict_typescript.output
    assert "TS2322" in strict_typescript.codes("transform-wrong.mts"), strict_typescript.output

"""The Go and Rust signers of the docs reproduce every sign vector.

Go needs only its standard library; Rust builds offline against Debian's crate
registry (librust-ring-dev, librust-base64-dev), which .ci/run installs with
the toolchains, so CI always runs both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.signers import ROOT, SIGNERS, cargo_env, go_env, run_lines
from tests.support.vectors import VECTORS


def vector_lines() -> str:
    return "".join(
        f"{case['kid']}\t{str(case['include_kid']).lower()}\t{case['exp']}\t{case['path']}\n"
        for case in VECTORS["sign"]
    )


def test_go_signer_reproduces_the_vectors(tmp_path: Path) -> None:
    env = {**go_env(tmp_path), "EDGE_SIGNING_KEYS": VECTORS["keys"]["signing"]}
    urls = run_lines(["go", "run", "./vectors"], cwd=SIGNERS / "go", env=env, stdin=vector_lines())
    assert urls == [case["url"] for case in VECTORS["sign"]]


@pytest.mark.slow
def test_rust_signer_reproduces_the_vectors(tmp_path: Path) -> None:
    env = {**cargo_env(tmp_path), "EDGE_SIGNING_KEYS": VECTORS["keys"]["signing"]}
    urls = run_lines(
        ["cargo", "run", "--quiet", "--offline", "--bin", "vectors"],
        cwd=SIGNERS / "rust",
        env=env,
        stdin=vector_lines(),
    )
    assert urls == [case["url"] for case in VECTORS["sign"]]


@pytest.mark.parametrize(
    ("language", "source"),
    [
        ("go", "go/edgesign/edgesign.go"),
        ("rust", "rust/src/lib.rs"),
        ("js", "node/edge-signer.mjs"),
    ],
)
def test_docs_show_the_tested_code(language: str, source: str) -> None:
    """The guide's snippets are the files the tests run, byte for byte."""
    doc = (ROOT / "docs" / "signers.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", doc, re.DOTALL)
    assert (SIGNERS / source).read_text(encoding="utf-8") in blocks

"""The Go and Rust signers of the docs reproduce every sign vector.

Go needs only its standard library; Rust builds offline against Debian's crate
registry (librust-ring-dev, librust-base64-dev), which .ci/run installs with
the toolchains, so CI always runs both. Each is built once a session (the
``signers`` fixture), and all the vectors go through one process.
"""

from __future__ import annotations

import re

import pytest

from tests.support.signers import ROOT, SIGNERS, Signers
from tests.support.vectors import VECTORS


def vector_lines() -> str:
    return "".join(
        f"{case['kid']}\t{str(case['include_kid']).lower()}\t{case['exp']}\t{case['path']}\n"
        for case in VECTORS["sign"]
    )


@pytest.mark.parametrize("language", ["go", pytest.param("rust", marks=pytest.mark.slow)])
def test_signer_reproduces_the_vectors(signers: Signers, language: str) -> None:
    urls = signers.vectors(language, VECTORS["keys"]["signing"], vector_lines())
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

"""The Go and Rust signers of the docs reproduce every sign vector.

Go needs only its standard library; Rust builds offline against Debian's crate
registry (librust-ring-dev, librust-base64-dev), which .ci/run installs with
the toolchains, so CI always runs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.vectors import VECTORS

ROOT = Path(__file__).parent.parent
SIGNERS = ROOT / "signers"
DEBIAN_CRATES = Path("/usr/share/cargo/registry")


def vector_lines() -> str:
    return "".join(
        f"{case['kid']}\t{str(case['include_kid']).lower()}\t{case['exp']}\t{case['path']}\n"
        for case in VECTORS["sign"]
    )


def run(command: list[str], *, cwd: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        command,
        input=vector_lines(),
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env, "EDGE_SIGNING_KEYS": VECTORS["keys"]["signing"]},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_go_signer_reproduces_the_vectors(tmp_path: Path) -> None:
    go = shutil.which("go")
    assert go is not None, "go is missing: .ci/run installs golang-go"
    env = {
        "GOCACHE": str(tmp_path / "cache"),
        "GOPATH": str(tmp_path / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
    }
    urls = run([go, "run", "./vectors"], cwd=SIGNERS / "go", env=env)
    assert urls == [case["url"] for case in VECTORS["sign"]]


@pytest.mark.slow
def test_rust_signer_reproduces_the_vectors(tmp_path: Path) -> None:
    cargo = shutil.which("cargo")
    assert cargo is not None, "cargo is missing: .ci/run installs it"
    assert (DEBIAN_CRATES / "ring-0.16.20").exists(), ".ci/run installs librust-ring-dev"
    home = tmp_path / "cargo-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n\n'
        f'[source.debian]\ndirectory = "{DEBIAN_CRATES}"\n'
    )
    env = {
        "CARGO_HOME": str(home),
        "CARGO_TARGET_DIR": str(tmp_path / "target"),
        "CARGO_NET_OFFLINE": "true",
    }
    urls = run(
        [cargo, "run", "--quiet", "--offline", "--bin", "vectors"], cwd=SIGNERS / "rust", env=env
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

"""The four signers behind one call: a batch of cases in, one result per case out (the URL,
or ``error: ...``), each non-Python signer spawned once per batch.

A case is a dict: ``keys`` (an ``EDGE_SIGNING_KEYS`` value), ``kid`` (the key to sign
with, ``None`` for the first that signs), ``kid_by_hand`` (``None``, or a kid put on that
key after parsing, as a caller building a key by hand would), ``include_kid``, ``exp``,
``align`` (``None`` for none), ``path`` and ``transform`` (``[[name, value], ...]`` in URL
order). ``exp`` and ``align`` may be any JSON value: the typed languages' harnesses refuse
what their types cannot hold, as a compiler would, with an ``exp:`` or ``align:`` error.

Go needs only its standard library; Rust builds offline against Debian's crate registry
(librust-ring-dev, librust-base64-dev). Each is built once per session, into the session's
temporary directory (caches included), by the ``signers`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import BadRequest, ConfigError
from edge.keys import parse_keyring
from edge.signing import sign_url

ROOT = Path(__file__).parent.parent.parent
SIGNERS = ROOT / "signers"
DEBIAN_CRATES = Path("/usr/share/cargo/registry")
LANGUAGES = ("python", "node", "go", "rust")

Case = dict[str, Any]
#: Signs a batch of cases: one result per case, the URL or "error: ...".
Batch = Callable[[list[Case]], list[str]]


def sign_python(cases: list[Case]) -> list[str]:
    """``edge.signing.sign_url``; an error reads ``error: TYPE: reason``."""
    results = []
    for case in cases:
        try:
            results.append(_sign_python(case))
        except (BadRequest, ConfigError, ValueError) as error:
            reason = error.reason if isinstance(error, BadRequest) else str(error)
            results.append(f"error: {type(error).__name__}: {reason}")
    return results


def _sign_python(case: Case) -> str:
    ring = parse_keyring(case["keys"])
    key = ring.signing_key if case["kid"] is None else ring.by_kid.get(case["kid"])
    if key is None:
        return "error: harness: no such signing key"
    if case["kid_by_hand"] is not None:
        key = dataclasses.replace(key, kid=case["kid_by_hand"])
    return sign_url(
        case["path"],
        key=key,
        exp=case["exp"],
        include_kid=case["include_kid"],
        transform=[(name, value) for name, value in case["transform"]],
        align=case["align"],
    )


def sign_node(cases: list[Case], workdir: Path) -> list[str]:
    node = shutil.which("node")
    assert node is not None, "node is missing: .ci/run installs it (apt-get install nodejs)"
    data = workdir / "cases.json"
    data.write_text(json.dumps({"cases": cases}), encoding="utf-8")
    done = subprocess.run(
        [node, "tests/support/sign_batch.mjs", str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [
        result["url"] if "url" in result else f"error: {result['error']}"
        for result in json.loads(done.stdout)
    ]


def batch_line(case: Case) -> str:
    """The Go and Rust harnesses' line: eight tab-separated fields, each hex-encoded (lone
    surrogates as their UTF-8-like bytes, which no Go or Rust string holds as valid UTF-8)."""
    fields = [
        case["keys"],
        case["kid"] or "",
        "" if case["kid_by_hand"] is None else "=" + case["kid_by_hand"],
        "true" if case["include_kid"] else "false",
        json.dumps(case["exp"]),
        "" if case["align"] is None else json.dumps(case["align"]),
        case["path"],
        "&".join(f"{name}={value}" for name, value in case["transform"]),
    ]
    return "\t".join(field.encode("utf-8", "surrogatepass").hex() for field in fields) + "\n"


def run_batch(command: list[str], cases: list[Case]) -> list[str]:
    done = subprocess.run(
        command,
        input="".join(batch_line(case) for case in cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def go_env(workdir: Path) -> dict[str, str]:
    """The environment for ``go`` offline, its caches under ``workdir``."""
    go = shutil.which("go")
    assert go is not None, "go is missing: .ci/run installs golang-go"
    return {
        **os.environ,
        "GOCACHE": str(workdir / "go-cache"),
        "GOPATH": str(workdir / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
    }


def cargo_env(workdir: Path) -> dict[str, str]:
    """The environment for ``cargo`` offline against Debian's crates, its home and target
    under ``workdir``."""
    cargo = shutil.which("cargo")
    assert cargo is not None, "cargo is missing: .ci/run installs it"
    assert (DEBIAN_CRATES / "ring-0.16.20").exists(), ".ci/run installs librust-ring-dev"
    home = workdir / "cargo-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n\n'
        f'[source.debian]\ndirectory = "{DEBIAN_CRATES}"\n'
    )
    return {
        **os.environ,
        "CARGO_HOME": str(home),
        "CARGO_TARGET_DIR": str(workdir / "target"),
        "CARGO_NET_OFFLINE": "true",
    }


def run_lines(command: list[str], *, cwd: Path, env: dict[str, str], stdin: str) -> list[str]:
    """A signer program's output lines for ``stdin``; it must exit 0."""
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def build_go(workdir: Path) -> Path:
    """Both Go harnesses (``batch``, ``vectors``) in one ``go build``; their directory."""
    out = workdir / "go-bin"
    command = ["go", "build", "-o", f"{out}{os.sep}", "./batch", "./vectors"]
    _build(command, cwd=SIGNERS / "go", env=go_env(workdir))
    return out


def build_rust(workdir: Path) -> Path:
    """Both Rust harnesses in one ``cargo build`` (the dev profile: it builds in two thirds
    of a release build's time, more than a release batch saves); their directory."""
    command = ["cargo", "build", "--quiet", "--offline", "--bins"]
    _build(command, cwd=SIGNERS / "rust", env=cargo_env(workdir))
    return workdir / "target" / "debug"


def _build(command: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


class Signers:
    """Each language's signer harnesses, the compiled ones (Go, Rust) built on first use,
    once for the session (the ``signers`` fixture): every test of them runs one process of
    an already built program."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._built: dict[str, Path] = {}

    def __call__(self, language: str) -> Batch:
        """The batch signer for ``language``."""
        if language == "python":
            return sign_python
        if language == "node":
            return lambda cases: sign_node(cases, self.workdir)
        command = [str(self.program(language, "batch"))]
        return lambda cases: run_batch(command, cases)

    def program(self, language: str, name: str) -> Path:
        """The built harness ``name`` (``batch`` or ``vectors``) of ``go`` or ``rust``."""
        if language not in self._built:
            build = build_go if language == "go" else build_rust
            self._built[language] = build(self.workdir)
        return self._built[language] / name

    def vectors(self, language: str, keys: str, stdin: str) -> list[str]:
        """The ``vectors`` harness's lines for ``stdin``, signing with ``keys``."""
        command = [str(self.program(language, "vectors"))]
        env = {**os.environ, "EDGE_SIGNING_KEYS": keys}
        return run_lines(command, cwd=self.workdir, env=env, stdin=stdin)

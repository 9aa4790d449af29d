"""The signer's TypeScript types under ``tsc --strict``: every file of tests/browser/strict/
in ONE program, so @types/node and the signer's .d.mts are parsed and checked once (most of
a run's time) however many files there are, and each error is told by its file.

A file named ``*wrong*`` must not compile (its test checks the error codes); every other
file must, and so must the signer's .d.mts and @types/node: an error there is unexpected.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.signers import ROOT

BROWSER = ROOT / "tests" / "browser"
TSC = BROWSER / "node_modules" / ".bin" / "tsc"
STRICT = BROWSER / "strict"
STRICT_OPTIONS = [
    "--pretty",
    "false",
    "--noEmit",
    "--strict",
    "--module",
    "NodeNext",
    "--moduleResolution",
    "NodeNext",
    "--types",
    "node",
    "--typeRoots",
    str(BROWSER / "node_modules" / "@types"),
]
#: "FILE(LINE,COLUMN): error TSCODE: message"; an option's error has no file.
ERROR = re.compile(r"^(?:(.+?)\(\d+,\d+\): )?error (TS\d+): ", re.MULTILINE)


def tsc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``tsc`` (tests/browser's TypeScript) run by node, from ``cwd``."""
    assert TSC.exists(), "run npm ci in tests/browser (make test does)"
    return subprocess.run(
        ["node", str(TSC), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


class StrictErrors:
    """The error codes of one strict ``tsc`` run over ``files``, by file name (the name of
    a file outside tests/browser/strict/ is its path as tsc printed it)."""

    def __init__(self, files: Sequence[Path]) -> None:
        done = tsc(*STRICT_OPTIONS, *(str(file.relative_to(ROOT)) for file in files))
        self.output = done.stdout + done.stderr
        self.by_file: dict[str, list[str]] = {}
        for match in ERROR.finditer(self.output):
            name = match.group(1) or "(options)"
            if Path(name).parent == STRICT.relative_to(ROOT):
                name = Path(name).name
            self.by_file.setdefault(name, []).append(match.group(2))
        assert (done.returncode == 0) == (not self.by_file), self.output

    def codes(self, name: str) -> list[str]:
        """The error codes in tests/browser/strict/``name``; none if it compiles."""
        assert (STRICT / name).exists(), name
        return self.by_file.get(name, [])

    def unexpected(self) -> dict[str, list[str]]:
        """The errors in any file but the ``*wrong*`` ones: none, when all compile that should."""
        return {name: codes for name, codes in self.by_file.items() if "wrong" not in name}


def strict_errors() -> StrictErrors:
    return StrictErrors(sorted(STRICT.glob("*.mts")))

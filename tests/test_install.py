"""Installing edge: `make demo` installs what running needs and nothing of the test
toolchain, `make test` everything; a clean install prints no setuptools warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Packages only the checks use: `make demo` must not install them.
TOOLCHAIN = {"pytest", "moto", "mypy", "ruff", "atheris", "hypothesis", "boto3"}


def installs(target: str) -> list[str]:
    """The `pip install` lines `make TARGET` runs on a fresh clone (a dry run, nothing runs)."""
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if "pip install" in line]


def test_make_demo_installs_the_runtime_only() -> None:
    lines = installs("demo")
    assert lines[-1].endswith("pip install -q -e ."), lines
    assert not any("[" in line for line in lines), lines
    runtime = {Requirement(dep).name for dep in PYPROJECT["project"]["dependencies"]}
    assert not runtime & TOOLCHAIN, runtime & TOOLCHAIN


def test_make_test_installs_the_toolchain() -> None:
    assert any(line.endswith("pip install -q -e '.[test]'") for line in installs("test"))
    test_extra = {
        Requirement(dep).name for dep in PYPROJECT["project"]["optional-dependencies"]["test"]
    }
    assert test_extra >= TOOLCHAIN


def test_the_license_is_an_spdx_expression() -> None:
    """A TOML table is deprecated by setuptools, which warns on every build."""
    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str) and canonicalize_license_expression(license_) == license_
    (setuptools,) = (r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert Requirement(setuptools).specifier.contains("77"), "SPDX strings need setuptools 77"


@pytest.mark.slow
def test_an_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    """What `make demo` runs, `pip install -e .`, in pip's isolated build environment, on a
    copy of the project, into a virtual environment of its own under ``tmp_path``
    (never the running one: pip would first uninstall the edge it finds there): setuptools
    warns of nothing (it did of the license table, three times, and of the editable
    layout)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "edge", project / "edge", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"  # without a pip of its own: the running pip installs into it,
    # as up to date as the one `make` upgrades to before installing (and seconds sooner)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--quiet",
    ]
    done = subprocess.run(
        [*pip, "--no-warn-script-location", "--no-deps", "--editable", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(venv.rglob("__editable__.edge-*.pth")), "installed"
    warnings = re.findall(r"\w*Warning\b.*|\bdeprecated\b.*", done.stderr)
    assert not warnings, done.stderr

"""tests/ itself: test modules import shared helpers from tests/support/, never from each
other or from conftest.py (which holds only fixtures); no helper sits loose beside the test
modules; `Clock` is written once; and the test files the guides and the reliability report
name exist. The suite's modules are parsed with ast, not imported."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from tests import reliability_report

TESTS = Path(__file__).parent
SUPPORT = TESTS / "support"
ROOT = TESTS.parent
#: Guides that name test files (the changelog's history is left as it was written).
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
#: What may sit directly in tests/ besides the test modules.
BESIDE_THE_TESTS = {"__init__.py", "conftest.py", "reliability_report.py"}


def _is_test_module(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("test_")


def _tests_module(name: str | None, level: int, package: str) -> str | None:
    """The module of the tests package an import names (absolute, or relative to
    ``package``), else None; a bare ``test_x`` or ``conftest`` counts as the suite's too."""
    if level:
        base = package.split(".")[: len(package.split(".")) - level + 1]
        name = ".".join([*base, name] if name else base)
    if name is None:
        return None
    if name == "tests" or name.startswith("tests."):
        return name
    if _is_test_module(name) or name == "conftest":
        return f"tests.{name}"
    return None


def imports(tree: ast.Module, package: str = "tests") -> list[str]:
    """Every module of the tests package that ``tree`` (a module of ``package``) imports,
    anywhere in it: ``from tests import x`` names the module ``tests.x``."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [m for alias in node.names if (m := _tests_module(alias.name, 0, package))]
        elif isinstance(node, ast.ImportFrom):
            module = _tests_module(node.module, node.level, package)
            if module in ("tests", "tests.support"):  # from tests import x: x is a module
                found += [f"{module}.{alias.name}" for alias in node.names]
            elif module is not None:
                found.append(module)
    return found


def forbidden(tree: ast.Module, package: str = "tests") -> list[str]:
    """The test modules and conftest that ``tree`` imports: never allowed."""
    return [m for m in imports(tree, package) if _is_test_module(m) or m == "tests.conftest"]


@functools.cache
def modules() -> list[tuple[Path, str, ast.Module]]:
    """(path, package, tree) of every Python module of the suite, support included; parsed
    once for all the checks."""
    found = []
    for path in sorted([*TESTS.glob("*.py"), *SUPPORT.glob("*.py"), *TESTS.glob("fuzz/*.py")]):
        package = ".".join(path.parent.relative_to(TESTS.parent).parts)
        found.append((path, package, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return found


def test_no_module_imports_a_test_module_or_conftest() -> None:
    wrong = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path, package, tree in modules()
        for module in forbidden(tree, package)
    ]
    assert not wrong, "shared helpers belong in tests/support/: " + "; ".join(wrong)


def test_every_suite_import_names_an_existing_module() -> None:
    existing = {
        ".".join(path.with_suffix("").relative_to(TESTS.parent).parts) for path, _, _ in modules()
    }
    existing = {name.removesuffix(".__init__") for name in existing}
    for path, package, tree in modules():
        missing = set(imports(tree, package)) - existing
        assert not missing, f"{path.relative_to(TESTS)} imports {missing}"


def test_no_helper_sits_beside_the_test_modules() -> None:
    loose = [
        path.name
        for path in TESTS.iterdir()
        if path.is_file()
        and path.name not in BESIDE_THE_TESTS
        and not (path.name.startswith("test_") and path.suffix == ".py")
    ]
    assert not loose, f"move these to tests/support/: {loose}"


def test_conftest_holds_only_fixtures() -> None:
    tree = ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8"))
    other = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.FunctionDef) and any(
            "pytest.fixture" in ast.unparse(decorator) for decorator in node.decorator_list
        ):
            continue
        other.append(ast.unparse(node).splitlines()[0])
    assert not other, f"not fixtures (move them to tests/support/): {other}"


def test_clock_is_written_once_in_support() -> None:
    clocks = [
        path.relative_to(TESTS).as_posix()
        for path, _, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "Clock"
    ]
    assert clocks == ["support/clock.py"], clocks


def test_every_test_file_the_guides_and_the_report_name_exists() -> None:
    named = {
        (guide.name, name)
        for guide in GUIDES
        for name in re.findall(r"\btests/[\w/]+\.(?:py|mjs)\b", guide.read_text(encoding="utf-8"))
    }
    named |= {("reliability_report.py", name) for name in reliability_report.TESTS}
    missing = sorted(
        f"{where} names {name}" for where, name in named if not (ROOT / name).is_file()
    )
    assert not missing, missing


def test_the_checks_see_every_way_to_import_a_test_module() -> None:
    source = "\n".join(
        [
            "from tests.test_serving import get",
            "import tests.test_process",
            "from tests import test_corpus, support",
            "from tests.conftest import World",
            "from .test_cache import x",
            "from . import test_http",
            "import test_paths",
            "def f():\n    from tests.test_keys import y",
            "from tests.support.client import get",
            "from tests.support import corpus",
            "import httpx",
        ]
    )
    assert forbidden(ast.parse(source)) == [
        "tests.test_serving",
        "tests.test_process",
        "tests.test_corpus",
        "tests.conftest",
        "tests.test_cache",
        "tests.test_http",
        "tests.test_paths",
        "tests.test_keys",
    ]
    assert imports(ast.parse("from .. import test_x\nfrom . import canned"), "tests.support") == [
        "tests.test_x",
        "tests.support.canned",
    ]

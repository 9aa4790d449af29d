"""The guide cannot drift from the code: generated tables, codes, links, and a contract that
stands on its own (the recipes that run are tests/test_recipes.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge import errors
from edge.settings import markdown_table
from edge.storage import failure_docs, failures

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
GUIDE = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]
#: The names of the repository's Markdown files.
MARKDOWN_NAMES = {
    path.name for path in ROOT.rglob("*.md") if not {"node_modules", ".venv"} & set(path.parts)
}
#: Every text that may point a reader somewhere: the guides, the example, the package's
#: docstrings and comments, the signers, the deploy files (the changelog's history is
#: left as it was written).
POINTERS = [
    *GUIDE,
    *sorted(DOCS.glob("examples/*.py")),
    *sorted((ROOT / "edge").rglob("*.py")),
    *sorted(p for p in (ROOT / "signers").rglob("*") if p.suffix in {".mjs", ".mts", ".go", ".rs"}),
    *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
    ROOT / "Makefile",
    ROOT / "pyproject.toml",
]


def block(path: Path, language: str) -> str:
    (code,) = re.findall(rf"```{language}\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)
    return str(code)


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_settings_tables_match_the_code(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == markdown_table(), "run: python -m edge.settings"


def between(text: str, marker: str) -> str:
    start = text.index(f"<!-- {marker}:start -->") + len(f"<!-- {marker}:start -->")
    return text[start : text.index(f"<!-- {marker}:end -->")].strip()


def test_failure_tables_match_the_code() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    run = "run: python -m edge.storage.failure_docs"
    assert between(text, "s3-failures") == failure_docs.markdown_table(failures.S3_ROWS), run
    folder = failure_docs.markdown_table(failures.FILE_ROWS, retries=False)
    assert between(text, "folder-failures") == folder, run


def test_troubleshooting_covers_every_error_code() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    kinds: list[type[errors.EdgeError]] = [errors.EdgeError, *errors.EdgeError.__subclasses__()]
    kinds += [k for kind in list(kinds) for k in kind.__subclasses__()]
    for kind in kinds:
        assert f"## {kind.code} ({kind.status}" in text, kind.code


@pytest.mark.parametrize("doc", GUIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_deployment_guide_names_every_deploy_file() -> None:
    guide = (DOCS / "deployment.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file():
            assert f"deploy/{path.relative_to(ROOT / 'deploy')}" in guide, path


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`make demo`" in readme and "`make test`" in readme
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: ", makefile, re.MULTILINE) and re.search(
        r"^test: ", makefile, re.MULTILINE
    )


def test_the_readme_layout_names_every_module() -> None:
    """A newcomer finds every module of the package in the README's layout, one line each."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout") :]
    modules = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "edge").rglob("*.py")
        if path.name != "__init__.py" and path.stem != "__main__"
    )
    missing = [module for module in modules if f"| `{module}` |" not in layout]
    assert not missing, missing


def test_the_architecture_names_every_pipeline_step_module() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for step in sorted((ROOT / "edge" / "image").glob("*.py")):
        if step.name != "__init__.py":
            assert f"`edge/image/{step.name}`" in text, step.name


@pytest.mark.parametrize("doc", POINTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_points_outside_the_repository(doc: Path) -> None:
    """The repository's docs are the whole contract: no text sends a reader to a file the
    repository does not hold (a ``../shared/spec`` beside it, "the authoritative text",
    "the spec", "issue 16"): every Markdown file named exists here, and no relative path
    climbs out."""
    text = doc.read_text(encoding="utf-8")
    outside = [
        name
        for name in re.findall(r"(?<![\w/.:-])([\w./-]*[\w-]\.md)\b", text)
        if not any((base / name).resolve().is_file() for base in (doc.parent, ROOT))
        and not ("/" not in name and name in MARKDOWN_NAMES)  # a bare name, as a link's text
    ]
    climbing = [
        path
        for path in re.findall(r"(?<![\w.])((?:\.\./)+[\w.-]*)", text)
        if not (doc.parent / path).resolve().is_relative_to(ROOT)
    ]
    assert not outside and not climbing, f"points outside the repository: {outside + climbing}"
    if doc.suffix == ".md":
        words = re.findall(r"\b(?:authoritative|spec|spec's|specification)\b", text, re.I)
        assert not words, f"names a text the repository does not hold: {words}"
    issues = re.findall(r"\bissues? ?#?\d+", text, re.I)
    assert not issues, f"names an issue the repository does not hold: {issues}"


def test_the_contract_stands_on_its_own() -> None:
    """docs/signed-urls.md states the URL, the transform parameters and what is signed, and
    says where the vectors are in the repository."""
    text = (DOCS / "signed-urls.md").read_text(encoding="utf-8")
    for section in ("## The URL", "## Transform parameters", "## What is signed", "## Keys"):
        assert f"\n{section}\n" in text, section
    for vectors in ("tests/data/vectors.json", "tests/data/vectors-transforms.json"):
        assert f"`{vectors}`" in text and (ROOT / vectors).is_file(), vectors

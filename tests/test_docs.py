"""The guide cannot drift from the code: generated tables, codes, links, and recipes that run."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from edge import errors
from edge.settings import markdown_table
from edge.signing import Verifier, check_url
from edge.storage import failure_docs, failures
from tests.support.servers import run_uvicorn
from tests.support.world import KEYS

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
GUIDE = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]


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


def test_api_endpoint_example_mints_urls_the_edge_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    monkeypatch.syspath_prepend(str(DOCS / "examples"))
    example = importlib.import_module("signed_url_endpoint")
    app = Starlette(
        routes=[Route("/api/v1/images/{id}/signed-url", example.signed_url, methods=["POST"])]
    )
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as client:
        ok = client.post(
            "/api/v1/images/img_1/signed-url", headers={"x-user": "bob"}, json={"expires_in": 60}
        )
        assert ok.status_code == 200
        url = ok.json()["url"].removeprefix("https://img.example.com")
        outcome = check_url(url, Verifier(example.SETTINGS.signing_keys, max_ttl=3600))
        assert outcome.result == "VALID" and url.startswith("/i/bob/albums/2026/caf%C3%A9.png?")
        stranger = client.post("/api/v1/images/img_1/signed-url", headers={"x-user": "eve"})
        missing = client.post("/api/v1/images/nope/signed-url", headers={"x-user": "bob"})
        assert (
            stranger.status_code == missing.status_code == 404 and stranger.json() == missing.json()
        )
        too_long = client.post(
            "/api/v1/images/img_1/signed-url", headers={"x-user": "bob"}, json={"expires_in": 10**8}
        )
        assert too_long.status_code == 400


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

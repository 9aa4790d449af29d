"""The docs cannot drift from the code: the README's settings table is generated."""

from __future__ import annotations

from pathlib import Path

from edge.settings import markdown_table

ROOT = Path(__file__).parent.parent


def test_readme_settings_table_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == markdown_table(), "run: python -m edge.settings"

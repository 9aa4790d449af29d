"""The failure tables as Markdown, for docs/troubleshooting.md (generated, so they cannot
drift from the code): ``python -m edge.storage.failure_docs`` prints them between the
markers the document keeps them in."""

from __future__ import annotations

import re
from collections.abc import Sequence

from edge.storage.failures import AT_ONCE, FILE_ROWS, S3_ROWS, Row

_FACT = re.compile(r"{(\w+)}")


def markdown_table(rows: Sequence[Row], *, retries: bool = True) -> str:
    """A table for docs/troubleshooting.md, generated so it cannot drift from the code."""
    head = ["failure", *(["retried"] if retries else []), "edge answers", "edge logs"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [row.failure, *([row.retry.value] if retries else []), _answer(row), _log(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _answer(row: Row) -> str:
    if row.instead or row.error is None:
        return row.instead
    text = f"`{row.error.status} {row.error.code}`"
    return text + ", or the download is cut if it was streaming" if row.body else text


def _log(row: Row) -> str:
    if not row.log or row.retry is AT_ONCE:
        return "(nothing)"
    return "`" + _FACT.sub(r"<\1>", row.log) + "`"


if __name__ == "__main__":  # python -m edge.storage.failure_docs: the tables for the docs
    for marker, table in (
        ("s3-failures", markdown_table(S3_ROWS)),
        ("folder-failures", markdown_table(FILE_ROWS, retries=False)),
    ):
        print(f"<!-- {marker}:start -->\n{table}\n<!-- {marker}:end -->\n")

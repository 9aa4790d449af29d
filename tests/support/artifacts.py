"""Figures the tests record: ``tests/artifacts/`` (ignored by git), and in it
``reliability/``, from which ``make reliability`` writes docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
RELIABILITY = ARTIFACTS / "reliability"


def write_artifact(name: str, data: dict[str, object]) -> None:
    RELIABILITY.mkdir(parents=True, exist_ok=True)
    (RELIABILITY / f"{name}.json").write_text(json.dumps(data, indent=1))

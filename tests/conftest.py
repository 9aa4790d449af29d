"""Shared fixtures: the spec's vectors, and an environment cleared of AWS_* and EDGE_*."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS credentials or EDGE_* settings (as aiobotocore's tests)."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "EDGE_")):
            monkeypatch.delenv(name)

"""The spec's vectors (``tests/data/vectors.json``, the contract's, copied as data), and the
keys and the moment they are judged at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.keys import parse_keyring

DATA = Path(__file__).parent.parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "vectors.json").read_text(encoding="utf-8"))
SIGNING = parse_keyring(VECTORS["keys"]["signing"])
VERIFYING = parse_keyring(VECTORS["keys"]["verifying"])
#: The vectors' keys that sign: two HMAC keys and an Ed25519 one.
KEYS = [SIGNING.by_kid[kid] for kid in ("main", "old", "ed1")]
NOW = 1_700_000_000

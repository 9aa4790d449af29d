"""One frozen settings object, built from the environment in one place and validated at start-up.

Each setting is declared once, as a field whose metadata holds its variable's
default, parser and documentation; ``from_env`` reads them all, and the README's
configuration table is checked against the same declarations so it cannot drift.
An error names the variable and never echoes a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from edge.errors import ConfigError
from edge.keys import Keyring, parse_keyring

PREFIX = "EDGE_"


@dataclass(frozen=True, slots=True)
class Var:
    """How one environment variable becomes one setting."""

    default: str
    help: str
    parse: Callable[[str, str], Any]
    secret: bool = False


def var(default: str, help: str, parse: Callable[[str, str], Any], *, secret: bool = False) -> Any:
    return field(metadata={"var": Var(default, help, parse, secret)})


def seconds(name: str, text: str) -> int:
    """A whole number of seconds, 0 or more, digits only."""
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ConfigError(f"{name}: expected a whole number of seconds (0 or more), got {text!r}")
    return int(text)


def keyring(name: str, text: str) -> Keyring:
    return parse_keyring(text, variable=name)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the edge can be told; build it with :meth:`from_env`."""

    signing_keys: Keyring = var(
        "",
        "Keyring, comma-separated `kid:alg:key` (alg `hs256`, `ed25519` or `ed25519-pub`, key in "
        "base64url). Empty: no private image is served. The first key that can sign is the one "
        "`edge sign` uses; every key verifies.",
        keyring,
        secret=True,
    )
    max_ttl: int = var(
        "604800",
        "Longest lifetime, in seconds, a signed URL may have left: a URL whose `exp` is further "
        "ahead is `SIGNATURE_INVALID`. 0 means no limit. Default 7 days, as S3 presigned URLs.",
        seconds,
    )
    clock_leeway: int = var(
        "0",
        "Seconds a signed URL stays valid past its `exp`, for signers whose clocks run behind.",
        seconds,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``EDGE_*`` setting from ``environ`` (default ``os.environ``), or raise."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            spec: Var = f.metadata["var"]
            name = variable_name(f.name)
            values[f.name] = spec.parse(name, env.get(name, spec.default).strip())
        return cls(**values)


def variable_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def documented() -> list[tuple[str, Var]]:
    """Every variable with its declaration, in declaration order: the configuration reference."""
    return [(variable_name(f.name), f.metadata["var"]) for f in fields(Settings)]


def markdown_table() -> str:
    """The README's configuration table, generated so it cannot drift from the code."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, spec in documented():
        default = f"`{spec.default}`" if spec.default else "(empty)"
        rows.append(f"| `{name}` | {default} | {spec.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m edge.settings: print the table for the README
    print(markdown_table())

"""How one environment variable's text becomes one typed value, or a one-line error.

Every parser takes the variable's name (for the error) and its text (stripped);
its name says what it parses. Parsers of edge's own types live next to those
types: :func:`edge.storage.config.parse_storage`, :func:`edge.proxies.parse_networks`,
:func:`edge.keys.parse_keyring` (wrapped here). An error names the variable and
never echoes a key.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from edge.errors import ConfigError
from edge.keys import Keyring, parse_keyring

_UNITS = {"": 1, "B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}")
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def parse_seconds(name: str, text: str) -> int:
    """A whole number of seconds, 0 or more, digits only."""
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ConfigError(f"{name}: expected a whole number of seconds (0 or more), got {text!r}")
    return int(text)


def parse_duration(name: str, text: str) -> float:
    """Seconds, decimals allowed, more than 0 (and less than a year)."""
    try:
        value = float(text) if text.isascii() else -1.0
    except ValueError:
        value = -1.0
    if not 0 < value < 86400 * 365 or text.lower() in ("nan", "inf"):
        raise ConfigError(
            f"{name}: expected a number of seconds above 0, such as 2 or 0.5, got {text!r}"
        )
    return value


def parse_optional_duration(name: str, text: str) -> float | None:
    """:func:`parse_duration`, or None when empty (another setting's value then applies)."""
    return parse_duration(name, text) if text else None


def parse_bytes(name: str, text: str) -> int:
    """Bytes: a whole number, optionally with KiB, MiB or GiB."""
    number = text.rstrip("BbIiKkMmGg ")
    unit = text[len(number) :].strip().upper()
    if not (number.isascii() and number.isdigit()) or len(number) > 20 or unit not in _UNITS:
        raise ConfigError(f"{name}: expected bytes such as 1048576 or 256MiB, got {text!r}")
    return int(number) * _UNITS[unit]


def parse_count(name: str, text: str) -> int:
    """A whole number from 1 to 100000: pool sizes, slots, attempts."""
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or not 1 <= int(text) <= 100_000:
        raise ConfigError(f"{name}: expected a whole number from 1 to 100000, got {text!r}")
    return int(text)


def parse_pixels(name: str, text: str) -> int:
    """A number of pixels, 1 to 10 billion: digits, or megapixels as ``50MP``."""
    upper = text.upper()
    number, scale = (upper[:-2].strip(), 1_000_000) if upper.endswith("MP") else (upper, 1)
    if not (number.isascii() and number.isdigit() and len(number) <= 11) or not (
        1 <= int(number) * scale <= 10_000_000_000
    ):
        raise ConfigError(f"{name}: expected pixels such as 25000000 or 25MP, got {text!r}")
    return int(number) * scale


def parse_workers(name: str, text: str) -> int:
    """``auto`` (the cores this process may run on) or a whole number from 1 to 1024."""
    if text.lower() == "auto":
        return len(os.sched_getaffinity(0)) or 1
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 1 <= int(text) <= 1024:
        raise ConfigError(f"{name}: expected auto or a whole number from 1 to 1024, got {text!r}")
    return int(text)


def parse_nice(name: str, text: str) -> int:
    """A scheduling niceness to add, 0 (none) to 19 (the lowest priority)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 2) or not 0 <= int(text) <= 19:
        raise ConfigError(f"{name}: expected a whole number from 0 to 19, got {text!r}")
    return int(text)


def parse_flag(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name}: expected on or off, got {text!r}")


_ORIGIN = re.compile(r"https?://[a-z0-9.\[\]:-]+")


def parse_origins(name: str, text: str) -> tuple[str, ...]:
    """Empty (none), ``*``, or origins (``https://app.example.com``), comma-separated."""
    origins = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if origins == ("*",):
        return origins
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{name}: expected * or origins such as https://app.example.com (scheme, host,"
                f" optional port, lower case, no path), got {origin!r}"
            )
    return origins


#: The stored headers EDGE_S3_PASS_HEADERS may name (Content-Encoding is always sent on).
PASSABLE_HEADERS = ("cache-control", "content-disposition", "content-language")


def parse_pass_headers(name: str, text: str) -> frozenset[str]:
    """Empty (none), or a comma-separated list of :data:`PASSABLE_HEADERS`, any case."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    for header in sorted(names):
        if header not in PASSABLE_HEADERS:
            allowed = ", ".join(PASSABLE_HEADERS)
            raise ConfigError(f"{name}: {header!r} cannot be passed on; expected some of {allowed}")
    return frozenset(names)


def parse_optional_url(name: str, text: str) -> str | None:
    """An http:// or https:// URL; empty means none."""
    if not text:
        return None
    if not _URL.fullmatch(text):
        raise ConfigError(f"{name}: expected an http:// or https:// URL, got {text!r}")
    return text


def parse_optional_text(name: str, text: str) -> str | None:
    """Any text; empty means none."""
    return text or None


_HOST = re.compile(
    r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?|\[[0-9a-f:.]+\](:[0-9]{1,5})?"
)


def parse_header_name(name: str, text: str) -> str:
    """An HTTP header name, kept in lower case (as ASGI servers hand headers over)."""
    if not _HEADER_NAME.fullmatch(text):
        raise ConfigError(f"{name}: expected a header name such as X-Original-URI, got {text!r}")
    return text.lower()


def parse_signing_keys(name: str, text: str) -> Keyring:
    """A keyring, ``kid:alg:key[,...]``: :func:`edge.keys.parse_keyring` naming ``name``."""
    return parse_keyring(text, variable=name)


def parse_access_log(name: str, text: str) -> Literal["json", "off"]:
    match text.lower():
        case "json":
            return "json"
        case "off":
            return "off"
    raise ConfigError(f"{name}: expected json or off, got {text!r}")


def parse_transforms(name: str, text: str) -> Literal["on", "signed"]:
    match text.lower():
        case "on":
            return "on"
        case "signed":
            return "signed"
    raise ConfigError(f"{name}: expected on or signed, got {text!r}")


def parse_addressing(name: str, text: str) -> Literal["auto", "path", "virtual"]:
    match text.lower():
        case "auto":
            return "auto"
        case "path":
            return "path"
        case "virtual":
            return "virtual"
    raise ConfigError(f"{name}: expected auto, path or virtual, got {text!r}")


def parse_hosts(name: str, text: str) -> frozenset[str]:
    """Host names, comma-separated, kept in lower case; a port is part of the name
    (``cdn.example.com:8443``) when clients send one."""
    hosts = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    for host in hosts:
        if not _HOST.fullmatch(host):
            raise ConfigError(f"{name}: expected host names such as cdn.example.com, got {host!r}")
    return hosts


def parse_metrics(name: str, text: str) -> Literal["local", "on", "off"] | int:
    """``local`` (at /metrics, loopback peers only), ``on`` (at /metrics, anyone), ``off``,
    or a port number for a listener of its own."""
    match text.lower():
        case "local":
            return "local"
        case "on":
            return "on"
        case "off":
            return "off"
    if text.isascii() and text.isdigit() and len(text) <= 12 and 1 <= int(text) <= 65535:
        return int(text)
    raise ConfigError(f"{name}: expected local, on, off or a port number, got {text!r}")

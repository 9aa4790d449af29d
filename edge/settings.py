"""One frozen settings object, built from the environment in one place and validated at start-up.

Each setting is declared once, as a field whose metadata holds its variable's
default, parser and documentation; ``from_env`` reads them all, and the README's
configuration table is checked against the same declarations so it cannot drift.
An error names the variable and never echoes a secret.
"""

from __future__ import annotations

import os
import re
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


_UNITS = {"": 1, "B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def size(name: str, text: str) -> int:
    """Bytes: a whole number, optionally with KiB, MiB or GiB."""
    number = text.rstrip("BbIiKkMmGg ")
    unit = text[len(number) :].strip().upper()
    if not (number.isascii() and number.isdigit()) or unit not in _UNITS:
        raise ConfigError(f"{name}: expected bytes such as 1048576 or 256MiB, got {text!r}")
    return int(number) * _UNITS[unit]


def duration(name: str, text: str) -> float:
    """Seconds, decimals allowed, more than 0."""
    try:
        value = float(text) if text.isascii() else -1.0
    except ValueError:
        value = -1.0
    if not 0 < value < 86400 * 365 or text.lower() in ("nan", "inf"):
        raise ConfigError(
            f"{name}: expected a number of seconds above 0, such as 2 or 0.5, got {text!r}"
        )
    return value


def count(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100_000:
        raise ConfigError(f"{name}: expected a whole number from 1 to 100000, got {text!r}")
    return int(text)


def flag(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name}: expected on or off, got {text!r}")


def optional_url(name: str, text: str) -> str | None:
    if not text:
        return None
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text):
        raise ConfigError(f"{name}: expected an http:// or https:// URL, got {text!r}")
    return text


def text_value(name: str, text: str) -> str | None:
    return text or None


def access_log(name: str, text: str) -> str:
    if text.lower() not in ("json", "off"):
        raise ConfigError(f"{name}: expected json or off, got {text!r}")
    return text.lower()


def metrics_mode(name: str, text: str) -> str | int:
    """``local`` (at /metrics, loopback peers only), ``on`` (at /metrics, anyone), ``off``,
    or a port number for a listener of its own."""
    lowered = text.lower()
    if lowered in ("local", "on", "off"):
        return lowered
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise ConfigError(f"{name}: expected local, on, off or a port number, got {text!r}")


_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}")


def header_name(name: str, text: str) -> str:
    """An HTTP header name, kept in lower case (as ASGI servers hand headers over)."""
    if not _HEADER_NAME.fullmatch(text):
        raise ConfigError(f"{name}: expected a header name such as X-Original-URI, got {text!r}")
    return text.lower()


def networks(name: str, text: str) -> tuple[Any, ...]:
    from edge.proxies import parse_networks

    return parse_networks(name, text)


@dataclass(frozen=True, slots=True)
class StorageTarget:
    """Where images live: a folder (``kind`` "file", ``location`` its path) or a bucket."""

    kind: str
    location: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.location}/{self.prefix}" if self.kind == "s3" else self.location


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def storage(name: str, text: str) -> StorageTarget:
    """``s3://bucket[/prefix]``, ``file:///abs/path`` or a plain (relative) folder path."""
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(f"{name}: {bucket!r} is not a valid S3 bucket name")
        prefix = prefix.strip("/")
        return StorageTarget("s3", bucket, prefix + "/" if prefix else "")
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(f"{name}: expected s3://bucket[/prefix], file:///path or a folder path")
    folder = text.removeprefix("file://")
    if text.startswith("file://") and not folder.startswith("/"):
        raise ConfigError(f"{name}: a file:// URL needs an absolute path (file:///srv/images)")
    return StorageTarget("file", os.path.abspath(folder))


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

    storage: StorageTarget = var(
        "images",
        "Where images live: a folder (`images`, `/srv/images` or `file:///srv/images`) or a"
        " bucket (`s3://bucket` or `s3://bucket/prefix`), holding `public/{user}/{file}` and"
        " `private/{user}/{file}`. A folder must exist when the server starts.",
        storage,
    )
    s3_endpoint_url: str | None = var(
        "",
        "S3 endpoint for S3-compatible stores (MinIO, Ceph, R2), e.g. `http://minio:9000`;"
        " empty for AWS. Credentials and region come from the standard AWS chain.",
        optional_url,
    )
    s3_region: str | None = var(
        "", "S3 region; empty means the AWS chain's (`AWS_REGION`, config files).", text_value
    )
    s3_max_connections: int = var(
        "64", "Size of the S3 connection pool, shared by all requests of a process.", count
    )
    s3_connect_timeout: float = var(
        "2", "Seconds to wait for a connection to S3 before `504 STORAGE_TIMEOUT`.", duration
    )
    s3_read_timeout: float = var(
        "10",
        "Seconds S3 may stay silent (first byte, or between two reads) before"
        " `504 STORAGE_TIMEOUT`.",
        duration,
    )
    s3_max_attempts: int = var(
        "3",
        "Attempts per S3 call, first included, on connection errors, 500, 503 and SlowDown;"
        " then `502 STORAGE_ERROR`.",
        count,
    )
    max_storage_reads: int = var(
        "128",
        "Storage reads (each holding a storage connection until its body is sent) one process"
        " runs at once; more wait up to `EDGE_QUEUE_TIMEOUT`, then get `503 OVERLOADED`.",
        count,
    )
    queue_timeout: float = var(
        "0.5",
        "Seconds a request waits for a storage read slot before `503 OVERLOADED` with"
        " `Retry-After`.",
        duration,
    )
    cache_ttl: int = var(
        "60",
        'Seconds the hot-object cache keeps an object (or a "not found"); 0 turns the cache'
        " off. Within it a replaced or deleted object may be served as it was.",
        seconds,
    )
    cache_max_bytes: int = var(
        "256MiB",
        "Memory the hot-object cache may hold per process (least recently used go first).",
        size,
    )
    cache_max_object_bytes: int = var(
        "1MiB",
        "Largest object the hot-object cache keeps; larger ones always stream from storage.",
        size,
    )
    public_max_age: int = var(
        "86400",
        "`Cache-Control: public, max-age` of public images, in seconds (browsers and shared"
        " caches).",
        seconds,
    )
    private_max_age: int = var(
        "3600",
        "Cap on `Cache-Control: private, max-age` of private images; the max-age is otherwise"
        " the seconds left before the URL's `exp`, so no browser keeps one past it.",
        seconds,
    )
    cors: bool = var(
        "on",
        "`on` answers images with `Access-Control-Allow-Origin: *`, so `<img crossorigin>` and"
        " canvas work; `off` sends no CORS header.",
        flag,
    )
    send_timeout: float = var(
        "30",
        "Seconds a client may take to accept one 64 KiB chunk; a slower (or stopped) reader"
        " is disconnected, so it cannot hold a storage connection forever.",
        duration,
    )
    access_log: str = var(
        "json",
        "`json`: one JSON line per request on stdout (time, client, method, path with `sig`"
        " redacted, status, bytes, duration, outcome, cache), written off the event loop;"
        " `off`: none.",
        access_log,
    )
    metrics: str | int = var(
        "local",
        "Prometheus metrics: `local` serves them at `/metrics` to loopback clients only (a"
        " proxy on the same host must not forward `/metrics`), `on` to anyone, a port number"
        " on a listener of their own (keep it off the public network), `off` disables them.",
        metrics_mode,
    )
    trusted_proxies: tuple[Any, ...] = var(
        "",
        "Proxies (addresses or CIDR networks, comma-separated) whose `X-Forwarded-For` and"
        " `X-Forwarded-Proto` name the client in logs; from anyone else they are ignored.",
        networks,
    )
    max_connections: int = var(
        "4096",
        "Client connections one process holds at once; beyond it a new connection is answered"
        " `503 OVERLOADED` and closed. Must fit the open-file limit, which edge raises to its"
        " hard maximum at start-up (a start-up error says when it cannot).",
        count,
    )
    header_timeout: float = var(
        "10",
        "Seconds a connection gets to send a complete request head, from its opening or the end"
        " of the previous response; a connection that sends nothing, or sends it too slowly, is"
        " closed.",
        duration,
    )
    keepalive_timeout: float = var(
        "5",
        "Seconds an idle kept-alive connection stays open between requests. Behind a load"
        " balancer, set it above the balancer's own idle timeout.",
        duration,
    )
    max_header_bytes: int = var(
        "16KiB",
        "Largest request head (request line and headers) accepted; a larger one is answered"
        " `431 HEADERS_TOO_LARGE` before more of it is read.",
        size,
    )
    auth_uri_header: str = var(
        "X-Original-URI",
        "The one header `/auth` reads the original URI from: `X-Original-URI` for the shipped"
        " nginx config, `X-Forwarded-Uri` for Traefik's forwardAuth. Every other such header"
        " is ignored, and a request carrying it twice is refused.",
        header_name,
    )
    shutdown_timeout: float = var(
        "30",
        "On SIGTERM, seconds in-flight downloads get to finish after the edge stops"
        " accepting connections; then it exits.",
        duration,
    )
    ready_interval: float = var(
        "5",
        "`/readyz` checks storage at most once per this many seconds and answers from the"
        " last result in between.",
        duration,
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

"""The edge's configuration: one frozen object, read from ``EDGE_*`` variables at start-up.

Each setting is declared once, as a field of :class:`Settings` whose :func:`var`
holds its variable's default, parser, group and meaning. ``from_env`` reads them
all, then refuses the few combinations that cannot work; the configuration
reference in README.md and docs/configuration.md is generated from the same
declarations (``python -m edge.settings``) and a test keeps it equal. An error
is one line that names the variables and never echoes a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, cast, dataclass_transform

from edge.cache import MISSING_SHARE
from edge.config_parsers import (
    parse_access_log,
    parse_addressing,
    parse_bytes,
    parse_count,
    parse_duration,
    parse_flag,
    parse_header_name,
    parse_hosts,
    parse_metrics,
    parse_nice,
    parse_optional_duration,
    parse_optional_text,
    parse_optional_url,
    parse_origins,
    parse_pass_headers,
    parse_pixels,
    parse_seconds,
    parse_signing_keys,
    parse_transforms,
    parse_workers,
)
from edge.errors import ConfigError
from edge.keys import Keyring
from edge.proxies import Network, parse_networks
from edge.storage.config import S3Settings, StorageTarget, parse_storage

PREFIX = "EDGE_"
T = TypeVar("T")
C = TypeVar("C")

# The groups of the configuration reference, each a table of its own.
SIGNED_URLS, STORAGE, S3, CACHING, TRANSFORMS, HTTP, OBSERVABILITY = (
    "Signed URLs",
    "Storage",
    "S3",
    "Caching",
    "Transforms",
    "HTTP",
    "Observability",
)


@dataclass(frozen=True, slots=True)
class Var:
    """How one environment variable becomes one setting, and what the reference says of it."""

    default: str
    parse: Callable[[str, str], object]
    group: str
    help: str
    secret: bool = False


def var(
    default: str, parse: Callable[[str, str], T], group: str, help: str, /, *, secret: bool = False
) -> T:
    """Declare a setting. Typed as what ``parse`` returns, so mypy checks each parser
    against its field's type."""
    return cast(T, field(metadata={"var": Var(default, parse, group, help, secret)}))


@dataclass_transform(frozen_default=True, field_specifiers=(var,))
def settings_class(cls: type[C]) -> type[C]:
    """A frozen, slotted dataclass whose fields are declared with :func:`var`; PEP 681 tells
    type checkers and linters that ``var()`` declares a field, as ``field()`` does."""
    return dataclass(frozen=True, slots=True)(cls)


@settings_class
class Settings:
    """Everything the edge can be told; build it with :meth:`from_env`."""

    signing_keys: Keyring = var(
        "",
        parse_signing_keys,
        SIGNED_URLS,
        "Keyring, comma-separated `kid:alg:key` (alg `hs256`, `ed25519` or `ed25519-pub`, key in "
        "base64url). Empty: no private image is served. The first key that can sign is the one "
        "`edge sign` uses; every key verifies.",
        secret=True,
    )
    max_ttl: int = var(
        "604800",
        parse_seconds,
        SIGNED_URLS,
        "Longest lifetime, in seconds, a signed URL may have left: a URL whose `exp` is further "
        "ahead is `SIGNATURE_INVALID`. 0 means no limit. Default 7 days, as S3 presigned URLs.",
    )
    clock_leeway: int = var(
        "0",
        parse_seconds,
        SIGNED_URLS,
        "Seconds a signed URL stays valid past its `exp`, for signers whose clocks run behind.",
    )
    auth_uri_header: str = var(
        "X-Original-URI",
        parse_header_name,
        SIGNED_URLS,
        "The one header `/auth` reads the original URI from: `X-Original-URI` for the shipped"
        " nginx config, `X-Forwarded-Uri` for Traefik's forwardAuth. Every other such header"
        " is ignored, and a request carrying it twice is refused.",
    )

    storage: StorageTarget = var(
        "images",
        parse_storage,
        STORAGE,
        "Where images live: a folder (`images`, `/srv/images` or `file:///srv/images`) or a"
        " bucket (`s3://bucket` or `s3://bucket/prefix`), holding `public/{user}/{file}` and"
        " `private/{user}/{file}`. A folder must exist when the server starts.",
    )
    max_storage_reads: int = var(
        "128",
        parse_count,
        STORAGE,
        "Storage reads (each holding a storage connection until its body is sent) one process"
        " runs at once; more wait up to `EDGE_QUEUE_TIMEOUT`, then get `503 OVERLOADED`.",
    )
    queue_timeout: float = var(
        "0.5",
        parse_duration,
        STORAGE,
        "Seconds a request waits for a storage read slot before `503 OVERLOADED` with"
        " `Retry-After`.",
    )

    s3_endpoint_url: str | None = var(
        "",
        parse_optional_url,
        S3,
        "S3 endpoint for S3-compatible stores (MinIO, Ceph, R2), e.g. `http://minio:9000`."
        " Empty: as the AWS SDKs find it, in this order: `AWS_ENDPOINT_URL_S3`,"
        " `AWS_ENDPOINT_URL`, the profile's `services` section (`s3 = endpoint_url = ...`),"
        " the profile's `endpoint_url` (`AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` skips"
        " those four); none of them: AWS. Credentials come from the standard AWS chain.",
    )
    s3_region: str | None = var(
        "",
        parse_optional_text,
        S3,
        "S3 region. Empty: the AWS chain's (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's"
        " `region`, else `us-east-1`) as a first guess, then the bucket's own, found at"
        " start-up (S3's `x-amz-bucket-region`). Either way a `301 PermanentRedirect` naming"
        " another region is followed once: edge signs for that region from then on.",
    )
    s3_addressing: Literal["auto", "path", "virtual"] = var(
        "auto",
        parse_addressing,
        S3,
        "`path`: `https://endpoint/bucket/key`; `virtual`: `https://bucket.endpoint/key`"
        " (the store's DNS must resolve every bucket's name; a name under `.localhost` is"
        " reached at `localhost`); `auto`: the AWS profile's `s3.addressing_style` when it"
        " says `path` or `virtual`, else virtual-hosted on AWS's own endpoints"
        " (`s3.amazonaws.com`, `s3.REGION.amazonaws.com`, or no endpoint set), path-style on"
        " any other. A bucket whose name is no DNS label, or holds a dot over `https`"
        " (the wildcard certificate cannot match it), is always path-style, as in the AWS SDKs.",
    )
    s3_check_bucket: bool = var(
        "on",
        parse_flag,
        S3,
        "`on`: at start-up, one listing of the bucket (`ListObjects`, one key; needs"
        " `s3:ListBucket`) must succeed, or the edge refuses to start, naming the bucket and"
        " what the store said. `off` for stores that refuse listings (the region is then"
        " found from the first answer that names it).",
    )
    s3_max_connections: int = var(
        "64",
        parse_count,
        S3,
        "Size of the S3 connection pool, shared by all requests of a process.",
    )
    s3_connect_timeout: float = var(
        "2",
        parse_duration,
        S3,
        "Seconds to wait for a connection to S3 before `504 STORAGE_TIMEOUT`.",
    )
    s3_read_timeout: float = var(
        "10",
        parse_duration,
        S3,
        "Seconds S3 may stay silent (first byte, or between two reads) before"
        " `504 STORAGE_TIMEOUT`.",
    )
    s3_max_attempts: int = var(
        "3",
        parse_count,
        S3,
        "Attempts per S3 call, first included, for the failures the troubleshooting guide's"
        " table marks as retried (connection errors, silence, 429, 500, 502, 503 SlowDown,"
        " 504); then that failure's error.",
    )
    s3_pass_headers: frozenset[str] = var(
        "",
        parse_pass_headers,
        S3,
        "Headers stored with a public object (set at upload: `put-object --cache-control`)"
        " that edge sends on, comma-separated: any of `Cache-Control` (instead of edge's"
        " `public, max-age=`), `Content-Disposition` (on images only: any other type stays"
        " `attachment`) and `Content-Language`. A private object always gets edge's own"
        " `private` Cache-Control and none of them. A stored `Content-Encoding` is always"
        " sent on; a value with a control character or a byte past ASCII never is.",
    )

    cache_ttl: int = var(
        "60",
        parse_seconds,
        CACHING,
        'Seconds the hot-object cache keeps an object (or a "not found"); 0 turns the cache'
        " off. Within it a replaced or deleted object may be served as it was.",
    )
    cache_max_bytes: int = var(
        "256MiB",
        parse_bytes,
        CACHING,
        "Memory the hot-object cache may hold per process, counted in real bytes (oldest"
        ' entries go first); "not found" entries get an eighth of it.',
    )
    cache_max_object_bytes: int = var(
        "1MiB",
        parse_bytes,
        CACHING,
        "Largest object the hot-object cache keeps; larger ones always stream from storage."
        " At most the seven eighths of `EDGE_CACHE_MAX_BYTES` left for found objects.",
    )
    public_max_age: int = var(
        "86400",
        parse_seconds,
        CACHING,
        "`Cache-Control: public, max-age` of public images, in seconds (browsers and shared"
        " caches).",
    )
    private_max_age: int = var(
        "3600",
        parse_seconds,
        CACHING,
        "Cap on `Cache-Control: private, max-age` of private images; the max-age is otherwise"
        " the seconds left before the URL's `exp`, so no browser keeps one past it.",
    )

    transforms: Literal["on", "signed"] = var(
        "on",
        parse_transforms,
        TRANSFORMS,
        "`on`: public images transform for anyone (`?w=800`, `photo.webp` made from"
        " `photo.jpg`), private ones for a URL signed with its transform; `signed`: every"
        " transform or conversion needs a valid signature, even of a public image (no CPU"
        " spent for unsigned URLs; an unsigned one is `403 SIGNATURE_INVALID`).",
    )
    bare_hosts: frozenset[str] = var(
        "",
        parse_hosts,
        HTTP,
        "Host names (comma-separated) whose requests use the short URL form"
        " `/{user}/{path}`, served as `/i/{user}/{path}`: signatures are over the `/i/` form,"
        " so one signed URL works on both hosts. Other hosts keep `/i/` only.",
    )
    transform_max_source_pixels: int = var(
        "50MP",
        parse_pixels,
        TRANSFORMS,
        "Largest source a transform decodes, in pixels (one frame), read from the image's header"
        " before any pixel is decoded; a larger one is `422 UNPROCESSABLE_IMAGE`. An animation"
        " keeps its frames only while all of them together fit (else its first frame is used)."
        " Digits, or megapixels as `50MP`.",
    )
    transform_max_source_bytes: int = var(
        "32MiB",
        parse_bytes,
        TRANSFORMS,
        "Largest stored object a transform reads; a larger one is `422 UNPROCESSABLE_IMAGE`"
        " (asked for without transform parameters, it is still served as stored).",
    )
    transform_max_output_pixels: int = var(
        "25MP",
        parse_pixels,
        TRANSFORMS,
        "Largest output a transform encodes, in pixels (`round(w*dpr)` x `round(h*dpr)`, or the"
        " source's size when no size is asked), checked before decoding; above it the request is"
        " `422 UNPROCESSABLE_IMAGE`. An animation keeps its frames only while all of them"
        " together fit.",
    )
    transform_max_output_bytes: int = var(
        "16MiB",
        parse_bytes,
        TRANSFORMS,
        "Largest encoded output a transform answers; a larger one is `422 UNPROCESSABLE_IMAGE`."
        " A variant up to this size is kept in the hot cache even above"
        " `EDGE_CACHE_MAX_OBJECT_BYTES` (made again, it would cost a transform).",
    )
    transform_max_frames: int = var(
        "100",
        parse_count,
        TRANSFORMS,
        "Most frames an animated GIF or WebP keeps when the output is GIF or WebP; a longer"
        " animation (or any animation into JPEG, PNG or AVIF) becomes its first frame.",
    )
    transform_workers: int = var(
        "auto",
        parse_workers,
        TRANSFORMS,
        "Transforms one process runs at once, each in a thread of its own (libvips then uses"
        " cores / workers threads per transform); `auto` is the number of cores the process may"
        " run on.",
    )
    transform_nice: int = var(
        "10",
        parse_nice,
        TRANSFORMS,
        "Niceness added to the transform threads (and the libvips threads they start), 0 to"
        " 19: when the CPU is short, the event loop (cached hits, originals) runs first and"
        " transforms take what it leaves. 10 keeps hits at their unloaded rate while transforms"
        " saturate the cores; 0: transforms compete as equals (Linux only).",
    )
    transform_queue_timeout: float | None = var(
        "",
        parse_optional_duration,
        TRANSFORMS,
        "Seconds a request waits for a transform worker before `503 OVERLOADED` with"
        " `Retry-After`; empty: `EDGE_QUEUE_TIMEOUT`, the wait for a storage read slot.",
    )
    transform_timeout: float = var(
        "10",
        parse_duration,
        TRANSFORMS,
        "Seconds a transform may run in its worker (decode, steps, encode); past it libvips"
        " stops the work at its next tile, the worker is free again, and the request (with"
        " any waiting for the same variant) gets `503 TRANSFORM_TIMEOUT` with `Retry-After`;"
        " nothing is cached, so a later request tries again.",
    )

    max_connections: int = var(
        "4096",
        parse_count,
        HTTP,
        "Client connections one process holds at once; beyond it a new connection is answered"
        " `503 OVERLOADED` and closed. Must fit the open-file limit, which edge raises to its"
        " hard maximum at start-up (a start-up error says when it cannot).",
    )
    header_timeout: float = var(
        "10",
        parse_duration,
        HTTP,
        "Seconds a connection gets to send a complete request head, from its opening or the end"
        " of the previous response; a connection that sends nothing, or sends it too slowly, is"
        " closed.",
    )
    keepalive_timeout: float = var(
        "5",
        parse_duration,
        HTTP,
        "Seconds an idle kept-alive connection stays open between requests. Behind a load"
        " balancer, set it above the balancer's own idle timeout.",
    )
    max_header_bytes: int = var(
        "16KiB",
        parse_bytes,
        HTTP,
        "Largest request head (request line and headers) accepted; a larger one is answered"
        " `431 HEADERS_TOO_LARGE` before more of it is read.",
    )
    send_timeout: float = var(
        "30",
        parse_duration,
        HTTP,
        "Seconds a client may take to accept one 64 KiB chunk; a slower (or stopped) reader"
        " is disconnected, so it cannot hold a storage connection forever.",
    )
    shutdown_timeout: float = var(
        "30",
        parse_duration,
        HTTP,
        "On SIGTERM, seconds in-flight downloads get to finish after the edge stops"
        " accepting connections; then it exits.",
    )
    cors: bool = var(
        "on",
        parse_flag,
        HTTP,
        "`on` answers images with `Access-Control-Allow-Origin: *`, so `<img crossorigin>` and"
        " canvas work; `off` sends no CORS header.",
    )

    access_log: Literal["json", "off"] = var(
        "json",
        parse_access_log,
        OBSERVABILITY,
        "`json`: one JSON line per request on stdout (time, client, method, path with `sig`"
        " redacted, status, bytes, duration, outcome, cache, request id, referer, user"
        " agent), written off the event loop;"
        " `off`: none.",
    )
    metrics: Literal["local", "on", "off"] | int = var(
        "local",
        parse_metrics,
        OBSERVABILITY,
        "Prometheus metrics: `local` serves them at `/metrics` to loopback clients only (a"
        " proxy on the same host must not forward `/metrics`), `on` to anyone, a port number"
        " on a listener of their own (keep it off the public network), `off` disables them."
        " With `edge serve --workers N` every scrape shows the sum of all workers.",
    )
    trusted_proxies: tuple[Network, ...] = var(
        "",
        parse_networks,
        OBSERVABILITY,
        "Proxies (addresses or CIDR networks, comma-separated) whose `X-Forwarded-For` and"
        " `X-Forwarded-Proto` name the client in logs, and whose `X-Request-ID` is kept (if 1 to"
        " 128 characters of `A-Za-z0-9._:-`); from anyone else they are ignored.",
    )
    server_timing: bool = var(
        "off",
        parse_flag,
        OBSERVABILITY,
        "`on` adds `Server-Timing` to image responses: `cache;desc=hit|miss|none`,"
        " `storage;dur=`, `verify;dur=` and, when a transform ran, `transform;dur=`"
        " (milliseconds). It tells anyone what the cache holds and how long storage takes."
        " Off, it costs a cached hit 0.14% of its instructions; on, 6% to 8%"
        " (bench/README.md).",
    )
    timing_allow_origin: tuple[str, ...] = var(
        "",
        parse_origins,
        OBSERVABILITY,
        "`Timing-Allow-Origin` on image responses, so pages of other origins see"
        " `Server-Timing` and the Resource Timing details: empty sends none, `*` any origin, a"
        " comma-separated list of origins (`https://app.example.com`) echoes the request's"
        " `Origin` when listed (with `Vary: Origin`).",
    )
    ready_interval: float = var(
        "5",
        parse_duration,
        OBSERVABILITY,
        "`/readyz` checks storage at most once per this many seconds and answers from the"
        " last result in between.",
    )

    @property
    def s3(self) -> S3Settings:
        """The ``EDGE_S3_*`` group, as the storage package takes it."""
        return S3Settings(
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            max_connections=self.s3_max_connections,
            connect_timeout=self.s3_connect_timeout,
            read_timeout=self.s3_read_timeout,
            max_attempts=self.s3_max_attempts,
            addressing=self.s3_addressing,
            check_bucket=self.s3_check_bucket,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``EDGE_*`` setting from ``environ`` (default ``os.environ``), or raise."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            spec: Var = f.metadata["var"]
            name = variable_name(f.name)
            values[f.name] = spec.parse(name, env.get(name, spec.default).strip())
        settings = cls(**values)
        check_combinations(
            settings, given={n for n, v in env.items() if n.startswith(PREFIX) and v.strip()}
        )
        return settings

    def check_server(self, *, port: int, workers: int) -> None:
        """Refuse a metrics port the server itself needs: its own ``--port``. (With several
        workers, ``edge serve`` listens on a metrics port once, for all of them.)"""
        del workers  # any number: edge/workermetrics.py
        if isinstance(self.metrics, int) and self.metrics == port:
            raise ConfigError(
                f"EDGE_METRICS: port {port} is the server's own (--port); give metrics another"
            )


def check_combinations(settings: Settings, *, given: Set[str]) -> None:
    """Refuse settings that each parse but cannot work together, naming the variables.
    ``given`` holds the variables the environment sets (to something not empty)."""
    found_share = settings.cache_max_bytes - settings.cache_max_bytes // MISSING_SHARE
    if settings.cache_ttl and settings.cache_max_object_bytes > found_share:
        raise ConfigError(
            f"EDGE_CACHE_MAX_OBJECT_BYTES: {settings.cache_max_object_bytes} is above the"
            f" {found_share} bytes EDGE_CACHE_MAX_BYTES ({settings.cache_max_bytes}) leaves for"
            " found objects, so the cache could keep no such object; raise EDGE_CACHE_MAX_BYTES"
            " or lower EDGE_CACHE_MAX_OBJECT_BYTES (EDGE_CACHE_TTL=0 turns the cache off)"
        )
    s3_given = sorted(name for name in given if name.startswith(variable_name("s3_")))
    if s3_given and variable_name("storage") not in given:
        raise ConfigError(
            f"EDGE_STORAGE: not set, so edge would serve the folder {settings.storage} and"
            f" ignore {', '.join(s3_given)}; set EDGE_STORAGE=s3://bucket[/prefix] for a bucket"
        )


def variable_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def documented() -> list[tuple[str, Var]]:
    """Every variable with its declaration, in declaration order: the configuration reference."""
    return [(variable_name(f.name), f.metadata["var"]) for f in fields(Settings)]


def markdown_table() -> str:
    """The configuration reference, a table per group, generated so it cannot drift."""
    lines: list[str] = []
    for group in dict.fromkeys(spec.group for _, spec in documented()):
        lines += [f"### {group}", "", "| variable | default | meaning |", "| --- | --- | --- |"]
        for name, spec in documented():
            if spec.group == group:
                default = f"`{spec.default}`" if spec.default else "(empty)"
                lines.append(f"| `{name}` | {default} | {spec.help} |")
        lines.append("")
    return "\n".join(lines).strip()


if __name__ == "__main__":  # python -m edge.settings: print the reference for the docs
    print(markdown_table())

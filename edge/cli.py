"""The ``edge`` command: keygen, sign, verify, serve and demo.

Exit codes: 0 success (for ``verify``: VALID or UNSIGNED), 1 a verdict against
the URL, 2 usage or configuration errors. Errors are one line on stderr, never
a traceback and never key material.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.errors import BadRequest, ConfigError
from edge.keys import Key, generate
from edge.paths import quote_path
from edge.settings import Settings
from edge.signing import Verifier, check_url, sign_url
from edge.storage import open_storage
from edge.transform_params import split_params, transform_from_pairs

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, UsageError) as error:
        print(f"edge: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="print a new keyring entry")
    keygen.add_argument("--alg", choices=("hs256", "ed25519"), default="hs256")
    keygen.add_argument(
        "--kid", help="key id (default: k + today's date, e.g. k20261125, handy for rotation)"
    )
    keygen.set_defaults(run=run_keygen)

    sign = commands.add_parser("sign", help="print a signed URL for a decoded path")
    sign.add_argument("path", metavar="PATH", help="decoded path, e.g. /i/bob/café.png")
    expiry = sign.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--expires-in", type=_whole, metavar="SECONDS")
    expiry.add_argument("--expires-at", type=_whole, metavar="UNIX")
    sign.add_argument("--kid", help="sign with this key and put kid= in the URL")
    sign.add_argument("--base-url", help="prefix, e.g. https://img.example.com")
    sign.add_argument(
        "--transform",
        metavar="PARAMS",
        help="transform parameters to sign, canonical values, e.g. 'w=800&h=600&fit=cover'",
    )
    sign.set_defaults(run=run_sign)

    verify = commands.add_parser("verify", help="judge a URL as the edge would")
    verify.add_argument("url", metavar="URL")
    verify.add_argument("--now", type=_whole, metavar="UNIX", help="judge at this time")
    verify.set_defaults(run=run_verify)

    serve = commands.add_parser("serve", help="run the edge on uvicorn")
    _server_options(serve)
    serve.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    serve.set_defaults(run=run_serve)

    demo = commands.add_parser(
        "demo", help="make sample images and an ephemeral key, serve them, print URLs to try"
    )
    _server_options(demo)
    demo.add_argument("--folder", default="demo-images", help="where to write the samples")
    demo.set_defaults(run=run_demo)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8080)


def _whole(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds, got {text!r}")
    return int(text)


def _load_keyring_settings() -> Settings:
    settings = Settings.from_env()
    if not settings.signing_keys:
        raise ConfigError("EDGE_SIGNING_KEYS is empty: set it to a keyring (see `edge keygen`)")
    return settings


def run_keygen(args: argparse.Namespace) -> int:
    kid = args.kid or datetime.now(UTC).strftime("k%Y%m%d")
    entries = generate(args.alg, kid)
    for entry in entries:
        print(entry)
    if args.alg == "ed25519":
        print(
            "# line 1: signing entry, for signers only; line 2: ed25519-pub entry for the edges",
            file=sys.stderr,
        )
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    settings = _load_keyring_settings()
    keys = settings.signing_keys
    if args.kid is None:
        key = keys.signing_key
        if key is None:
            raise ConfigError("EDGE_SIGNING_KEYS holds no key that can sign (only ed25519-pub)")
    else:
        key = keys.by_kid.get(args.kid)
        if key is None:
            raise UsageError(f"no key with kid {args.kid!r} in EDGE_SIGNING_KEYS")
        if not key.can_sign:
            raise UsageError(f"key {args.kid!r} is an ed25519-pub key: it cannot sign")
    transform = split_params(args.transform or "")
    try:
        transform_from_pairs(transform)
    except BadRequest as error:
        raise UsageError(f"--transform: {error.reason}") from None
    now = int(time.time())
    exp = now + args.expires_in if args.expires_at is None else args.expires_at
    if settings.max_ttl and exp - now > settings.max_ttl:
        raise UsageError(
            f"exp is {exp - now} s ahead; edges reject URLs beyond EDGE_MAX_TTL={settings.max_ttl}"
        )
    try:
        url = sign_url(
            args.path, key=key, exp=exp, include_kid=args.kid is not None, transform=transform
        )
    except BadRequest as error:
        raise UsageError(f"PATH is not a valid image path: {error.reason}") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    print((args.base_url or "").rstrip("/") + url)
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    settings = _load_keyring_settings()
    clock = time.time if args.now is None else (lambda: float(args.now))
    verifier = Verifier(
        settings.signing_keys,
        max_ttl=settings.max_ttl,
        leeway=settings.clock_leeway,
        clock=clock,
    )
    outcome = check_url(args.url, verifier)
    print(outcome.result)
    print(outcome.explanation)
    return EXIT_OK if outcome.result in ("VALID", "UNSIGNED") else EXIT_REJECTED


def run_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    open_storage(settings.storage, settings.s3)  # a missing folder: one line here, no traceback
    _run_uvicorn("edge.app:create_app", args, workers=args.workers, settings=settings)
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from edge.app import create_app
    from edge.keys import parse_keyring
    from edge.samples import write_demo_folder

    folder = Path(args.folder).resolve()
    paths = write_demo_folder(folder)
    keys = os.environ.get("EDGE_SIGNING_KEYS") or generate("hs256", "demo")[0]
    settings = Settings.from_env(
        {**os.environ, "EDGE_STORAGE": str(folder), "EDGE_SIGNING_KEYS": keys}
    )
    key = parse_keyring(keys).signing_key
    if key is None:
        raise ConfigError("EDGE_SIGNING_KEYS holds no key that can sign")
    base = f"http://{args.host}:{args.port}"
    print(f"edge demo: samples in {folder}, ephemeral key 'demo' (not saved)")
    signed = ""
    for heading, entries in demo_urls(paths, key, int(time.time())):
        print(f"\n{heading}")
        for label, expect, urls in entries:
            print(f"  {label:38} {expect}")
            print(",\n".join(f"    {base}{url}" for url in urls))
            signed = signed or (urls[0] if label == SIGNED_LABEL else "")
    print(f"\nTry one with: curl -i '{base}{signed}'\nCtrl-C stops the server.\n", flush=True)
    _run_uvicorn(create_app(settings), args, workers=1, settings=settings)
    return EXIT_OK


DemoEntry = tuple[str, str, list[str]]
#: The demo's entry whose URL the curl example uses (the README names it too).
SIGNED_LABEL = "private image, signed for 1 hour"


def demo_urls(paths: dict[str, str], key: Key, now: int) -> list[tuple[str, list[DemoEntry]]]:
    """What ``edge demo`` prints: headed lists of (label, expected answer, URLs); a
    ``srcset`` entry has several URLs, each followed by its width descriptor."""
    from edge.samples import DEMO_PRESET

    private = paths["private_png"]
    signed = sign_url(private, key=key, exp=now + 3600)
    expired = sign_url(private, key=key, exp=now - 60)
    sig = signed.split("sig=")[1][:43]
    tampered = signed.replace(sig, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:])
    jpeg = quote_path(paths["public_jpeg"])
    stem = jpeg.removesuffix(".jpg")
    thumb = sign_url(private, key=key, exp=now + 3600, transform="w=200")
    stored = [
        ("public image", "200", [quote_path(paths["public_png"])]),
        ("public SVG (sandboxed)", "200", [quote_path(paths["public_svg"])]),
        (SIGNED_LABEL, "200", [signed]),
        ("the same private image, unsigned", "404 NOT_FOUND", [quote_path(private)]),
        ("an expired signed URL", "403 SIGNATURE_EXPIRED", [expired]),
        ("a tampered signed URL", "403 SIGNATURE_INVALID", [tampered]),
    ]
    transforms = [
        ("thumbnail, 200x200 cover", "200", [f"{jpeg}?w=200&h=200&fit=cover"]),
        ("WebP made from the stored JPEG", "200", [f"{stem}.webp"]),
        ("AVIF made from the stored JPEG", "200", [f"{stem}.avif"]),
        ("srcset: 400, 800 and 1200 wide", "200", [f"{jpeg}?w={w} {w}w" for w in (400, 800, 1200)]),
        (f"preset (presets/demo/{DEMO_PRESET[0]}.json)", "200", [f"{jpeg}?p:{DEMO_PRESET[0]}"]),
        ("private thumbnail, signed for w=200", "200", [thumb]),
        (
            "the same, with w=200 changed to 400",
            "403 SIGNATURE_INVALID",
            [thumb.replace("?w=200&", "?w=400&")],
        ),
    ]
    return [("Stored images:", stored), ("Transforms (docs/transforms.md):", transforms)]


def _run_uvicorn(app: Any, args: argparse.Namespace, *, workers: int, settings: Settings) -> None:
    import uvicorn

    from edge.app import UVICORN_OPTIONS
    from edge.logwriter import install_logging
    from edge.server import fit_open_files

    settings.check_server(port=args.port, workers=workers)
    fit_open_files(settings)  # a limit too low is a one-line error, before anything starts
    install_logging()
    # uvicorn drains connections on SIGTERM, then re-raises the signal once done;
    # with this handler in place that ends in a normal return: a requested stop exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        host=args.host,
        port=args.port,
        workers=workers,
        loop="uvloop",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        timeout_keep_alive=math.ceil(settings.keepalive_timeout),
        log_config=None,  # install_logging() has put edge's non-blocking handler in place
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

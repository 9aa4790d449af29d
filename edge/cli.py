"""The ``edge`` command: keygen, sign, verify, serve, demo and check-storage.

Exit codes: 0 success (for ``verify``: VALID or UNSIGNED), 1 a verdict against
the URL (for ``check-storage``: a problem with the storage), 2 usage or configuration
errors. Errors are one line on stderr, never
a traceback and never key material.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import math
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.errors import BadRequest, ConfigError, EdgeError
from edge.keys import KID, Key, generate
from edge.paths import decode_path, quote_path
from edge.settings import Settings
from edge.signing import Verifier, align_exp, check_url, sign_url
from edge.storage import Storage, open_storage
from edge.transform_params import split_params, transform_from_pairs

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_kid(sys.argv[1:] if argv is None else list(argv), parser))
    try:
        return int(args.run(args))
    except (ConfigError, UsageError) as error:
        print(f"edge: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description=_plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    keygen = commands.add_parser(
        "keygen",
        help="print a new keyring entry, ready for EDGE_SIGNING_KEYS",
        description=(
            "Print one new keyring entry on stdout, alone, so that\n"
            '  export EDGE_SIGNING_KEYS="$(edge keygen)"\n'
            "works as typed. hs256: the shared secret, for edges and signers alike.\n"
            "ed25519: the signing entry, for signers only; the verify-only ed25519-pub\n"
            "entry that the edges need is printed on stderr, with which line goes where."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument("--alg", choices=("hs256", "ed25519"), default="hs256")
    keygen.add_argument(
        "--kid", help="key id (default: k + today's date, e.g. k20261125, handy for rotation)"
    )
    keygen.set_defaults(run=run_keygen)

    sign = commands.add_parser("sign", help="print a signed URL for a decoded path")
    sign.add_argument(
        "path",
        metavar="PATH",
        help="decoded path, e.g. /i/bob/café.png (edge sign percent-encodes it; an"
        " already encoded one, /i/bob/caf%%C3%%A9.png, is refused)",
    )
    expiry = sign.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--expires-in", type=_whole, metavar="SECONDS")
    expiry.add_argument("--expires-at", type=_whole, metavar="UNIX")
    sign.add_argument(
        "--allow-expired",
        action="store_true",
        help="sign an expiry that is already past (test data, vectors) instead of refusing it",
    )
    sign.add_argument(
        "--literal-percent",
        action="store_true",
        help="PATH really holds '%%' and two hex digits in a name: encode that '%%' as %%25"
        " instead of refusing PATH as already percent-encoded",
    )
    sign.add_argument(
        "--kid",
        help="sign with this key and put kid= in the URL (a kid that starts with '-', such as"
        " -k, is taken as the value too: --kid -k)",
    )
    sign.add_argument(
        "--align",
        type=_whole,
        metavar="SECONDS",
        help="round exp up to a multiple of SECONDS, so that URLs signed within one window are"
        " identical and browsers cache them (the URL may live up to SECONDS longer)",
    )
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

    check = commands.add_parser(
        "check-storage",
        help="say which storage the settings name and whether it can serve images",
        description=(
            "For the storage EDGE_STORAGE names: the endpoint, addressing, region and\n"
            "credential source in use (for a bucket), whether it answers, and whether\n"
            "public/ and private/ hold anything. Exit 0, or 1 with one line per problem."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.set_defaults(run=run_check_storage)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8080)


def _join_kid(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--kid -k`` as ``--kid=-k``: argparse takes a value starting with '-' for an option
    and stops, though ``-k`` is a valid kid. A value that is one of edge's own options
    (``--kid --help``) or ``--`` stays an option."""
    options = _option_strings(parser)
    joined: list[str] = []
    position = 0
    while position < len(argv):
        arg = argv[position]
        value = argv[position + 1] if position + 1 < len(argv) else None
        if (
            arg == "--kid"
            and value is not None
            and value.startswith("-")
            and value != "--"
            and value not in options
            and KID.fullmatch(value)
        ):
            joined.append(f"--kid={value}")
            position += 2
            continue
        joined.append(arg)
        position += 1
    return joined


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def _plain(text: str) -> str:
    """Docstring text as help shows it: without reStructuredText's double backquotes."""
    return text.replace("``", "")


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
    """One entry on stdout, alone, so that ``EDGE_SIGNING_KEYS="$(edge keygen)"`` works;
    for ed25519 the verify-only entry the edges need goes to stderr, said as such."""
    kid = args.kid or datetime.now(UTC).strftime("k%Y%m%d")
    entries = generate(args.alg, kid)
    print(entries[0], flush=True)
    if args.alg == "ed25519":
        print(
            f"edge keygen: stdout holds {kid}:ed25519:…, the signing entry: EDGE_SIGNING_KEYS"
            " on signers only (secret).\nedge keygen: the edges need only this verify-only"
            f" entry (public) in their EDGE_SIGNING_KEYS:\n{entries[1]}",
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
    if not args.literal_percent:
        _refuse_encoded(args.path)
    now = int(time.time())
    exp = now + args.expires_in if args.expires_at is None else args.expires_at
    try:
        exp = align_exp(exp, args.align)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if exp <= now and not args.allow_expired:
        given = (
            f"--expires-at {exp} is {now - exp} s in the past"
            if args.expires_at is not None
            else f"--expires-in {args.expires_in} expires at once"
        )
        raise UsageError(
            f"{given}: every edge would answer 403 SIGNATURE_EXPIRED"
            " (add --allow-expired to make such a URL on purpose)"
        )
    if settings.max_ttl and exp - now > settings.max_ttl:
        aligned = f" once aligned to {args.align} s" if args.align else ""
        raise UsageError(
            f"exp is {exp - now} s ahead{aligned}; edges reject URLs beyond"
            f" EDGE_MAX_TTL={settings.max_ttl}"
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


#: A percent sign and two hex digits: what an already encoded path holds.
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _refuse_encoded(path: str) -> None:
    """Refuse a PATH that looks percent-encoded: signing would encode it again (``%C3``
    becoming ``%25C3``), and the URL would name another file."""
    escape = _ESCAPES.search(path)
    if escape is None:
        return
    try:
        decoded = f"give it decoded, {decode_path(path.encode('utf-8'))!r}"
    except BadRequest:
        decoded = "give it decoded (edge sign encodes it)"
    raise UsageError(
        f"PATH looks percent-encoded already ({escape.group()!r}): {decoded}, or add"
        f" --literal-percent if the name really holds {escape.group()!r}"
    )


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
    for hint in _verify_hints(args.url, verifier):
        print(f"hint: {hint}")
    return EXIT_OK if outcome.result in ("VALID", "UNSIGNED") else EXIT_REJECTED


#: Verdicts that mean the signature itself matched a key.
_GENUINE = ("VALID", "SIGNATURE_EXPIRED")


def _verify_hints(url: str, verifier: Verifier) -> list[str]:
    """Copying mistakes ``edge verify`` recognises: ``&amp;`` from a page's HTML source,
    and ``+`` written for a space in the path. Each hint says what the URL would be
    judged once corrected (the verdict above stays the URL's as given)."""
    hints = []
    before, mark, after = url.partition("?")
    if "&amp;" in after:
        after = after.replace("&amp;", "&")
        fixed = check_url(before + mark + after, verifier).result
        hints.append(
            "the URL holds '&amp;', HTML's escape for '&' (copied from a page's source?);"
            f" a browser sends '&', and with '&' this URL is {fixed}"
        )
    path = before.partition("#")[0]
    if "+" in path and check_url(before + mark + after, verifier).result == "SIGNATURE_INVALID":
        spaced = before.replace("+", "%20") + mark + after
        fixed = check_url(spaced, verifier).result
        if fixed in _GENUINE:
            hints.append(
                f"{'also, ' if hints else ''}a '+' in a path is a plus sign, not a space (only"
                " form-encoded queries use '+' for spaces): with %20 for each '+' the"
                f" signature matches, {fixed}"
            )
    return hints


def run_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    storage = open_storage(settings.storage, settings.s3)  # a missing folder: one line here
    checked = None  # the region the bucket answered its start-up check from
    if storage.kind == "s3":  # the bucket's check: one line here, once for all workers
        from edge.storage.s3 import S3Storage  # loaded only when used

        assert isinstance(storage, S3Storage)
        asyncio.run(_open_and_close(storage))
        checked = storage.region if settings.s3_check_bucket else None
    _check_server(args, workers=args.workers, settings=settings)
    from edge.storage.probe import checked_for_workers
    from edge.workermetrics import shared_folder

    # Several workers: their metrics are summed through a folder of this run's, and a metrics
    # port is listened on here, once (edge/workermetrics.py). Every worker is told the bucket
    # passed, so it is listed once (edge/storage/probe.py).
    with shared_folder(settings.metrics, args.workers), checked_for_workers(checked):
        _run_uvicorn("edge.app:create_app", args, workers=args.workers, settings=settings)
    return EXIT_OK


async def _open_and_close(storage: Storage) -> None:
    """Open the storage as a worker will (the bucket's start-up check included), then
    close it: what fails is one line here."""
    try:
        await storage.open()
    except EdgeError as error:  # credentials that cannot be fetched, say
        raise ConfigError(f"EDGE_STORAGE: {error.reason}") from None
    finally:
        await storage.aclose()


def run_check_storage(args: argparse.Namespace) -> int:
    from edge.storage.report import check_storage

    settings = Settings.from_env()
    report = asyncio.run(check_storage(settings.storage, settings.s3))
    print("\n".join(report.lines()), flush=True)
    for problem in report.problems:
        print(f"edge check-storage: {problem}", file=sys.stderr)
    return EXIT_REJECTED if report.problems else EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from edge.app import create_app
    from edge.keys import parse_keyring
    from edge.samples import write_demo_folder

    folder = Path(args.folder).resolve()
    keys = os.environ.get("EDGE_SIGNING_KEYS") or generate("hs256", "demo")[0]
    settings = Settings.from_env(
        {**os.environ, "EDGE_STORAGE": str(folder), "EDGE_SIGNING_KEYS": keys}
    )
    key = parse_keyring(keys).signing_key
    if key is None:
        raise ConfigError("EDGE_SIGNING_KEYS holds no key that can sign")
    # Before anything is written or printed: URLs printed for a server that then cannot
    # start would reach whatever holds the port.
    _check_server(args, workers=1, settings=settings)
    paths = write_demo_folder(folder)
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


def _check_server(args: argparse.Namespace, *, workers: int, settings: Settings) -> None:
    """What would stop the server once started, refused first in one line each: settings
    that cannot work with these options, too low an open-files limit, a port in use."""
    from edge.server import fit_open_files

    settings.check_server(port=args.port, workers=workers)
    fit_open_files(settings)
    _check_port(args.host, args.port, name="port", retry="--port {}")
    if isinstance(settings.metrics, int):
        _check_port(
            _EVERY_ADDRESS, settings.metrics, name="EDGE_METRICS: port", retry="EDGE_METRICS={}"
        )


_EVERY_ADDRESS = "0.0.0.0"  # noqa: S104  (where prometheus_client's metrics server listens)


def _check_port(host: str, port: int, *, name: str, retry: str) -> None:
    """Refuse a port the server could not listen on, before uvicorn tries and prints its
    multi-line error: ``edge: port 8080 is in use (try --port 8081)``."""
    try:
        _bind_and_release(host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            near = range(port + 1, min(port + 100, 65535) + 1)
            free = next((other for other in near if _free(host, other)), None)
            hint = f"try {retry.format(free)}" if free else "no port above it is free either"
            raise UsageError(f"{name} {port} is in use ({hint})") from None
        why = error.strerror or str(error)
        if error.errno == errno.EACCES and port < 1024:
            why += " (ports below 1024 need privileges)"
        raise UsageError(f"{name} {port}: cannot listen on {host}: {why}") from None


def _free(host: str, port: int) -> bool:
    try:
        _bind_and_release(host, port)
    except OSError:
        return False
    return True


def _bind_and_release(host: str, port: int) -> None:
    """Bind every address ``host`` names as uvicorn's listener will (``SO_REUSEADDR``, IPv6
    sockets IPv6-only, as asyncio's ``create_server`` does), then let go; raise OSError."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    held = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    finally:
        for sock in held:
            sock.close()


def _run_uvicorn(app: Any, args: argparse.Namespace, *, workers: int, settings: Settings) -> None:
    import uvicorn

    from edge.app import UVICORN_OPTIONS
    from edge.logwriter import install_logging

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

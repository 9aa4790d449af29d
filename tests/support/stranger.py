"""A stranger's attack on edge: private objects each holding a canary made for the run, the
requests a stranger sends (each marked with whether a genuine signature entitles it to the
private bytes), and the judge of every answer and of the access logs (tests/test_stranger.py;
the requests go out through tests/support/raw_http.py).

Objects, as :func:`populate` stores them (every private one holds the canary):

- ``private/alice/secret.png``, ``private/bob/secret.png``: small, kept by the hot cache
- ``private/alice/both.png`` beside a public ``both.png`` of other dimensions, so a variant
  made from the private one is told apart by its size
- ``private/alice/big.png``: over a chunk (streamed), the canary every KiB, so any range of
  it holds one
- ``private/alice/hidden.jpg``: a private JPEG, for ``hidden.webp`` and ``?w=``
- ``public/alice/photo.jpg``, ``public/alice/pub.png`` and ``presets/alice/thumb.json``
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from edge.samples import png
from tests.support.raw_http import Answer, never_shown
from tests.support.world import World

PHOTO = (Path(__file__).parent.parent.parent / "edge" / "samples" / "mountains.jpg").read_bytes()
#: The private objects, by request path; each holds the canary.
PRIVATE = (
    "/i/alice/secret.png",
    "/i/bob/secret.png",
    "/i/alice/both.png",
    "/i/alice/big.png",
    "/i/alice/hidden.jpg",
)
PUBLIC_BOTH = png(32, 32)
#: The width every variant here asks for: the public both.png gives 20x20, the private 20x15.
WIDTH = 20
#: Every code edge or the shipped nginx config answers with (README's table, and nginx's).
CODES = {
    "BAD_REQUEST": 400,
    "SIGNATURE_INVALID": 403,
    "SIGNATURE_EXPIRED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "RANGE_NOT_SATISFIABLE": 416,
    "UNPROCESSABLE_IMAGE": 422,
    "HEADERS_TOO_LARGE": 431,
}

#: What every answer's X-Request-ID is: edge's own (a client's is never taken from a
#: connection outside EDGE_TRUSTED_PROXIES) or nginx's ($request_id).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: ``sign(path, transform=None, exp=None, kid=False)``: the target of a URL signed with the
#: suite's key (an ``exp`` 10 minutes ahead unless given).
Signer = Callable[..., str]


def populate(world: World, canary: bytes) -> None:
    world.put("private", "alice", "secret.png", png(40, 30, hue=1) + canary)
    world.put("private", "bob", "secret.png", png(24, 24, hue=2) + canary)
    world.put("private", "alice", "both.png", png(40, 30, hue=2) + canary)
    world.put("public", "alice", "both.png", PUBLIC_BOTH)
    world.put("private", "alice", "big.png", png(8, 8) + (canary + b"." * 1000) * 200)
    world.put("private", "alice", "hidden.jpg", PHOTO + canary)
    world.put("public", "alice", "photo.jpg", PHOTO)
    world.put("public", "alice", "pub.png", png(16, 16))
    if world.root is not None:  # presets live beside the visibility folders
        (world.root / "presets" / "alice").mkdir(parents=True)
        (world.root / "presets" / "alice" / "thumb.json").write_text('{"w": 16}')


@dataclass(frozen=True)
class Ask:
    """One request as a stranger (or, when ``entitled``, the owner of a URL) sends it."""

    label: str
    target: str  # exactly as sent; latin-1 for any byte
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    #: A genuine, unexpired signature for this very object and transform: it may get the
    #: private bytes.
    entitled: bool = False
    #: Entitled to the stored object whole: the answer must be 200 with the canary.
    whole: bool = False

    def wire(self, *, host: str = "edge.test") -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's width and height (its IHDR), or None if it is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def judge(ask: Ask, answer: Answer, canary: bytes) -> list[str]:
    """What is wrong with an answer to ``ask``; empty when nothing is."""
    found = never_shown(answer.status, answer.raw, canary=canary, entitled=ask.entitled)
    if not ask.entitled and png_size(answer.body) == (WIDTH, 15):
        found.append("a variant of a private image to a request not entitled to it")
    if ask.whole and ask.method == "GET" and (answer.status != 200 or canary not in answer.body):
        found.append(f"the owner's signed URL got {answer.status} without the private bytes")
    if answer.status and not REQUEST_ID.fullmatch(answer.header("x-request-id") or ""):
        found.append(f"X-Request-ID {answer.header('x-request-id')!r}")
    length = answer.header("content-length")
    if length is not None and ask.method != "HEAD" and len(answer.body) != int(length):
        found.append(f"{len(answer.body)} bytes of a body of {length}")
    if answer.status >= 400:
        found += error_shape(answer, head=ask.method == "HEAD")
    return found


def error_shape(answer: Answer, *, head: bool) -> list[str]:
    """What keeps an error answer from the API's shape (a HEAD's has no body to check)."""
    found = []
    if not (answer.header("content-type") or "").startswith("application/json"):
        found.append(f"an error typed {answer.header('content-type')!r}")
    # nginx's 416 in auth-request mode keeps the image's Cache-Control beside its no-store,
    # which prevails (deploy/nginx/auth-request.conf says why).
    controls = [value for name, value in answer.headers if name == "cache-control"]
    if "no-store" not in controls:
        found.append(f"an error with cache-control {controls!r}")
    if head:
        return found
    try:
        error = json.loads(answer.body)["error"]
        shaped = set(error) == {"code", "message", "status"}
    except (ValueError, KeyError, TypeError):
        return [*found, f"not a JSON error: {answer.body[:80]!r}"]
    # /auth answers every refusal 403 (nginx's auth_request passes no other), its code in
    # X-Edge-Error: edge.authorize.
    status = 403 if answer.header("x-edge-error") else CODES.get(error["code"])
    if not shaped or error["status"] != answer.status or status != answer.status:
        found.append(f"error {error} for status {answer.status}")
    return found


def signatures(every: list[Ask]) -> set[str]:
    """Every signature value the asks carry (at least 20 characters: a real one's share)."""
    found = set()
    for ask in every:
        for part in ask.target.partition("?")[2].split("&"):
            name, _, value = part.partition("=")
            if unquote(name) == "sig" and len(value) >= 20:
                found.add(value)
    return found


def log_problems(logged: str, every: list[Ask]) -> list[str]:
    """What is wrong with an access log: a line that is not JSON, or a signature in it."""
    found = []
    for line in logged.splitlines():
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                found.append(f"not JSON: {line[:200]}")
    found += [f"a signature in the log: {sig}" for sig in signatures(every) if sig in logged]
    return found


def percent_all(path: str) -> str:
    """Every character of the file part percent-encoded, upper and lower case mixed."""
    user, _, file = path[3:].partition("/")
    escaped = "".join(f"%{b:02x}" if i % 2 else f"%{b:02X}" for i, b in enumerate(file.encode()))
    return f"/i/{user}/{escaped}"


def _reversed(target: str) -> str:
    path, _, query = target.partition("?")
    return path + "?" + "&".join(reversed(query.split("&")))


def query_of(target: str) -> str:
    return target.partition("?")[2]


def asks(sign: Signer, now: int) -> Iterator[Ask]:
    """The stranger's requests for every private object, and the owner's for each."""
    for path in PRIVATE:
        yield from _for_path(path, sign, now)
    yield from _elsewhere(sign)


def _for_path(path: str, sign: Signer, now: int) -> Iterator[Ask]:
    user, _, file = path[3:].partition("/")
    stem = file.rpartition(".")[0]
    other = "/i/bob/secret.png" if user == "alice" else "/i/alice/secret.png"
    good = sign(path)
    variant = sign(path, transform=f"w={WIDTH}")
    yield Ask("owner", good, entitled=True, whole=True)
    yield Ask("owner HEAD", good, "HEAD", entitled=True)
    yield Ask("owner with kid", sign(path, kid=True), entitled=True, whole=True)
    yield Ask("owner range", good, headers=(("Range", "bytes=0-99"),), entitled=True)
    yield Ask("owner variant", variant, entitled=True)
    yield Ask("owner, path escaped", percent_all(path) + "?" + query_of(good), entitled=True)
    yield Ask("owner, %73ig", good.replace("?sig=", "?%73ig="), entitled=True, whole=True)
    # The same signature written otherwise: other memo keys, one verdict.
    escaped_exp = good.replace("&exp=", "&%65xp=")
    yield Ask("owner, %65xp", escaped_exp, entitled=True, whole=True)
    yield Ask("owner, params reversed", _reversed(good), entitled=True, whole=True)
    yield Ask("owner, a junk param", good + "&v=2", entitled=True, whole=True)
    yield Ask("%65xp on another user", f"{other}?{query_of(escaped_exp)}")
    yield Ask("reversed on another user", f"{other}?{query_of(_reversed(good))}")
    for method in ("GET", "HEAD"):
        yield Ask("unsigned", path, method)
        yield Ask("unsigned variant", f"{path}?w={WIDTH}", method)
        yield Ask("unsigned preset", f"{path}?p:thumb", method)
        yield Ask("unsigned conversion", f"/i/{user}/{stem}.webp", method)
        yield Ask("unsigned conversion variant", f"/i/{user}/{stem}.png?w={WIDTH}", method)
        yield Ask("escaped", percent_all(path), method)
    for name, value in (
        ("Range", "bytes=0-99"),
        ("Range", "bytes=-100"),
        ("Range", "bytes=1000-2000"),
        ("If-None-Match", "*"),
        ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT"),
    ):
        yield Ask(f"unsigned {name}", path, headers=((name, value),))
    signed_query = query_of(good)
    sig = signed_query.split("&")[0].removeprefix("sig=")
    exp = signed_query.split("&")[1].removeprefix("exp=")
    forged = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for label, query in (
        ("expired", query_of(sign(path, exp=now - 5))),
        ("beyond max TTL", query_of(sign(path, exp=now + 10**8))),
        ("forged", f"sig={forged}&exp={exp}"),
        ("forged exp", f"sig={sig}&exp={int(exp) + 1}"),
        ("truncated", f"sig={sig[:20]}&exp={exp}"),
        ("padded", f"sig={sig}=&exp={exp}"),
        ("other user's", query_of(sign(other))),
        ("a public image's", query_of(sign("/i/alice/pub.png"))),
        ("the variant's without its w", query_of(variant).replace(f"w={WIDTH}&", "")),
        ("the variant's with another w", query_of(variant).replace(f"w={WIDTH}", "w=21")),
        ("the object's with a w", f"w={WIDTH}&{signed_query}"),
        ("the object's with a preset", f"p:thumb&{signed_query}"),
        ("unknown kid", f"{signed_query}&kid=nope"),
        ("repeated sig", f"{signed_query}&sig={sig}"),
        ("SIG", f"SIG={sig}&EXP={exp}"),
        ("%2573ig", f"%2573ig={'A' * 43}&exp={exp}"),  # decoded once: no sig (junk value,
        # as edge and nginx log a parameter that is no sig as sent)
        ("empty", "sig=&exp="),
    ):
        yield Ask(f"{label} signature", f"{path}?{query}")
        yield Ask(f"{label} signature, HEAD", f"{path}?{query}", "HEAD")
    # The object's signature moved onto other names for it, or for a conversion of it.
    for moved in (
        f"/i/{user}/{stem}.webp",
        f"/i/{user}/{stem}.png",
        f"/i/{user}/{file}.png",
        f"/i/{user.upper()}/{file}",
        f"/i/{user}/{file.upper()}",
        f"/i/{user}/{file}/",
        f"/i/{user}/x/../{file}",
        f"/i/{user}/./{file}",
        f"//i/{user}/{file}",
        f"/i//{user}/{file}",
        f"/i/{user}//{file}",
        f"/i/{user}/{file}%00",
        f"/i/{user}/{file}%20",
        f"/i/{user}/{file};x",
        f"/private/{user}/{file}",
        f"/i/../private/{user}/{file}",
        f"/i/%2e%2e/private/{user}/{file}",
        f"/i/{user}/%2e%2e/%2e%2e/private/{user}/{file}",
        f"/i/{user}%2f{file}",
        f"/I/{user}/{file}",
        f"/i/{user}\\{file}",
        f"/i/{user}/%5c{file}",
    ):
        yield Ask(f"moved to {moved}", moved)
        same = unquote(moved) == path  # another spelling of the very path signed
        yield Ask(f"signed, moved to {moved}", f"{moved}?{signed_query}", entitled=same)
    yield Ask(
        "variant signature moved to the conversion", f"/i/{user}/{stem}.webp?{query_of(variant)}"
    )


def _elsewhere(sign: Signer) -> Iterator[Ask]:
    """Paths outside ``/i/``, other methods, and the headers a stranger may send."""
    secret = "/i/alice/secret.png"
    good = sign(secret)
    for target in ("/auth", "/readyz", "/metrics", "/private/alice/secret.png", "/i/", "/i"):
        yield Ask(f"outside: {target}", target)
    for uri in (secret, f"{secret}?w={WIDTH}", good, good + f"&w={WIDTH}"):
        yield Ask("auth", "/auth", headers=(("X-Original-URI", uri),), entitled=uri == good)
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
        yield Ask(f"method {method}", secret, method)
        yield Ask(f"method {method} signed", good, method)
    for label, headers in (
        ("huge header", (("X-Junk", "x" * 20_000),)),
        ("many headers", tuple((f"X-H{n}", "v" * 100) for n in range(120))),
        ("odd bytes", (("X-Odd", "\x80\xff\xfe"), ("User-Agent", "\xe9" * 300))),
        ("two hosts", (("Host", "other.test"),)),
        ("spoofed proxy", (("X-Forwarded-For", "127.0.0.1"), ("X-Original-URI", good))),
        ("spoofed id", (("X-Request-ID", "a" * 500),)),
        ("authorization", (("Authorization", "Bearer x"), ("Cookie", "session=1"))),
        ("a signed referer", (("Referer", f"https://edge.test{good}"),)),
        ("range list", (("Range", "bytes=0-1," * 500 + "0-1"),)),
        ("huge range", (("Range", "bytes=99999999999999999999-"),)),
    ):
        yield Ask(label, secret, headers=headers)
        yield Ask(f"{label}, signed", good, headers=headers, entitled=True)

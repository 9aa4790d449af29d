"""The bad-input corpus: hostile request targets, parameters and headers, each with the
answer the spec and RFC 9110 call right, and a raw-socket client that sends them as
written (no client library normalises dot segments or escapes on the way).

Objects it expects, as :func:`populate` stores them: ``public/alice/photo.png`` (public
bytes) and ``private/alice/secret.png`` (bytes holding :data:`edge.samples.CANARY`).
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate

from edge.keys import Key
from edge.samples import CANARY, png
from tests.support.world import World

PUBLIC = "/i/alice/photo.png"
PRIVATE = "/i/alice/secret.png"
#: Refused by edge's connection (edge.server) before a request exists: still edge's JSON.
PARSER = "BAD_REQUEST"
TOO_LARGE = (431, "HEADERS_TOO_LARGE")  # a request head over EDGE_MAX_HEADER_BYTES (16 KiB)
PHOTO = png(32, 32)
SECRET = png(40, 30, hue=1) + CANARY


def populate(world: World) -> None:
    """Store the objects the corpus expects; in a folder, also links out of public/."""
    world.put("public", "alice", "photo.png", PHOTO)
    world.put("private", "alice", "secret.png", SECRET)
    if world.root is not None:  # links that point out of public/: never followed
        links = world.root / "public" / "alice"
        (links / "to-private.png").symlink_to(world.root / "private" / "alice" / "secret.png")
        (links / "to-etc").symlink_to("/etc")
        (links / "to-root").symlink_to(world.root)


@dataclass(frozen=True)
class Case:
    kind: str
    target: str  # the request target exactly as sent; latin-1 for any byte
    status: int
    code: str | None = None  # the JSON error code, or None for a success
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    private_ok: bool = False  # a valid signed request may carry the private bytes

    def label(self) -> str:
        shown = (
            self.target if len(self.target) < 70 else self.target[:60] + f"...({len(self.target)})"
        )
        extra = " ".join(f"{k}: {v[:40]}" for k, v in self.headers)
        return f"{self.kind}: {self.method} {shown!r} {extra}".strip()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes = field(repr=False, default=b"")


def send(host: str, port: int, case: Case, *, timeout: float = 10) -> Answer:
    """One request on its own connection; the whole answer, read until the server closes."""
    lines = [f"{case.method} {case.target} HTTP/1.1", "Host: edge.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in case.headers]
    text = "\r\n".join(lines) + "\r\n\r\n"
    # Characters up to U+00FF go as that byte; beyond, as raw UTF-8 (what curl sends).
    request = b"".join(c.encode("latin-1") if ord(c) < 256 else c.encode() for c in text)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, body, raw)


def escape(text: str) -> str:
    """Non-ASCII characters percent-encoded as UTF-8: raw ones never reach the app."""
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sig_for(key: Key, path: str, exp: str) -> str:
    """A genuine signature over any exp string, well-formed or not."""
    return b64(key.sign(f"v1\n{path}\n{exp}".encode()))


def cases(key: Key, *, now: int | None = None) -> list[Case]:
    now = int(time.time()) if now is None else now
    return [
        *paths(),
        *queries(key, now),
        *expiries(key, now),
        *signatures(key, now),
        *key_ids(key, now),
        *header_cases(key, now),
        *methods(key, now),
    ]


def bad(kind: str, target: str, status: int = 400, code: str = "BAD_REQUEST") -> Case:
    return Case(kind, target, status, code)


def paths() -> Iterator[Case]:
    dots = ["..", ".", "%2e%2e", "%2E%2E", "%2e.", ".%2e", "%2E.", ".%2E", "%2e", "%2E"]
    for dot in dots:
        yield bad("path: dot segment", f"/i/alice/{dot}/alice/photo.png")
        yield bad("path: dot segment", f"/i/alice/{dot}")
        yield bad("path: dot segment", f"/i/{dot}/alice/photo.png")
        yield bad("path: dot segment", f"/i/alice/{dot}/{dot}/private/alice/secret.png")
        yield bad("path: dot segment", f"/i/alice/x/{dot}/secret.png")
    for escaped in ["..%2f..%2fprivate%2falice%2fsecret.png", "..%2F..%2Fprivate%2Falice%2Fsecret.png",
                    "x%2F..%2F..%2F..%2Fprivate%2Falice%2Fsecret.png", "%2e%2e%2f%2e%2e%2fprivate/alice/secret.png"]:  # fmt: skip
        yield bad("path: encoded slash", f"/i/alice/{escaped}")
    yield Case("path: encoded slash", "/i/alice%2Fphoto.png", 200)  # %2F is /: the same object
    yield Case("path: encoded slash", "/i/alice/photo%2Epng", 200)
    for target in ["/i/alice//photo.png", "/i//alice/photo.png", "/i/alice/photo.png/",
                   "/i/alice/", "/i/alice", "/i/", "/i/alice/%2F", "/i/alice/photo.png%2F"]:  # fmt: skip
        yield bad("path: empty segment", target)
    for target in ["/i/alice/a\\b.png", "/i/alice/..\\..\\private\\alice\\secret.png",
                   "/i/alice/a%5Cb.png", "/i/alice/%5C..%5Csecret.png", "/i/alice/C:%5CWindows%5Cwin.ini"]:  # fmt: skip
        yield bad("path: backslash", target)
    for byte in [*range(0x20), 0x7F]:
        yield bad("path: control byte", f"/i/alice/a%{byte:02X}b.png")
    for byte in [0x00, 0x01, 0x0B, 0x7F]:  # raw, unescaped: the HTTP parser refuses these
        yield Case("path: raw control byte", f"/i/alice/a{chr(byte)}b.png", 400, PARSER)
    for escape in ["%ff", "%FE", "%c0%af", "%C0%AE%C0%AE", "%e0%80%ae", "%ed%a0%80", "%f8%88%80%80%80",
                   "%80", "%c3", "%e2%82", "%f4%90%80%80", "%c0%80"]:  # fmt: skip
        yield bad("path: invalid UTF-8", f"/i/alice/{escape}.png")
        yield bad("path: invalid UTF-8", f"/i/alice/{escape}/secret.png")
    # Look-alikes are ordinary characters: a file by that name, which does not exist.
    for look in ["%EF%BC%8F", "%EF%BC%8E%EF%BC%8E", "%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.png",
                 "%E2%80%A4%E2%80%A4", "%EF%BC%BC", "%E2%88%95private%E2%88%95alice"]:  # fmt: skip
        yield Case("path: fullwidth look-alike", f"/i/alice/{look}", 404, "NOT_FOUND")
    for target in ["/i/alice/C:/Windows/win.ini", "/i/alice/C:", "/i/alice/c:/secret.png",
                   "/i/alice/%43%3A/x.png", "/i/alice/\\\\server\\share"]:  # fmt: skip
        expected = (400, "BAD_REQUEST") if "\\" in target else (404, "NOT_FOUND")
        yield Case("path: Windows drive", target, *expected)
    for dotfile in [".htaccess", ".env", ".git/config", ".secret.png", "...", "..."]:
        yield Case("path: dotfile", f"/i/alice/{dotfile}", 404, "NOT_FOUND")
    yield Case("path: dotfile", "/i/alice/.%2E.", 404, "NOT_FOUND")  # "..." is a name
    for link in ["to-private.png", "to-etc/passwd", "to-root/private/alice/secret.png"]:
        yield Case("path: symlink out of the root", f"/i/alice/{link}", 404, "NOT_FOUND")
    for length in [1025 - len("/i/alice/"), 2000, 8000]:
        yield bad("path: too long", "/i/alice/" + "a" * length)
    yield Case("path: too long", "/i/alice/" + "a" * 60_000, *TOO_LARGE)
    yield bad("path: segment over 255 bytes", "/i/alice/" + "%C3%A9" * 400)  # 800 bytes
    yield Case("path: too long", "/i/alice/" + "a" * 70_000, *TOO_LARGE)
    yield bad("path: segment over 255 bytes", "/i/alice/" + "b" * 256 + ".png")
    for user in ["", ".alice", "..", "al%20ice", "alice~", "%C3%A5lice", "al%3Aice",
                 "a" * 65, "alice%00", "ali*ce", "ali+ce", "%2e", "al%2eice%2f"]:  # fmt: skip
        yield bad("path: user rule", f"/i/{user}/photo.png")
    yield Case("path: user rule", "/i/" + "a" * 64 + "/photo.png", 404, "NOT_FOUND")
    yield Case("path: user rule", "/i/al%2Fice/photo.png", 404, "NOT_FOUND")  # user "al"
    yield Case("path: outside /i/", "/x/alice/photo.png", 404, "NOT_FOUND")
    yield Case("path: outside /i/", "/i", 404, "NOT_FOUND")
    for raw in ["é", "\u00ff", "\u0660", "\uff0f", "\u2024"]:  # unescaped: the parser refuses
        yield Case("path: raw non-ASCII", f"/i/alice/{raw}.png", 400, PARSER)
        yield Case("query: raw non-ASCII", f"{PRIVATE}?x={raw}", 400, PARSER)
    yield Case("path: outside /i/", "/I/alice/photo.png", 404, "NOT_FOUND")


def queries(key: Key, now: int) -> Iterator[Case]:
    exp = str(now + 600)
    sig = sig_for(key, PRIVATE, exp)
    good = f"sig={sig}&exp={exp}"
    invalid = (403, "SIGNATURE_INVALID")
    yield Case("query: canonical (control)", f"{PRIVATE}?{good}", 200, private_ok=True)
    yield Case("query: reordered", f"{PRIVATE}?exp={exp}&sig={sig}", 200, private_ok=True)
    yield Case(
        "query: escaped names", f"{PRIVATE}?%73ig={sig}&%65%78%70={exp}", 200, private_ok=True
    )
    yield Case(
        "query: escaped values",
        f"{PRIVATE}?sig={sig}&exp=%3{exp[0]}{exp[1:]}",
        200,
        private_ok=True,
    )
    yield Case(
        "query: unknown parameters ignored", f"{PRIVATE}?{good}&v=100&x=", 200, private_ok=True
    )
    yield Case(
        "query: thousands of parameters", f"{PRIVATE}?{good}" + "&p=1" * 3000, 200, private_ok=True
    )
    yield Case("query: long value", f"{PRIVATE}?{good}&x=" + "y" * 12_000, 200, private_ok=True)
    yield Case("query: huge value", f"{PRIVATE}?{good}&x=" + "y" * 50_000, *TOO_LARGE)
    for query in [f"{good}&sig={sig}", f"{good}&exp={exp}", f"{good}&%73ig={sig}",
                  f"{good}&%65xp={exp}", f"{good}&kid={key.kid}&kid={key.kid}",
                  f"sig={sig};exp={exp}", f"sig={sig}%26exp={exp}", f"sig[]={sig}&exp={exp}",
                  f"sig={sig}&exp[]={exp}", f"sig={sig}&exp[0]={exp}", "sig=&exp=", f"sig=&exp={exp}",
                  f"sig={sig}&exp=", "sig", "exp", f"sig={sig}", f"exp={exp}", "kid=", "sig&exp&kid",
                  f"SIG={sig}&exp={exp}", f"sig={sig}&EXP={exp}", f"sig={sig}&exp={exp}&kid",
                  f"sig={sig}&&exp={exp}=", f"sig=={sig}&exp={exp}", f"sig={sig}=&exp={exp}"]:  # fmt: skip
        yield Case("query: malformed", f"{PRIVATE}?{query}", *invalid)
    for query in ["", "&", "&&", "a=1", "foo&bar", "?", "sigma=1", "expiry=2", "%73", "x=sig"]:
        yield Case("query: unsigned", f"{PUBLIC}?{query}", 200)
        yield Case("query: unsigned", f"{PRIVATE}?{query}", 404, "NOT_FOUND")
    yield Case("query: signature on a public path", f"{PUBLIC}?sig={sig}&exp={exp}", *invalid)
    yield Case("query: long unsigned", f"{PRIVATE}?x=" + "y" * 12_000, 404, "NOT_FOUND")
    yield Case("query: huge unsigned", f"{PRIVATE}?x=" + "y" * 60_000, *TOO_LARGE)
    yield Case("query: beyond the parser", f"{PRIVATE}?x=" + "y" * 70_000, *TOO_LARGE)


def expiries(key: Key, now: int) -> Iterator[Case]:
    future = str(now + 600)
    for exp in ["-1", f"-{future}", f"+{future}", f"0{future}", f"00{future}", f" {future}",
                f"{future} ", f"%20{future}", f"{future}%20", f"{future[:4]}_{future[4:]}",
                "١٢٣٤٥٦٧٨٩٠", "１７９９９９９９９９", f"{future}.0", f"{future}.5", "1e10",
                f"0x{int(future):x}", hex(int(future)), "1" * 13, "9" * 13, "1" * 5000, "",
                "NaN", "inf", "true", "null", f"{future}%00", f"{future}\t"]:  # fmt: skip
        raw = escape(exp.replace(" ", "%20").replace("\t", "%09"))
        sig = sig_for(key, PRIVATE, exp.replace("%20", " ").replace("%00", "\x00"))
        yield Case("exp: malformed", f"{PRIVATE}?sig={sig}&exp={raw}", 403, "SIGNATURE_INVALID")
    yield Case(
        "exp: zero", f"{PRIVATE}?sig={sig_for(key, PRIVATE, '0')}&exp=0", 403, "SIGNATURE_EXPIRED"
    )
    past = str(now - 3600)
    yield Case(
        "exp: past",
        f"{PRIVATE}?sig={sig_for(key, PRIVATE, past)}&exp={past}",
        403,
        "SIGNATURE_EXPIRED",
    )
    far = str(now + 10 * 365 * 86400)
    yield Case(
        "exp: beyond max TTL",
        f"{PRIVATE}?sig={sig_for(key, PRIVATE, far)}&exp={far}",
        403,
        "SIGNATURE_INVALID",
    )
    huge = "9" * 12
    yield Case(
        "exp: 12 nines",
        f"{PRIVATE}?sig={sig_for(key, PRIVATE, huge)}&exp={huge}",
        403,
        "SIGNATURE_INVALID",
    )


def signatures(key: Key, now: int) -> Iterator[Case]:
    exp = str(now + 600)
    sig = sig_for(key, PRIVATE, exp)
    raw = key.sign(f"v1\n{PRIVATE}\n{exp}".encode())
    standard = base64.b64encode(raw).decode()
    last = sig[-1]
    sibling = (
        "AEIMQUYcgkosw048"[("AEIMQUYcgkosw048".find(last) + 1) % 16]
        if last in "AEIMQUYcgkosw048"
        else "A"
    )
    variants = {
        "short": sig[:-1], "long": sig + "A", "empty": "", "padded": sig + "=",
        "padded escaped": sig + "%3D", "standard alphabet": standard.rstrip("="),
        "standard, padded": standard.replace("+", "%2B").replace("/", "%2F"),
        "non-canonical last character": sig[:-1] + chr(ord(last) + 1 if last not in "z9_-" else ord("B")),
        "other canonical last character": sig[:-1] + sibling,
        "hex": raw.hex(), "upper-cased": sig.upper(), "86 characters": sig + sig,
        "one byte flipped": ("B" if sig[0] == "A" else "A") + sig[1:], "spaces": "%20" * 43,
        "wrong path": sig_for(key, PUBLIC, exp), "non-ASCII": escape("é" * 43),
    }  # fmt: skip
    for name, value in variants.items():
        if value == sig:
            continue
        yield Case(f"sig: {name}", f"{PRIVATE}?sig={value}&exp={exp}", 403, "SIGNATURE_INVALID")


def key_ids(key: Key, now: int) -> Iterator[Case]:
    exp = str(now + 600)
    sig = sig_for(key, PRIVATE, exp)
    for kid in ["unknown", "", "x" * 33, "x" * 5000, key.kid.upper(), key.kid + "%20", "%00",
                "k/../k", escape("é"), "*", key.kid + "%00"]:  # fmt: skip
        if kid == key.kid:
            continue
        yield Case("kid: bad", f"{PRIVATE}?sig={sig}&exp={exp}&kid={kid}", 403, "SIGNATURE_INVALID")
    yield Case("kid: right", f"{PRIVATE}?sig={sig}&exp={exp}&kid={key.kid}", 200, private_ok=True)


def header_cases(key: Key, now: int) -> Iterator[Case]:
    exp = str(now + 600)
    signed = f"{PRIVATE}?sig={sig_for(key, PRIVATE, exp)}&exp={exp}"
    ignored = ["bytes=abc", "bytes=5-1", "bytes=0-1,2-3", "bytes=" + ",".join(["0-1"] * 2000),
               "bytes=-", "bytes=--1", "bytes=1-2-3", "items=0-1", "bytes=0x10-",
               "bytes=0-1;", "bytes=١-٢", "", "bytes"]  # fmt: skip
    for target, private_ok, status, code in [
        (PUBLIC, False, 200, None), (signed, True, 200, None), (PRIVATE, False, 404, "NOT_FOUND"),
    ]:  # fmt: skip
        for value in ignored:
            yield Case(
                "header: Range ignored",
                target,
                status,
                code,
                headers=(("Range", value),),
                private_ok=private_ok,
            )
        unsat = (416, "RANGE_NOT_SATISFIABLE") if status == 200 else (status, code)
        yield Case(
            "header: Range unsatisfiable",
            target,
            *unsat,
            headers=(("Range", "bytes=99999999-"),),
            private_ok=private_ok,
        )
        part = (206, None) if status == 200 else (status, code)
        for value in [
            "bytes=0-9",
            "bytes= 0-9",
            "bytes=0-9 ",
            "bytes=0-9,",
            "bytes=,0-9",
            "BYTES=0-9",
        ]:
            yield Case(
                "header: Range valid",
                target,
                *part,
                headers=(("Range", value),),
                private_ok=private_ok,
            )
        for value in ['"', '""', "W/", "*,*", "garbage", '"a", garbage', "x" * 4000, ",,,", 'W/"']:
            yield Case(
                "header: If-None-Match garbage",
                target,
                status,
                code,
                headers=(("If-None-Match", value),),
                private_ok=private_ok,
            )
        for value in ["yesterday", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                      "Mon, 32 Nov 2099 25:61:61 GMT",
                      "0", "-1", "Tue, 15 Nov 1994 08:12:31 XYZ", "x" * 4000, "Thu, 01 Jan 1970 00:00:00 GMT"]:  # fmt: skip
            yield Case(
                "header: If-Modified-Since odd",
                target,
                status,
                code,
                headers=(("If-Modified-Since", value),),
                private_ok=private_ok,
            )
        # A date after the object's (here after the clock too) is "not modified" (RFC 9110).
        later = (304, None) if status == 200 else (status, code)
        future = formatdate(now + 86400 * 365, usegmt=True)
        yield Case(
            "header: If-Modified-Since odd",
            target,
            *later,
            headers=(("If-Modified-Since", future),),
            private_ok=private_ok,
        )
        for value in ["garbage", '"x"', "*", formatdate(0, usegmt=True)]:
            yield Case(
                "header: If-Range odd",
                target,
                status,
                code,
                headers=(("If-Range", value), ("Range", "bytes=0-9")),
                private_ok=private_ok,
            )


def methods(key: Key, now: int) -> Iterator[Case]:
    exp = str(now + 600)
    signed = f"{PRIVATE}?sig={sig_for(key, PRIVATE, exp)}&exp={exp}"
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL",
                   "COPY", "MOVE", "LOCK", "PURGE", "SEARCH", "REPORT"]:  # fmt: skip
        for target in (PUBLIC, signed, PRIVATE, "/i/alice/../x"):
            yield Case("method: not GET or HEAD", target, 405, "METHOD_NOT_ALLOWED", method=method)
    for method in ["get", "Get", "FOO", "G ET"]:
        yield Case("method: not a method", PUBLIC, 400, PARSER, method=method)

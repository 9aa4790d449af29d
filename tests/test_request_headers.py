"""Request IDs, Server-Timing and Timing-Allow-Origin, and the access log's request id,
referer and user agent: through a real uvicorn over HTTP."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from edge.accesslog import MAX_LOGGED_HEADER, TRUNCATED, AccessLog
from edge.app import Edge
from edge.errors import StorageError
from edge.observe import Observer
from edge.requestid import MAX_ID_CHARS, RequestIds, well_formed
from edge.samples import png
from edge.storage import Conditions, FileStorage, Reply
from tests.support.client import TLS, get
from tests.support.records import public_hit, queued
from tests.support.servers import run_uvicorn
from tests.support.world import CountingStorage, World, folder_world

PNG = png(64, 48)
GENERATED = re.compile(r"[0-9a-f]{12}-[0-9a-f]{3,}")
SCOPE = {"type": "http", "client": ("192.0.2.1", 1), "headers": []}
#: The rest of a line of tests.support.records.public_hit.
FACTS = {
    "scheme": "http",
    "method": "GET",
    "path": "/i/alice/1.png",
    "status": 200,
    "bytes": 5,
    "outcome": "public",
    "cache": "hit",
}


class Served:
    """An edge on a real uvicorn, its access log in a file."""

    def __init__(self, world: World, log: Path, **overrides: str) -> None:
        assert world.root is not None
        self.storage = CountingStorage(FileStorage(world.root))
        settings = world.settings(**{"EDGE_ACCESS_LOG": "json", **overrides})
        self.app = Edge(settings, storage=self.storage)
        assert self.app.observer.log is not None
        self.log_path = log
        self.app.observer.log = AccessLog(
            os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND),
            proxies=self.app.observer.log.proxies,
        )
        self.base = world.stack.enter_context(run_uvicorn(self.app))

    def lines(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while True:
            text = self.log_path.read_text("utf-8") if self.log_path.exists() else ""
            lines = [json.loads(line) for line in text.splitlines()]
            if len(lines) >= count:
                return lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)


@pytest.fixture
def folder(tmp_path: Path) -> Any:
    (tmp_path / "world").mkdir()
    world = folder_world(tmp_path / "world")
    world.put("public", "alice", "photo.png", PNG)
    world.put("private", "alice", "secret.png", PNG)
    with world.stack:
        yield world


def test_ids_are_well_formed_and_cheap_to_make() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(3)]
    assert len(set(made)) == 3 and all(GENERATED.fullmatch(m.decode()) for m in made)
    assert RequestIds().prefix != ids.prefix, "each process draws its own prefix"
    assert well_formed(b"a" * MAX_ID_CHARS) and not well_formed(b"a" * (MAX_ID_CHARS + 1))
    for bad in (b"", b"a b", b'a"b', b"a\\b", b"caf\xc3\xa9", b"a\nb", b"a,b"):
        assert not well_formed(bad)
    assert well_formed(b"0f8fad5b-d9cb-469f-a165-70867728950e") and well_formed(b"1-67a2:b.c_D")


def test_made_ids_count_on_across_the_table_of_last_digits() -> None:
    ids = RequestIds()
    assert ids.new() == ids.prefix + b"001"
    ids.count = 0xFFE
    made = [ids.new() for _ in range(3)] + [ids.of(SCOPE) for _ in range(2)]
    assert made == [ids.prefix + digits for digits in (b"fff", b"1000", b"1001", b"1002", b"1003")]
    ids.count = 0xABCFFF
    assert [ids.new(), ids.of(SCOPE)] == [ids.prefix + b"abd000", ids.prefix + b"abd001"]


def test_line_parts_are_kept_per_value_within_bounds() -> None:
    """The referer and user agent as the log writes them, whether the image parser read them
    (the record's fields) or the observer scans the headers itself: escaped, cut when long,
    ``-`` when absent or empty, each value's part kept once and a long one never."""
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    observer = Observer(metrics=None, log=log)

    def line(request_id: bytes, referer: bytes | None, agent: bytes | None) -> dict[str, Any]:
        """Logged twice: as the parser leaves the record, and with the headers unread."""
        found = []
        for parsed in (True, False):
            scope, record = public_hit(1)
            scope["client"] = ("192.0.2.1", 1)
            record.request_id = request_id
            if parsed:
                record.referer, record.agent = referer, agent
            else:
                sent = ((b"referer", referer), (b"user-agent", agent))
                scope["headers"] = [(b"accept", b"*/*")] + [
                    (k, v) for k, v in sent if v is not None
                ]
            observer.finish(scope, record)
            found.append(
                {k: v for k, v in queued(log)[-1].items() if k not in ("time", "duration_ms")}
            )
        assert found[0] == found[1]
        return found[0]

    for n in range(2):
        assert line(b"id-%d" % n, b"https://a.example/", b'Agent "1"\t\xe9') == {
            "client": "192.0.2.1",
            "request_id": f"id-{n}",
            "referer": "https://a.example/",
            "user_agent": 'Agent "1"\t\xe9',
            **FACTS,
        }
    assert (len(log.clients), len(log.agents), len(log.referers)) == (1, 1, 1)
    long = b"x" * (MAX_LOGGED_HEADER + 1)
    found = line(b"id", None, long)
    assert found["user_agent"] == "x" * MAX_LOGGED_HEADER + TRUNCATED
    assert found["referer"] == "-"
    assert len(log.agents) == 1, "a value longer than what is logged is never kept"
    assert line(b"id", b"", None)["referer"] == "-"
    assert line(b"id", None, None) == line(b"id", None, b"") | {"user_agent": "-"}


def test_an_id_is_kept_from_a_trusted_proxy_only(folder: World, tmp_path: Path) -> None:
    trusted = Served(folder, tmp_path / "a.log", EDGE_TRUSTED_PROXIES="127.0.0.1")
    untrusted = Served(folder, tmp_path / "b.log", EDGE_TRUSTED_PROXIES="10.0.0.0/8")
    nobody = Served(folder, tmp_path / "c.log")
    path = "/i/alice/photo.png"
    assert get(trusted.base + path, x_request_id="req-1.a:b_C").headers["x-request-id"] == (
        "req-1.a:b_C"
    )
    for served in (untrusted, nobody):
        echoed = get(served.base + path, x_request_id="req-1").headers["x-request-id"]
        assert GENERATED.fullmatch(echoed), "replaced: a client may not name it"
    for malformed in ("a" * (MAX_ID_CHARS + 1), "has space", 'quo"te', "x,y"):
        echoed = get(trusted.base + path, x_request_id=malformed).headers["x-request-id"]
        assert GENERATED.fullmatch(echoed), malformed
    fresh = {get(trusted.base + path).headers["x-request-id"] for _ in range(5)}
    assert len(fresh) == 5 and all(GENERATED.fullmatch(rid) for rid in fresh)
    logged = trusted.lines(1 + 4 + 5)
    assert logged[0]["request_id"] == "req-1.a:b_C"
    assert {line["request_id"] for line in logged[5:]} == fresh


def _held_connections(base: str, count: int) -> list[socket.socket]:
    parts = urlsplit(base)
    held = []
    for _ in range(count):
        held.append(socket.create_connection((parts.hostname, parts.port or 80), timeout=5))
    time.sleep(0.2)
    return held


def test_every_response_echoes_the_id(folder: World, tmp_path: Path) -> None:
    served = Served(
        folder, tmp_path / "a.log", EDGE_TRUSTED_PROXIES="127.0.0.1", EDGE_MAX_CONNECTIONS="2"
    )
    base = served.base
    first = get(base + "/i/alice/photo.png", x_request_id="r200")
    answers = {
        "r200": first,
        "r304": get(
            base + "/i/alice/photo.png", x_request_id="r304", if_none_match=first.headers["etag"]
        ),
        "r404": get(base + "/i/alice/nothing.png", x_request_id="r404"),
        "r403": get(base + "/i/alice/secret.png?exp=9999999999&sig=AAAA", x_request_id="r403"),
        "r400": get(base + "/i/alice/photo.png?w=nope", x_request_id="r400"),
        "rhealth": get(base + "/healthz", x_request_id="rhealth"),
        "rmetrics": get(base + "/metrics", x_request_id="rmetrics"),
        "rnoroute": get(base + "/nothing", x_request_id="rnoroute"),
        "rauth": get(base + "/auth", x_request_id="rauth", x_original_uri="/i/alice/photo.png"),
    }
    statuses = {rid: response.status_code for rid, response in answers.items()}
    assert statuses == {
        "r200": 200,
        "r304": 304,
        "r404": 404,
        "r403": 403,
        "r400": 400,
        "rhealth": 200,
        "rmetrics": 200,
        "rnoroute": 404,
        "rauth": 200,
    }
    for rid, response in answers.items():
        assert response.headers["x-request-id"] == rid
    logged = {line["request_id"]: line["status"] for line in served.lines(len(answers))}
    assert logged == statuses
    # Refused by the connection itself (no request read): a new ID all the same.
    held = _held_connections(base, 2)
    try:
        overloaded = httpx.get(
            base + "/healthz", headers={"x-request-id": "r503"}, timeout=5, verify=TLS
        )
    finally:
        for connection in held:
            connection.close()
    assert overloaded.status_code == 503
    assert GENERATED.fullmatch(overloaded.headers["x-request-id"])


def test_a_storage_failure_warning_names_the_request(
    folder: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = Served(folder, tmp_path / "a.log", EDGE_TRUSTED_PROXIES="127.0.0.1")

    async def failing(key: str, conditions: Conditions, *, head: bool) -> Reply:
        raise StorageError("disk on fire")

    served.storage.read = failing  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="edge"):
        response = get(served.base + "/i/alice/photo.png", x_request_id="broken-1")
    assert response.status_code == 502 and response.headers["x-request-id"] == "broken-1"
    (warning,) = [r for r in caplog.records if "storage read of" in r.getMessage()]
    assert warning.request_id == " request_id=broken-1"  # type: ignore[attr-defined]
    formatted = logging.Formatter("%(message)s%(request_id)s").format(warning)
    assert formatted.endswith("disk on fire request_id=broken-1")
    (line,) = served.lines(1)
    assert line["request_id"] == "broken-1" and line["status"] == 502


def _timing(response: httpx.Response) -> dict[str, str]:
    """Server-Timing as {metric: its desc or dur}."""
    metrics = {}
    for part in response.headers["server-timing"].split(","):
        name, _, param = part.strip().partition(";")
        metrics[name] = param.partition("=")[2]
    return metrics


def test_server_timing_is_off_by_default(folder: World, tmp_path: Path) -> None:
    served = Served(folder, tmp_path / "a.log")
    for path in ("/i/alice/photo.png", "/i/alice/photo.png", "/i/alice/nothing.png"):
        response = get(served.base + path)
        assert "server-timing" not in response.headers
        assert "timing-allow-origin" not in response.headers


def test_server_timing_on_a_miss_a_hit_a_transform_and_a_refusal(
    folder: World, tmp_path: Path
) -> None:
    served = Served(folder, tmp_path / "a.log", EDGE_SERVER_TIMING="on")
    served.storage.delay = 0.05
    miss = get(served.base + "/i/alice/photo.png")
    hit = get(served.base + "/i/alice/photo.png")
    assert _timing(miss).keys() == _timing(hit).keys() == {"cache", "storage", "verify"}
    assert _timing(miss)["cache"] == "miss" and _timing(hit)["cache"] == "hit"
    assert 50 <= float(_timing(miss)["storage"]) < 5000, "the storage's 50 ms, in ms"
    assert float(_timing(hit)["storage"]) == 0
    for response in (miss, hit):
        assert 0 <= float(_timing(response)["verify"]) < 100
    signed = get(served.base + folder.sign("/i/alice/secret.png"))
    assert signed.status_code == 200 and _timing(signed)["cache"] == "miss"
    variant = get(served.base + "/i/alice/photo.png?w=16")
    assert variant.status_code == 200, variant.text
    made = _timing(variant)
    assert made["cache"] == "miss" and 0 < float(made["transform"]) < 5000
    assert float(made["storage"]) == 0, "its source was in the cache already"
    again = get(served.base + "/i/alice/photo.png?w=16")
    assert _timing(again)["cache"] == "hit" and "transform" not in _timing(again)
    refused = get(served.base + "/i/alice/secret.png?exp=9999999999&sig=AAAA")
    assert refused.status_code == 403 and _timing(refused)["cache"] == "none"
    missing = get(served.base + "/i/alice/nothing.png")
    assert missing.status_code == 404 and _timing(missing)["cache"] == "miss"
    assert "timing-allow-origin" not in hit.headers


def test_timing_allow_origin_modes(folder: World, tmp_path: Path) -> None:
    anyone = Served(folder, tmp_path / "a.log", EDGE_TIMING_ALLOW_ORIGIN="*")
    listed = Served(
        folder,
        tmp_path / "b.log",
        EDGE_TIMING_ALLOW_ORIGIN="https://app.example.com, http://localhost:3000",
    )
    path = "/i/alice/photo.png"
    response = get(anyone.base + path, origin="https://elsewhere.example")
    assert response.headers["timing-allow-origin"] == "*"
    assert "server-timing" not in response.headers, "EDGE_SERVER_TIMING is its own setting"
    for origin in ("https://app.example.com", "http://localhost:3000"):
        response = get(listed.base + path, origin=origin)
        assert response.headers["timing-allow-origin"] == origin
        assert response.headers["vary"] == "Origin"
    for headers in ({"origin": "https://evil.example"}, {}):
        response = get(listed.base + path, **headers)
        assert "timing-allow-origin" not in response.headers
        assert response.headers["vary"] == "Origin", "a cache must not reuse another's answer"


def test_referer_and_user_agent_are_logged_escaped_and_bounded(
    folder: World, tmp_path: Path
) -> None:
    served = Served(folder, tmp_path / "a.log")
    # Quotes, backslashes, a tab and obs-text bytes: what a parser lets through (it refuses
    # other control characters with 400 before edge sees the request).
    nasty = 'Mozilla/5.0 "quoted" \\back\tslash \xe9\xff ' * 300  # 10 KB and more
    assert len(nasty) > 10_000
    signed = folder.sign("/i/alice/secret.png")
    sig = signed.partition("sig=")[2].partition("&")[0].encode()
    parts = urlsplit(served.base)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as connection:
        connection.sendall(
            b"GET " + signed.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"User-Agent: " + nasty.encode("latin-1") + b"\r\n"
            b'Referer: https://example.com/a?q="x"\r\n\r\n'
        )
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    get(served.base + "/i/alice/photo.png")  # no referer; httpx's own user agent
    first, second = served.lines(2)
    assert first["user_agent"] == nasty[:MAX_LOGGED_HEADER] + TRUNCATED
    assert first["referer"] == 'https://example.com/a?q="x"'
    assert second["referer"] == "-" and second["user_agent"].startswith("python-httpx/")
    raw = (tmp_path / "a.log").read_bytes()
    assert raw.count(b"\n") == 2 and sig not in raw
    assert len(raw.splitlines()[0]) < 2 * MAX_LOGGED_HEADER * 6 + 1000
    # A control character: the parser's own 400, which carries an ID too.
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x01b\r\n\r\n")
        refused = connection.recv(65536)
    assert refused.startswith(b"HTTP/1.1 400") and b"\r\nx-request-id: " in refused


def _raw_get(base: str, target: bytes, headers: bytes) -> bytes:
    """A GET as sent, headers spelt and repeated as given; the answer's head and body."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("target", [b"/i/alice/photo.png", b"/i/alice/../x.png", b"/healthz"])
def test_repeated_and_oddly_spelt_browser_headers_log_the_last_value(
    folder: World, tmp_path: Path, target: bytes
) -> None:
    """An image request's referer and user agent come from the parser's scan of the
    headers, any other request's (a refused path, another route) from the observer's own:
    both log the last of repeated values, whatever the names' case or place."""
    served = Served(folder, tmp_path / "a.log")
    sent = [
        b"REFERER: https://first.example/\r\nRange: bytes=0-3\r\nuser-AGENT: one\r\n",
        b"Accept: */*\r\nReferer: https://a.example/\r\nreferer: https://b.example/\r\n",
        b'User-Agent: \r\nIf-None-Match: "x"\r\nReferer: https://c.example/?q="1"\r\n',
        b"User-Agent: one\r\nUser-Agent: two\r\n",
    ]
    for headers in sent:
        assert _raw_get(served.base, target, headers + b"Connection: close\r\n")[:9] == b"HTTP/1.1 "
    lines = served.lines(len(sent))
    assert [(line["referer"], line["user_agent"]) for line in lines] == [
        ("https://first.example/", "one"),
        ("https://b.example/", "-"),
        ('https://c.example/?q="1"', "-"),
        ("-", "two"),
    ]
    if target == b"/i/alice/photo.png":  # the range and the conditional still shape the read
        assert [line["status"] for line in lines] == [206, 200, 200, 200]

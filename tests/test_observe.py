"""Access log, metrics, proxy awareness, graceful shutdown: on real processes where it matters."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.accesslog import STAMP, AccessLog, redact
from edge.app import Edge
from edge.metrics import Metrics
from edge.observe import Observer
from edge.proxies import ProxyPolicy
from edge.record import Record
from edge.samples import png
from edge.settings import Settings
from tests.conftest import KEYS, World
from tests.servers import free_port
from tests.test_process import clean_env, edge_process, wait_ready

PNG = png(32, 32)


def scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"client": (peer, 5000), "scheme": "http", "headers": list(headers)}


def test_redact_hides_every_sig_value() -> None:
    assert redact(b"sig=abc&exp=1") == b"sig=[redacted]&exp=1"
    assert redact(b"exp=1&%73ig=abc&kid=k") == b"exp=1&sig=[redacted]&kid=k"
    assert redact(b"%73%69%67=abc") == b"sig=[redacted]"
    assert redact(b"xsig=1&sig=&asig=2") == b"xsig=1&sig=[redacted]&asig=2"
    assert redact(b"sig=a&sig=b") == b"sig=[redacted]&sig=[redacted]"
    assert redact(b"v=2&sigma=1") == b"v=2&sigma=1"
    assert redact(b"sig") == b"sig"


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    trusted = ProxyPolicy(
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
    )
    forwarded = (b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.1.2.3")
    proto = (b"x-forwarded-proto", b"https")
    assert trusted.client_and_scheme(scope("127.0.0.1", forwarded, proto)) == (
        "203.0.113.7",
        "https",
    )
    assert trusted.client_and_scheme(scope("198.51.100.1", forwarded, proto)) == (
        "198.51.100.1",
        "http",
    )
    assert ProxyPolicy().client_and_scheme(scope("127.0.0.1", forwarded, proto)) == (
        "127.0.0.1",
        "http",
    )
    assert trusted.client_and_scheme(scope("127.0.0.1", (b"x-forwarded-proto", b"gopher"))) == (
        "127.0.0.1",
        "http",
    )
    only_proxies = (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2")
    assert trusted.client_and_scheme(scope("127.0.0.1", only_proxies))[0] == "10.0.0.1"


def _answered(exchange: Record, status: int, sent: int, outcome: str, cache: str) -> Record:
    """``exchange`` as the handler leaves it once it has answered."""
    exchange.status, exchange.sent, exchange.outcome, exchange.cache = status, sent, outcome, cache
    return exchange


def _row(number: int) -> tuple[dict[str, Any], Record]:
    exchange = _answered(Record(0.0), 200, 5, "public", "hit")
    scope = {
        "client": ("127.0.0.1", 1),
        "scheme": "http",
        "method": "GET",
        "raw_path": b"/i/alice/%d.png" % number,
        "path": "",
        "query_string": b"",
    }
    return scope, exchange


def _records(log: AccessLog) -> list[dict[str, Any]]:
    """The lines queued on ``log``, stamped as its writer would."""
    stamp = time.strftime(STAMP, time.gmtime()).encode()
    return [json.loads(stamp + line) for line in log.lines]


class Clock:
    """The observer's clock, in the test's hands: a request takes what the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def finish(self, observer: Observer, scope: dict[str, Any], seconds: float) -> None:
        record = observer.start()
        self.now += seconds
        observer.finish(scope, record)


def _drain(read_end: int, until: Callable[[bytes], bool], *, seconds: float = 20) -> bytes:
    received = b""
    os.set_blocking(read_end, False)
    deadline = time.monotonic() + seconds
    while not until(received):
        assert time.monotonic() < deadline
        try:
            received += os.read(read_end, 1 << 20)
        except BlockingIOError:
            time.sleep(0.01)
    return received


def test_access_log_never_blocks_its_caller() -> None:
    """A stdout nobody reads (a full pipe) stalls the writer thread, never put()."""
    read_end, write_end = os.pipe()
    log = AccessLog(write_end)
    log.start()
    observer = Observer(metrics=None, log=log)
    rows = [_row(n) for n in range(20_000)]  # about 4 MB of lines: far beyond a pipe's 64 KiB
    started = time.monotonic()
    for row in rows:
        observer.finish(*row)
    assert time.monotonic() - started < 1.0
    received = _drain(read_end, lambda data: data.count(b"\n") >= 20_000)
    log.close()
    os.close(read_end)
    os.close(write_end)
    lines = received.splitlines()
    assert len(lines) == 20_000 and lines[-1].startswith(b'{"time":"')
    assert [json.loads(line)["path"] for line in lines] == [
        f"/i/alice/{n}.png" for n in range(20_000)
    ]


def test_a_stalled_stdout_drops_new_lines_instead_of_growing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The queue is bounded in bytes: long lines (a 2 KiB path of quotes escapes to 4 KiB)
    fill it sooner, and what does not fit is dropped and counted, never held."""
    read_end, write_end = os.pipe()
    log = AccessLog(write_end, max_bytes=256 * 1024)
    log.start()
    observer = Observer(metrics=None, log=log)
    quotes = b"/i/alice/" + b'"' * 2000
    for number in range(5_000):  # the pipe fills after a few lines; then the queue does
        scope, exchange = _row(number)
        scope["raw_path"] = quotes + b"%d" % number
        observer.finish(scope, exchange)
        assert log.writer.queued <= 256 * 1024
    assert log.writer.dropped > 4_000
    with caplog.at_level("WARNING", logger="edge"):
        received = _drain(read_end, lambda data: data.count(b"\n") >= 5_000 - log.writer.dropped)
        log.close()
    for fd in (read_end, write_end):
        os.close(fd)
    assert received.count(b"\n") == 5_000 - log.writer.dropped
    assert any("access log output too slow" in r.getMessage() for r in caplog.records)


def populated(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "private" / "alice").mkdir(parents=True)
    (root / "public" / "alice" / "photo.png").write_bytes(PNG)
    (root / "private" / "alice" / "secret.png").write_bytes(PNG)
    return root


def test_json_access_log_from_a_real_process(tmp_path: Path) -> None:
    from edge.keys import parse_keyring
    from edge.signing import sign_url

    root = populated(tmp_path)
    number = free_port()
    env = clean_env(
        EDGE_STORAGE=str(root), EDGE_SIGNING_KEYS=KEYS, EDGE_TRUSTED_PROXIES="127.0.0.1"
    )
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    signed = sign_url("/i/alice/secret.png", key=key, exp=int(time.time()) + 300)
    sig = signed.split("sig=")[1].split("&")[0]
    with edge_process(["serve", "--port", str(number)], env=env, cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        httpx.get(base + "/i/alice/photo.png")
        httpx.get(
            base + signed, headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
        )
        httpx.get(base + signed.replace("sig=", "sig=x"))
        httpx.get(base + "/i/alice/secret.png")
        httpx.head(base + "/i/alice/photo.png")
        time.sleep(0.5)
    text = (tmp_path / "edge.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    images = [line for line in lines if line["path"].startswith("/i/")]
    assert [(line["method"], line["status"], line["outcome"]) for line in images] == [
        ("GET", 200, "public"),
        ("GET", 200, "private"),
        ("GET", 403, "signature_invalid"),
        ("GET", 404, "not_found"),
        ("HEAD", 200, "public"),
    ]
    assert [line["cache"] for line in images] == ["miss", "miss", "-", "miss", "hit"]
    first = images[0]
    assert set(first) == {
        "time",
        "client",
        "scheme",
        "method",
        "path",
        "status",
        "bytes",
        "duration_ms",
        "outcome",
        "cache",
    }
    assert (
        first["bytes"] == len(PNG) and first["client"] == "127.0.0.1" and first["duration_ms"] > 0
    )
    assert images[1]["client"] == "203.0.113.9" and images[1]["scheme"] == "https"
    assert "sig=[redacted]" in images[1]["path"] and "exp=" in images[1]["path"]
    assert images[4]["bytes"] == 0
    assert sig not in text, "a signature never reaches the log"
    assert KEYS.split(":")[2] not in text, "nor a key"


@pytest.mark.parametrize("log", ["off", "json"])  # with the log on, rows come via its memo
def test_metrics_count_outcomes_storage_and_bytes(world: World, log: str) -> None:
    public = world.put("public", "alice", "photo.png", PNG)
    private = world.put("private", "alice", "secret.png", PNG)
    base = world.serve(EDGE_ACCESS_LOG=log)
    httpx.get(base + public)
    httpx.get(base + public)
    httpx.get(base + world.sign(private))
    httpx.get(base + private)
    httpx.get(base + world.sign(private, exp=int(time.time()) - 5))
    httpx.get(base + public + "?sig=x&exp=1")
    text = httpx.get(base + "/metrics").text
    for sample in (
        'edge_requests_total{outcome="public",status="200"} 2.0',
        'edge_requests_total{outcome="private",status="200"} 1.0',
        'edge_requests_total{outcome="not_found",status="404"} 1.0',
        'edge_requests_total{outcome="signature_expired",status="403"} 1.0',
        'edge_requests_total{outcome="signature_invalid",status="403"} 1.0',
        f"edge_response_body_bytes_total {float(3 * len(PNG) + 71 + 86 + 85)}",
        "edge_storage_request_duration_seconds_count"
        f'{{operation="get",storage="{world.kind}"}} 3.0',  # the second public GET was a hit
        "edge_cache_hits_total 1.0",
        "edge_cache_misses_total 3.0",
        "edge_cache_entries 3.0",  # two objects and one "not found"
        "edge_requests_in_flight 1.0",  # the /metrics request itself
    ):
        assert sample in text, sample
    assert 'edge_request_duration_seconds_bucket{le="+Inf",outcome="public"} 2.0' in text
    cached = float(text.split("\nedge_cache_bytes ")[1].split("\n")[0])
    assert cached >= 2 * len(PNG)


@pytest.mark.parametrize("world", ["s3"], indirect=True)
def test_metrics_count_storage_errors(world: World) -> None:
    base = world.serve(
        EDGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", EDGE_S3_MAX_ATTEMPTS="1"
    )
    assert httpx.get(base + "/i/alice/photo.png").status_code == 502
    text = httpx.get(base + "/metrics").text
    assert 'edge_storage_errors_total{code="STORAGE_ERROR",storage="s3"} 1.0' in text
    assert 'edge_requests_total{outcome="storage_error",status="502"} 1.0' in text


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_metrics_can_move_to_a_port_or_be_turned_off(world: World) -> None:
    assert httpx.get(world.serve(EDGE_METRICS="off") + "/metrics").status_code == 404
    metrics_port = free_port()
    base = world.serve(EDGE_METRICS=str(metrics_port))
    assert httpx.get(base + "/metrics").status_code == 404
    deadline = time.monotonic() + 5
    while True:
        try:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert "edge_requests_in_flight" in text


def test_sigterm_lets_downloads_finish_then_exits_0(tmp_path: Path) -> None:
    root = populated(tmp_path)
    big = root / "public" / "alice" / "big.png"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    number = free_port()
    env = clean_env(EDGE_STORAGE=str(root), EDGE_SHUTDOWN_TIMEOUT="20", EDGE_ACCESS_LOG="off")
    with edge_process(["serve", "--port", str(number)], env=env, cwd=tmp_path) as process:
        base = f"http://127.0.0.1:{number}"
        wait_ready(base, process)
        received = 0
        with httpx.stream("GET", base + "/i/alice/big.png", timeout=30) as response:
            chunks = response.iter_raw(256 * 1024)
            received += len(next(chunks))
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(ConnectionRefusedError):  # no longer accepting
                socket.create_connection(("127.0.0.1", number), timeout=2).close()
            for chunk in chunks:
                received += len(chunk)
                time.sleep(0.001)  # a slowish reader
        assert received == 64 * 1024 * 1024
        assert process.wait(20) == 0


def test_log_lines_are_valid_json_whatever_the_request_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = AccessLog(
        os.open(os.devnull, os.O_WRONLY),
        proxies=ProxyPolicy((ipaddress.ip_network("127.0.0.1/32"),)),
    )
    log.close()
    nasty = b'/i/a/"quote"\\back\x01\x7f\xff\xe9%22.png'
    scope = {
        "client": ("127.0.0.1", 1),
        "scheme": "http",
        "method": "GET",
        "raw_path": nasty,
        "path": "",
        "query_string": b'sig=secret"&exp=1&x="\\',
        "headers": [(b"x-forwarded-for", b'"evil\\"\n, 10.0.0.1')],
    }
    clock = Clock()
    observer = Observer(metrics=None, log=log, clock=clock)
    exchange = _answered(Record(0.0), 403, 86, "signature_invalid", "-")
    clock.now = 0.0012345
    observer.finish(scope, exchange)
    (line,) = log.lines
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    (record,) = _records(log)
    assert record["path"] == nasty.decode("latin-1") + '?sig=[redacted]&exp=1&x="\\'
    assert record["client"] == "10.0.0.1"  # the nearest hop not trusted
    assert record["duration_ms"] == 1.234 and record["status"] == 403
    assert "secret" not in line.decode("latin-1")


def test_durations_are_milliseconds_to_the_microsecond(monkeypatch: pytest.MonkeyPatch) -> None:
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    clock = Clock()
    observer = Observer(metrics=None, log=log, clock=clock)
    taken = [0.0, 0.0000004, 0.000123, 0.0015, 0.000123, 1.2345678, 12.3456789, 0.000123]
    for seconds in taken:
        clock.finish(observer, _row(1)[0], seconds)
    assert [record["duration_ms"] for record in _records(log)] == [
        0.0,
        0.0,
        0.123,
        1.5,
        0.123,
        1234.567,
        12345.678,
        0.123,
    ]
    assert [line.split(b",", 1)[0] for line in log.lines][2:4] == [b"0.123", b"1.5"], "shortest"


def test_remembered_lines_stay_per_request_and_bounded() -> None:
    """A line's text is reused only for the same facts (here: path and query, client, status);
    the memo is bounded in entries, and long paths and queries are never kept."""
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    observer = Observer(metrics=None, log=log)
    observer.kinds.max_entries = 3

    def logged(raw_path: bytes, query: bytes, client: str = "10.0.0.1", status: int = 200) -> Any:
        exchange = _answered(Record(0.0), status, 5, "-", "hit")
        scope = {
            "client": (client, 1),
            "method": "GET",
            "raw_path": raw_path,
            "query_string": query,
        }
        observer.finish(scope, exchange)
        return _records(log)[-1]

    for round_ in range(2):  # the second round reads from the memo, or refills it
        for number in range(5):
            raw = b"/i/a/%d.png" % number
            assert logged(raw, b"")["path"] == raw.decode()
            assert logged(raw, b"sig=s%d&exp=1" % number)["path"] == (
                raw.decode() + "?sig=[redacted]&exp=1"
            )
            assert logged(raw, b"exp=2&sig=t")["path"] == raw.decode() + "?exp=2&sig=[redacted]"
            assert logged(raw, b"", client=f"10.0.0.{round_}")["client"] == f"10.0.0.{round_}"
            assert logged(raw, b"", status=304 + round_)["status"] == 304 + round_
    assert len(observer.kinds) <= 3
    observer.kinds.clear()
    long_query = b"sig=s&pad=" + b"x" * 2000
    assert logged(b"/i/a/long.png", long_query)["path"].endswith("sig=[redacted]&pad=" + "x" * 2000)
    assert observer.kinds == {}, "a long (path, query) is formatted each time, never kept"


def test_metrics_are_the_same_with_the_log_on_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the log on, metrics rows are found through the log's memo: same counts."""
    clock = Clock()
    seen = []
    for log in (None, AccessLog(os.open(os.devnull, os.O_WRONLY))):
        metrics = Metrics()
        observer = Observer(metrics=metrics, log=log, clock=clock)
        clock.now = 0.0
        for number, (seconds, status) in enumerate([(0.0004, 200), (0.03, 200), (2.0, 404)] * 3):
            scope, _ = _row(number % 2)
            exchange = _answered(observer.start(), status, number, "public", "hit")
            clock.now += seconds
            observer.finish(scope, exchange)
        seen.append({key: list(row) for key, row in metrics.stats.rows.items()})
        assert metrics.stats.in_flight == 0
        if log is not None:
            log.close()
    assert seen[0] == seen[1] and len(seen[0]) == 2


@pytest.mark.parametrize(("mode", "stranger"), [("local", 404), ("on", 200)])
def test_metrics_are_for_loopback_clients_unless_opened(
    tmp_path: Path, mode: str, stranger: int
) -> None:
    """By default /metrics answers only a peer on this host: the connection's own address,
    which no forwarded header can change."""
    env = {"EDGE_STORAGE": str(tmp_path), "EDGE_METRICS": mode, "EDGE_ACCESS_LOG": "off"}
    app = Edge(Settings.from_env(env))

    async def scrape(peer: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return await client.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"})

    for peer, status in [("127.0.0.1", 200), ("::1", 200), ("10.0.0.5", stranger)]:
        response = asyncio.run(scrape(peer))
        assert response.status_code == status, peer
        if status == 404:
            assert response.json()["error"]["code"] == "NOT_FOUND"
        else:
            assert "edge_requests_total" in response.text

"""edge.accesslog: one JSON line per request, `sig` redacted, never blocking the event loop
(its queue bounded in bytes); from a real process, and from uvicorn run directly on the app
factory, whose own access log stays off."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from edge.accesslog import AccessLog, redact, redact_url
from edge.observe import Observer
from edge.proxies import ProxyPolicy
from edge.record import Record
from tests.support.client import TLS
from tests.support.clock import Clock
from tests.support.processes import EDGE, PNG, clean_env, edge_process, populated, stop, wait_ready
from tests.support.records import answered, public_hit, queued
from tests.support.servers import free_port
from tests.support.world import KEYS


def test_redact_hides_every_sig_value() -> None:
    assert redact(b"sig=abc&exp=1") == b"sig=[redacted]&exp=1"
    assert redact(b"exp=1&%73ig=abc&kid=k") == b"exp=1&sig=[redacted]&kid=k"
    assert redact(b"%73%69%67=abc") == b"sig=[redacted]"
    assert redact(b"xsig=1&sig=&asig=2") == b"xsig=1&sig=[redacted]&asig=2"
    assert redact(b"sig=a&sig=b") == b"sig=[redacted]&sig=[redacted]"
    assert redact(b"v=2&sigma=1") == b"v=2&sigma=1"
    assert redact(b"sig") == b"sig"
    # Edge ignores SIG=, but its value is a genuine signature one lower-casing away from use.
    hidden = b"sig=[redacted]&exp=1&sig=[redacted]&sig=[redacted]"
    assert redact(b"SIG=abc&exp=1&Sig=d&%73IG=e") == hidden
    # A referer may be a signed URL: its query is redacted the same way.
    assert (
        redact_url(b"https://x/i/a/b.png?sig=abc&exp=1")
        == b"https://x/i/a/b.png?sig=[redacted]&exp=1"
    )
    assert redact_url(b"https://x/page?a=1") == b"https://x/page?a=1"
    assert redact_url(b"https://x/sig=1") == b"https://x/sig=1"


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
    rows = [public_hit(n) for n in range(20_000)]  # about 4 MB of lines: far beyond a pipe's 64 KiB

    # Nobody reads the pipe until the caller is done: a put() that waited for the pipe
    # would wait forever (bounded here by the join), however slow the machine.
    def log_them() -> None:
        for row in rows:
            observer.finish(*row)

    caller = threading.Thread(target=log_them)
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive(), "finish() blocked on the full pipe"
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
        scope, exchange = public_hit(number)
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
        httpx.get(base + "/i/alice/photo.png", verify=TLS)
        httpx.get(
            base + signed,
            headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"},
            verify=TLS,
        )
        httpx.get(base + signed.replace("sig=", "sig=x"), verify=TLS)
        httpx.get(base + "/i/alice/secret.png", verify=TLS)
        httpx.head(base + "/i/alice/photo.png", verify=TLS)
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
    assert [line.get("reason") for line in images] == [None, None, "sig_malformed", None, None]
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
        "request_id",
        "referer",
        "user_agent",
    }
    assert first["referer"] == "-" and first["user_agent"].startswith("python-httpx/")
    assert len({line["request_id"] for line in images}) == len(images)
    assert (
        first["bytes"] == len(PNG) and first["client"] == "127.0.0.1" and first["duration_ms"] > 0
    )
    assert images[1]["client"] == "203.0.113.9" and images[1]["scheme"] == "https"
    assert "sig=[redacted]" in images[1]["path"] and "exp=" in images[1]["path"]
    assert images[4]["bytes"] == 0
    assert sig not in text, "a signature never reaches the log"
    assert KEYS.split(":")[2] not in text, "nor a key"


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
    exchange = answered(Record(0.0), 403, 86, "signature_invalid", "-")
    clock.now = 0.0012345
    observer.finish(scope, exchange)
    (line,) = log.lines
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    (record,) = queued(log)
    assert record["path"] == nasty.decode("latin-1") + '?sig=[redacted]&exp=1&x="\\'
    assert record["client"] == "10.0.0.1"  # the nearest hop not trusted
    assert record["duration_ms"] == 1.234 and record["status"] == 403
    assert "secret" not in line.decode("latin-1")


def documented_uvicorn_options() -> list[str]:
    """The options the README gives `uvicorn --factory edge.app:create_app` ("Serving"),
    but the port, which each test picks."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"^    (uvicorn --factory .*?)\n\n", readme, re.MULTILINE | re.DOTALL)
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["uvicorn", "--factory", "edge.app:create_app"], words
    options = words[3:]
    at = options.index("--port")
    return options[:at] + options[at + 2 :]


#: uvicorn's options as the README gives them, then its own defaults, then its most
#: talkative: at `trace` uvicorn logs each request's ASGI scope, query string and all.
FACTORY_RUNS = {
    "as documented": documented_uvicorn_options(),
    "uvicorn's defaults": [],
    "access log asked, trace": ["--access-log", "--log-level", "trace"],
}


@pytest.mark.slow
@pytest.mark.parametrize("options", FACTORY_RUNS.values(), ids=FACTORY_RUNS)
def test_uvicorn_on_the_factory_logs_no_signature(tmp_path: Path, options: list[str]) -> None:
    """`uvicorn --factory edge.app:create_app`: uvicorn's access log (which prints whole
    URLs) and its trace of ASGI messages (whole scopes) are off, whatever uvicorn is told,
    and edge's access log redacts `sig`: the signature is nowhere in stdout or stderr."""
    root = tmp_path / "images"
    (root / "private" / "alice").mkdir(parents=True)
    (root / "public").mkdir()
    (root / "private" / "alice" / "secret.png").write_bytes(b"\x89PNG secret")
    port = free_port()
    env = clean_env(EDGE_STORAGE=str(root), EDGE_SIGNING_KEYS=KEYS)
    with (tmp_path / "out.log").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "edge.app:create_app",
                "--port",
                f"{port}",
                *options,
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        signed = subprocess.run(
            [*EDGE, "sign", "/i/alice/secret.png", "--expires-in", "600"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        sig = signed.split("sig=")[1].split("&")[0]
        assert httpx.get(base + signed, verify=TLS).status_code == 200
        assert httpx.get(base + signed.replace("sig=", "sig=x"), verify=TLS).status_code == 403
        time.sleep(0.3)  # the log thread writes asynchronously
    finally:
        stop(process)
    logged = (tmp_path / "out.log").read_text()
    assert "/i/alice/secret.png?sig=[redacted]" in logged
    assert sig not in logged
    if "trace" in options:
        assert " TRACE uvicorn.error: " in logged, "uvicorn did log at trace"

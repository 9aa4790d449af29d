"""Requests as a test sends them: GET with headers as keywords, or a request exactly as
written (no client normalises its target); and the shape every error answer must have."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx

from edge.samples import CANARY

#: The TLS context every request of the suite's loops and helpers is given (``verify=TLS``):
#: each httpx call otherwise builds its own from certifi's bundle, 37 ms of CPU, more than
#: a request to a loopback server takes. The requests are plain HTTP: it is never used.
TLS = httpx.create_ssl_context()


def get(url: str, **headers: str) -> httpx.Response:
    """GET with headers given as keywords: ``if_range=`` sends ``If-Range``."""
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.get(url, headers=headers, timeout=30, verify=TLS)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == code and body["error"]["status"] == status
    assert "Traceback" not in response.text and CANARY not in response.content


def raw_get(base: str, target: str, *, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send the request target exactly as written: no client normalises dot segments here."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_request(
    base: str, target: str, *, method: str = "GET", headers: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send a request exactly as written: the target unnormalised, each header with its own
    case and as often as listed. Returns the status, every header (names lower-cased, repeats
    kept) and the body."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", parts.netloc)
        for name, value in headers or []:
            conn.putheader(name, value.encode("utf-8"))
        conn.endheaders()
        response = conn.getresponse()
        received = [(name.lower(), value) for name, value in response.getheaders()]
        return response.status, received, response.read()
    finally:
        conn.close()

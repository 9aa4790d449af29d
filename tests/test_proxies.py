"""edge.proxies: X-Forwarded-For and X-Forwarded-Proto name the client only when the
connection comes from a trusted proxy."""

from __future__ import annotations

import ipaddress

from edge.proxies import ProxyPolicy


def scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"client": (peer, 5000), "scheme": "http", "headers": list(headers)}


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

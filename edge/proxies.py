"""Client address and scheme behind reverse proxies, trusting forwarded headers only from
proxies named in ``EDGE_TRUSTED_PROXIES``: anyone else could forge them."""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

from starlette.types import Scope

from edge.errors import ConfigError

#: One entry of ``EDGE_TRUSTED_PROXIES``: a single address is a /32 (or /128) network.
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyPolicy:
    def __init__(self, trusted: tuple[Network, ...] = ()) -> None:
        self.trusted = trusted

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def client_and_scheme(self, scope: Scope) -> tuple[str, str]:
        """The client's address and scheme: the peer's, unless a trusted proxy says otherwise.

        X-Forwarded-For is read from the right, skipping trusted hops: the first
        untrusted address is the client (entries to its left are the client's own claims).
        """
        peer = scope.get("client")
        client = peer[0] if peer else "-"
        scheme = str(scope.get("scheme", "http"))
        if not self.trusted or not self.is_trusted(client):
            return client, scheme
        forwarded_for = proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
            elif name == b"x-forwarded-proto":
                proto = value
        if forwarded_for:
            for hop in reversed(forwarded_for.decode("latin-1").split(",")):
                hop = hop.strip()
                client = hop
                if not self.is_trusted(hop):
                    break
        if proto:
            text = proto.decode("latin-1").split(",")[0].strip().lower()
            if text in ("http", "https"):
                scheme = text
        return client[:64], scheme


def parse_networks(name: str, text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 127.0.0.1, ::1``: addresses or CIDR networks, comma-separated."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or CIDR network") from None
    return tuple(networks)

"""Client address and scheme behind reverse proxies, trusting forwarded headers only from
proxies named in ``EDGE_TRUSTED_PROXIES``: anyone else could forge them."""

from __future__ import annotations

import ipaddress
import sys
from typing import TypeAlias

from starlette.types import Scope

from edge.errors import ConfigError
from edge.memo import Memo

#: One entry of ``EDGE_TRUSTED_PROXIES``: a single address is a /32 (or /128) network.
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


#: The longest text an IP address can be written in (an IPv6 address with an IPv4 tail).
MAX_ADDRESS_CHARS = 45


class ProxyPolicy:
    def __init__(self, trusted: tuple[Network, ...] = ()) -> None:
        self.trusted = trusted
        # Address text -> trusted or not. Parsing an address costs 60,000 instructions (more
        # than a cached hit's own work); on traffic from 2,048 clients the verdicts hit
        # almost always (bench/README.md, the memos' table).
        self.seen: Memo[str, bool] = Memo()

    def is_trusted(self, address: str) -> bool:
        verdict = self.seen.get(address)
        if verdict is None:
            verdict = self._judge(address)
            if len(address) <= MAX_ADDRESS_CHARS:  # what no address is, nobody needs kept
                self.seen.remember(address, verdict, sys.getsizeof(address))
        return verdict

    def _judge(self, address: str) -> bool:
        if len(address) > MAX_ADDRESS_CHARS:
            return False
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

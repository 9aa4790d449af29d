"""Where a bucket's requests go: the endpoint, found as the AWS SDKs find it, and the
address each request uses there (path-style or virtual-hosted).

The endpoint is ``EDGE_S3_ENDPOINT_URL``, else botocore's own resolution of S3's
(``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the profile's ``services`` section, the
profile's ``endpoint_url``, none of them when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is
true), else AWS's regional endpoint. Addressing (``EDGE_S3_ADDRESSING``):

- ``path``: ``endpoint/bucket/key``, the Host the endpoint's;
- ``virtual``: ``bucket.endpoint/key``, the Host ``bucket.`` and the endpoint's host
  (the store's DNS must resolve it; a name under ``.localhost`` is connected to at
  ``localhost``, as RFC 6761 asks of resolvers, so a local store needs no wildcard DNS);
- ``auto``: the profile's ``s3.addressing_style`` when it says ``path`` or ``virtual``
  (as botocore reads it), else virtual-hosted on AWS's own endpoints and path-style on
  any other (MinIO, Ceph, moto rarely have wildcard DNS).

A bucket whose name is no DNS name, or holds a dot over ``https`` (a wildcard
certificate ``*.s3.amazonaws.com`` matches one label only), is path-style whatever the
setting, as the AWS SDKs do. The SigV4 signature covers the Host and the path, so both
come from here (:class:`Address`), never rebuilt elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from edge.errors import ConfigError
from edge.storage.sigv4 import object_path

Addressing = Literal["auto", "path", "virtual"]
#: AWS's own S3 endpoints: the global one, and the regional ones in both spellings.
_AWS_HOST = re.compile(r"s3([.-][a-z0-9-]+)?(\.dualstack\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
#: The variables botocore reads, in its order (the profile's settings come after them).
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The endpoint in use, where it was found, and the addressing it takes."""

    url: str | None  # None: AWS's regional endpoint for the signing region
    source: str  # where the URL came from, for `edge check-storage`
    addressing: Addressing  # as set (auto, path or virtual)
    addressing_source: str = "EDGE_S3_ADDRESSING"  # where a path or virtual came from

    @property
    def is_aws(self) -> bool:
        return self.url is None or bool(_AWS_HOST.fullmatch(urlsplit(self.url).hostname or ""))

    def address(self, bucket: str, region: str) -> Address:
        """Where requests for ``bucket`` go when signing for ``region``."""
        if self.url is None:
            tls, host, port = True, f"s3.{region}.amazonaws.com", 443
        else:
            parts = urlsplit(self.url)
            tls = parts.scheme == "https"
            host, port = parts.hostname or "", parts.port or (443 if tls else 80)
        style, why = self._style(bucket, host, tls)
        if style == "virtual":
            host = f"{bucket}.{host}"
        default_port = port == (443 if tls else 80)
        name = f"[{host}]" if ":" in host else host  # an IPv6 address, as a Host names it
        header = name if default_port else f"{name}:{port}"
        connect = "localhost" if host.endswith(".localhost") else host
        bucket_path = object_path(None, bucket) if style == "path" else ""
        return Address(tls, connect, port, header, bucket_path, style, why)

    def _style(self, bucket: str, host: str, tls: bool) -> tuple[str, str]:
        """The addressing of ``bucket`` at ``host``, and why (for `edge check-storage`)."""
        if self.addressing == "path":
            return "path", self._set_by()
        labels = bucket.split(".")
        if not all(_LABEL.fullmatch(label) for label in labels):
            return "path", "the bucket's name is no DNS name"
        if len(labels) > 1 and tls:
            return "path", "the bucket's name holds a dot: a wildcard certificate cannot match it"
        if self.addressing == "virtual":
            return "virtual", self._set_by()
        if self.is_aws:
            return "virtual", "auto: AWS's own endpoint"
        return "path", "auto: an endpoint of another store"

    def _set_by(self) -> str:
        if self.addressing_source == "EDGE_S3_ADDRESSING":
            return f"EDGE_S3_ADDRESSING={self.addressing}"
        return f"{self.addressing_source}: {self.addressing}"


@dataclass(frozen=True, slots=True)
class Address:
    """How a request reaches the bucket: the connection, and what is signed and sent."""

    tls: bool
    host: str  # what is connected to (and the TLS server name)
    port: int
    host_header: str  # the Host header (signed), port included when not the scheme's own
    bucket_path: str  # "/bucket" before each key for path-style; "" for virtual-hosted
    style: str  # "path" or "virtual"
    why: str  # why that style

    @property
    def endpoint(self) -> str:
        """host:port as the log names it (the Host's name, not the alias connected to)."""
        return f"{self.host_header.rsplit(':', 1)[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_header}{self.bucket_path}/"


def find_endpoint(configured: str | None, addressing: Addressing, session: Any) -> Endpoint:
    """``EDGE_S3_ENDPOINT_URL`` if set, else botocore's resolution of S3's endpoint from
    ``session`` (a botocore session), else AWS. A URL that is no ``http(s)://host`` is a
    start-up error naming where it came from. ``addressing`` ``auto`` takes the profile's
    ``s3.addressing_style`` when it names one."""
    chosen = (addressing, "EDGE_S3_ADDRESSING")
    if addressing == "auto":
        chosen = _profile_addressing(session) or chosen
    if configured:
        endpoint = Endpoint(configured, "EDGE_S3_ENDPOINT_URL", *chosen)
    else:
        found, source = _botocore_endpoint(session)
        endpoint = Endpoint(found, source, *chosen)
    if endpoint.url is not None:
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{endpoint.source}: expected an http(s)://host[:port] URL, got"
                f" {endpoint.url[:100]!r}"
            )
        if endpoint.addressing == "virtual" and _is_address(parts.hostname):
            raise ConfigError(
                f"{endpoint.addressing_source}: virtual-hosted addressing needs a host name,"
                f" and the endpoint ({endpoint.source}) is the address {parts.hostname};"
                " use path or auto"
            )
    return endpoint


def _profile_addressing(session: Any) -> tuple[Addressing, str] | None:
    """The profile's ``s3.addressing_style`` (``path`` or ``virtual``) and where it was
    read; None when it says ``auto`` or nothing. Another value is a start-up error."""
    section = session.get_scoped_config().get("s3")
    style = section.get("addressing_style") if isinstance(section, dict) else None
    if style is None or style == "auto":
        return None
    where = f"the AWS config file's s3.addressing_style ({_profile(session)})"
    if style not in ("path", "virtual"):
        raise ConfigError(f"{where}: expected auto, path or virtual, got {str(style)[:40]!r}")
    return style, where


def _botocore_endpoint(session: Any) -> tuple[str | None, str]:
    """S3's endpoint URL as botocore resolves it for a client, and where it was found."""
    from botocore.configprovider import ConfiguredEndpointProvider

    if str(session.get_config_variable("ignore_configured_endpoint_urls")).lower() == "true":
        return None, "AWS (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true)"
    provider = ConfiguredEndpointProvider(
        full_config=session.full_config,
        scoped_config=session.get_scoped_config(),
        client_name="s3",
    )
    url = provider.provide()
    if not url:
        return None, "AWS (no endpoint set)"
    for name in _ENDPOINT_VARIABLES:
        if os.environ.get(name) == url:
            return url, name
    return url, f"the AWS config file ({_profile(session)})"


def _profile(session: Any) -> str:
    """The profile a botocore session reads, as messages name it."""
    return f"profile {session.get_config_variable('profile') or 'default'}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

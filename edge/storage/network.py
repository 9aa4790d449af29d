"""How the S3 client reaches its endpoint, chosen as botocore (so the AWS CLI and SDKs)
chooses: which certificate authorities it trusts, and which proxy it goes through.

- TLS: the CA bundle of ``AWS_CA_BUNDLE``, else of the profile's ``ca_bundle``
  (botocore's own resolution of the two), trusted alone, as botocore trusts it;
  without one, the system's authorities (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` move
  them).
- Proxy: ``HTTPS_PROXY`` for an ``https`` endpoint, ``HTTP_PROXY`` for an ``http`` one
  (either name in lower case too), unless ``NO_PROXY`` names the endpoint's host:
  botocore's ``get_environ_proxies``, read once at start-up. An ``https`` endpoint is
  reached through a ``CONNECT`` tunnel, so the proxy never sees a signed request.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from edge.errors import ConfigError


def ca_bundle(session: Any) -> str | None:
    """The CA bundle file botocore would use for this (aio)botocore session: the
    ``AWS_CA_BUNDLE`` variable, else the profile's ``ca_bundle``; None for neither."""
    found = session.get_config_variable("ca_bundle")
    return str(found) if found else None


def tls_context(bundle: str | None) -> ssl.SSLContext:
    """A client context trusting ``bundle`` alone, or the system's authorities."""
    if bundle is None:
        return ssl.create_default_context()
    path = os.path.expanduser(bundle)
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as error:
        detail = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise ConfigError(
            f"AWS_CA_BUNDLE (or the profile's ca_bundle): cannot load {path[:200]!r}: {detail}"
        ) from None


def proxy_for(endpoint_url: str) -> str | None:
    """The proxy botocore would send requests to ``endpoint_url`` through, or None."""
    from botocore.utils import get_environ_proxies

    scheme = endpoint_url.partition(":")[0]
    proxies: dict[str, str] = get_environ_proxies(endpoint_url)
    proxy = proxies.get(scheme)
    if not proxy:
        return None
    if proxy.startswith(("http:", "https:")):
        return proxy
    return ("http:" if proxy.startswith("//") else "http://") + proxy  # as botocore fixes it

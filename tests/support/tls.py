"""TLS for a loopback store: a test certificate authority, a server certificate for
127.0.0.1 that it signed, and a world's moto behind a proxy that speaks TLS with it."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.faults import FaultProxy, fault_proxy
from tests.support.world import World


def certificate_authority(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A test CA's certificate file, and a server context for 127.0.0.1 it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(chain, key_file)
    return ca_file, server


@dataclass
class TlsStore:
    """A store reached over TLS: the CA that signed its certificate, its endpoint, and the
    proxy in front of it (``seen``: what it carried)."""

    ca_file: Path
    endpoint: str
    proxy: FaultProxy


@contextmanager
def moto_over_tls(world: World, folder: Path) -> Iterator[TlsStore]:
    """The world's moto behind a loopback proxy that speaks TLS, with a certificate signed
    by a test CA (its file written in ``folder``) that no system bundle holds."""
    assert world.moto is not None
    ca_file, server = certificate_authority(folder)
    with fault_proxy(urlsplit(world.moto.endpoint_url).port or 0, tls=server) as proxy:
        yield TlsStore(ca_file, f"https://127.0.0.1:{proxy.port}", proxy)

"""A throw-away X.509 PKI for the transport-security tests (docs/reliability.md).

ECDSA P-256 everywhere: a test CA (BasicConstraints ca=True, KeyUsage keyCertSign), server
leaves with SAN ``DNS:localhost`` + ``IP:127.0.0.1`` and EKU serverAuth, client leaves with
EKU clientAuth, and the broken variants the tests need: an expired server certificate, a
server certificate for the wrong host name, and a second, unrelated CA. Everything is
written as PEM files into a directory (keys unencrypted PKCS#8, mode 0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES: tuple[str, ...] = ("localhost",)
LOOPBACK_IPS: tuple[str, ...] = ("127.0.0.1",)
WRONG_HOST = "wrong-host.invalid"


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its private key as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA that can issue leaves; ``cert_path`` is its PEM certificate (the trust root)."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path
    directory: Path


@dataclass(frozen=True)
class PKI:
    """Everything the TLS tests need, issued into one directory."""

    ca: CertificateAuthority
    other_ca: CertificateAuthority
    server: CertFiles
    server_expired: CertFiles
    server_wrong_host: CertFiles
    client: CertFiles
    client_other_ca: CertFiles


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "verifiable-attribution tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory: Path, name: str = "test-ca") -> CertificateAuthority:
    """A self-signed ECDSA P-256 CA valid from one hour ago for ten days."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    _write_cert(cert_path, cert)
    return CertificateAuthority(name, key, cert, cert_path, directory)


def issue_leaf(
    ca: CertificateAuthority,
    name: str,
    *,
    client: bool = False,
    dns_names: tuple[str, ...] = LOOPBACK_NAMES,
    ip_addresses: tuple[str, ...] = LOOPBACK_IPS,
    expired: bool = False,
    directory: Path | None = None,
) -> CertFiles:
    """Issue a leaf certificate signed by ``ca`` and write ``<name>.crt`` / ``<name>.key``.

    ``client=False`` gives a server certificate (EKU serverAuth, SAN from ``dns_names`` and
    ``ip_addresses``); ``client=True`` a client certificate (EKU clientAuth). ``expired``
    makes it valid from 30 days ago until yesterday.
    """
    out = directory or ca.directory
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    if expired:
        not_before, not_after = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
    else:
        not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=5)
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if not client:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    files = CertFiles(out / f"{name}.crt", out / f"{name}.key")
    _write_cert(files.cert, cert)
    _write_key(files.key, key)
    return files


def make_pki(directory: Path) -> PKI:
    """The CA, an unrelated CA and every leaf the tests use, written under ``directory``."""
    ca = make_ca(directory / "ca", "test-ca")
    other = make_ca(directory / "other-ca", "other-ca")
    return PKI(
        ca=ca,
        other_ca=other,
        server=issue_leaf(ca, "server"),
        server_expired=issue_leaf(ca, "server-expired", expired=True),
        server_wrong_host=issue_leaf(
            ca, "server-wrong-host", dns_names=(WRONG_HOST,), ip_addresses=()
        ),
        client=issue_leaf(ca, "client", client=True),
        client_other_ca=issue_leaf(other, "client-other-ca", client=True),
    )

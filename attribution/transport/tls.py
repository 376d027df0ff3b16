"""TLS credentials from PEM files, for the Prover's server and the Verifier's channel.

Bearer tokens travel as call metadata (``prover.auth`` checks them), so they work on any
channel; transport identity is not protocol identity (that is the Ed25519 keys in the
transcript).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from attribution.errors import UsageError


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS (and mutual TLS when ``client_ca`` is given: clients must present a
    certificate signed by it)."""
    try:
        pair = (key.read_bytes(), cert.read_bytes())
        ca = client_ca.read_bytes() if client_ca is not None else None
    except OSError as exc:
        raise UsageError(f"cannot read TLS file: {exc}") from exc
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )


def channel_credentials(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """TLS channel credentials: the server's CA, and the client pair for mutual TLS.
    (Bearer tokens travel as call metadata, so they work on any channel.)"""
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes() if ca else None,
            private_key=key.read_bytes() if key else None,
            certificate_chain=cert.read_bytes() if cert else None,
        )
    except OSError as exc:
        raise UsageError(f"cannot read TLS file: {exc}") from exc
    return creds

"""One-line hints for gRPC connection failures (TLS and mutual TLS misconfiguration).

gRPC reports every failed connection as UNAVAILABLE with a ``details`` string in which
the reason is buried, e.g.::

    failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:40381: Tls
    handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL
    routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired: OK

:func:`explain` turns such a failure into a hint that names the likely misconfiguration
and the ``vattr audit`` option that fixes it. The patterns are the ones gRPC 1.85
(BoringSSL) produces; ``tests/test_transport_errors.py`` holds the real strings, recorded
from real failed connections. Some failures look the same on the wire: when the server
closes the connection right after the handshake the client only sees "Socket closed",
which means "the server wants TLS" for a plaintext client and "the server refused the
client certificate" for a TLS client; ``tls`` tells the two apart.
"""

from __future__ import annotations

# Codes under which gRPC reports a connection that could not be set up. Other codes come
# from the Prover's own answers, whose text must not be mistaken for a handshake failure.
TRANSPORT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})

EXPIRED = (
    "TLS handshake failed: the Prover's certificate has expired (or is not valid yet); "
    "the Prover's operator must renew it"
)
UNTRUSTED = (
    "TLS handshake failed: the Prover's certificate is not signed by the CA given with "
    "--tls-ca (or it is otherwise invalid, e.g. expired or not for server use)"
)
HOSTNAME = (
    "TLS handshake failed: the Prover's certificate does not name the host checked (the one "
    "in --prover, or --tls-server-name if given); use a name listed in the certificate"
)
SERVER_NOT_TLS = (
    "TLS handshake failed: the Prover does not speak TLS on that port (a plaintext server?); "
    "leave out --tls-ca/--tls-cert/--tls-key, or start the Prover with --tls-cert/--tls-key"
)
SERVER_WANTS_TLS = (
    "the Prover closed the connection during setup: it probably requires TLS; give --tls-ca "
    "with the CA certificate of the Prover's server certificate"
)
CLIENT_CERT_REFUSED = (
    "the Prover closed the connection after the TLS handshake: it probably requires a client "
    "certificate (mutual TLS) that it trusts; give --tls-cert/--tls-key signed by the CA "
    "the Prover was started with (--client-ca)"
)
REFUSED = (
    "nothing accepts connections at that address: is the Prover running, and are the host "
    "and port in --prover right?"
)


def explain(code_name: str, details: str, *, tls: bool) -> str:
    """A one-line hint for a failed gRPC call, or ``""`` when there is nothing to add.

    ``code_name`` is the status code's name (``grpc.StatusCode.X.name``), ``details`` the
    call's details string and ``tls`` whether the client connected with TLS.
    """
    if code_name not in TRANSPORT_CODES:
        return ""
    text = " ".join(details.split()).lower()
    if "certificate has expired" in text or "certificate is not yet valid" in text:
        return EXPIRED
    if "hostname verification check failed" in text:
        return HOSTNAME
    if "certificate_verify_failed" in text or "certificate verify failed" in text:
        return UNTRUSTED
    if "wrong_version_number" in text:
        return SERVER_NOT_TLS
    if "socket closed" in text:
        return CLIENT_CERT_REFUSED if tls else SERVER_WANTS_TLS
    if "connection refused" in text:
        return REFUSED
    return ""

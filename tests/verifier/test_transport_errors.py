"""Golden values for :func:`verifier.transport_errors.explain`.

Every ``details`` string below was recorded from a real failed connection (grpcio 1.85.1,
Linux, loopback): a real gRPC server with certificates from ``tests/tls_helpers.py`` and
the production :class:`verifier.client.ProverClient`, reading ``code().name`` and
``details()`` of the ``grpc.Call`` behind the ``TransportError``. Each misconfiguration gave
the same string in 30 of 30 attempts (only the port changes). ``tests/test_tls_errors.py``
checks the same classification against live ``vattr serve`` processes.
"""

from __future__ import annotations

import pytest

from verifier.transport_errors import explain

# -- the recorded failures -------------------------------------------------------------------
# server certificate expired (valid from 30 days ago until yesterday), client trusts its CA
EXPIRED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:40381: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
    "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired: OK"
)
# server certificate valid only from the day after tomorrow
NOT_YET_VALID = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:38177: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
    "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate is not yet valid: OK"
)
# client's --tls-ca is an unrelated CA
WRONG_CA = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:43217: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
    "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer "
    "certificate: OK"
)
# the same misconfiguration seen by Python's ssl module (not gRPC), same server and CA
WRONG_CA_PYTHON_SSL = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
    "certificate (_ssl.c:1006)"
)
# server certificate for wrong-host.invalid; the same string for a 127.0.0.1 target, a
# localhost target, and ssl_target_name_override (--tls-server-name) naming another host
WRONG_HOST = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:36517: Custom "
    "verification check failed with error: UNAUTHENTICATED: Hostname Verification Check "
    "failed."
)
# TLS client against a plaintext server
TLS_CLIENT_PLAINTEXT_SERVER = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:44799: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL "
    "routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate verification "
    "context: OK"
)
# plaintext client against a TLS server
PLAINTEXT_CLIENT_TLS_SERVER = (
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:40427: "
    "Socket closed"
)
# mutual TLS refusing the client: no certificate, one from another CA, or a server
# certificate (no clientAuth) all gave this string (TLS 1.3: the server checks the client
# certificate after the client has finished its side of the handshake)
MTLS_REFUSED = (
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:45321: "
    "Socket closed"
)
# nothing listening on the port
REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to "
    "connect to remote host: Connection refused"
)
# a health check with wait_for_ready=True against the expired server: the reason is lost
WAIT_FOR_READY_DEADLINE = "Deadline Exceeded"
# prover/auth.py's answer to a missing bearer token
BEARER_REFUSED = "missing or invalid bearer token"

# -- the hints (golden) ----------------------------------------------------------------------
HINT_EXPIRED = (
    "TLS handshake failed: the Prover's certificate has expired (or is not valid yet); "
    "the Prover's operator must renew it"
)
HINT_UNTRUSTED = (
    "TLS handshake failed: the Prover's certificate is not signed by the CA given with "
    "--tls-ca (or it is otherwise invalid, e.g. expired or not for server use)"
)
HINT_HOSTNAME = (
    "TLS handshake failed: the Prover's certificate does not name the host checked (the one "
    "in --prover, or --tls-server-name if given); use a name listed in the certificate"
)
HINT_SERVER_NOT_TLS = (
    "TLS handshake failed: the Prover does not speak TLS on that port (a plaintext server?); "
    "leave out --tls-ca/--tls-cert/--tls-key, or start the Prover with --tls-cert/--tls-key"
)
HINT_SERVER_WANTS_TLS = (
    "the Prover closed the connection during setup: it probably requires TLS; give --tls-ca "
    "with the CA certificate of the Prover's server certificate"
)
HINT_CLIENT_CERT = (
    "the Prover closed the connection after the TLS handshake: it probably requires a client "
    "certificate (mutual TLS) that it trusts; give --tls-cert/--tls-key signed by the CA "
    "the Prover was started with (--client-ca)"
)
HINT_REFUSED = (
    "nothing accepts connections at that address: is the Prover running, and are the host "
    "and port in --prover right?"
)

GOLDEN = [
    ("UNAVAILABLE", EXPIRED, True, HINT_EXPIRED),
    ("UNAVAILABLE", NOT_YET_VALID, True, HINT_EXPIRED),
    ("UNAVAILABLE", WRONG_CA, True, HINT_UNTRUSTED),
    ("UNAVAILABLE", WRONG_CA_PYTHON_SSL, True, HINT_UNTRUSTED),
    ("UNAVAILABLE", WRONG_HOST, True, HINT_HOSTNAME),
    ("UNAVAILABLE", TLS_CLIENT_PLAINTEXT_SERVER, True, HINT_SERVER_NOT_TLS),
    ("UNAVAILABLE", PLAINTEXT_CLIENT_TLS_SERVER, False, HINT_SERVER_WANTS_TLS),
    ("UNAVAILABLE", MTLS_REFUSED, True, HINT_CLIENT_CERT),
    ("UNAVAILABLE", REFUSED, False, HINT_REFUSED),
    ("UNAVAILABLE", REFUSED, True, HINT_REFUSED),
    ("DEADLINE_EXCEEDED", WAIT_FOR_READY_DEADLINE, True, ""),
    ("UNAUTHENTICATED", BEARER_REFUSED, False, ""),
]
IDS = [
    "expired",
    "not-yet-valid",
    "wrong-ca",
    "wrong-ca-python-ssl",
    "wrong-host",
    "tls-client-plaintext-server",
    "plaintext-client-tls-server",
    "mtls-refused",
    "refused-plaintext",
    "refused-tls",
    "deadline-without-reason",
    "application-error",
]


@pytest.mark.parametrize(("code", "details", "tls", "hint"), GOLDEN, ids=IDS)
def test_golden_hints(code: str, details: str, tls: bool, hint: str) -> None:
    assert explain(code, details, tls=tls) == hint


def test_hints_are_single_lines() -> None:
    hints = {explain(code, details, tls=tls) for code, details, tls, _ in GOLDEN}
    assert len(hints - {""}) == 7, "every recorded misconfiguration has its own hint"
    for hint in hints:
        assert "\n" not in hint
        assert len(hint) < 240, hint


def test_socket_closed_depends_on_whether_the_client_used_tls() -> None:
    """One string, two causes: the flag, not the text, decides."""
    assert MTLS_REFUSED.endswith(PLAINTEXT_CLIENT_TLS_SERVER.rsplit(":", 1)[-1])
    assert explain("UNAVAILABLE", MTLS_REFUSED, tls=False) == HINT_SERVER_WANTS_TLS
    assert explain("UNAVAILABLE", PLAINTEXT_CLIENT_TLS_SERVER, tls=True) == HINT_CLIENT_CERT


@pytest.mark.parametrize(
    "code", ["INVALID_ARGUMENT", "INTERNAL", "FAILED_PRECONDITION", "UNKNOWN", "OK"]
)
def test_application_errors_quoting_tls_words_get_no_hint(code: str) -> None:
    """Only connection-level codes are explained: a Prover's own answer that happens to
    mention a certificate is not a handshake failure."""
    assert explain(code, EXPIRED, tls=True) == ""
    assert explain(code, MTLS_REFUSED, tls=True) == ""


def test_whitespace_and_case_do_not_matter() -> None:
    wrapped = WRONG_HOST.replace(" ", "\n  ", 3).upper()
    assert explain("UNAVAILABLE", wrapped, tls=True) == HINT_HOSTNAME


def test_expiry_wins_over_the_generic_verify_failure() -> None:
    """Both strings carry CERTIFICATE_VERIFY_FAILED; the specific reason must decide."""
    assert "CERTIFICATE_VERIFY_FAILED" in EXPIRED
    assert explain("UNAVAILABLE", EXPIRED, tls=True) != explain("UNAVAILABLE", WRONG_CA, tls=True)


def test_unrelated_failures_get_no_hint() -> None:
    assert explain("UNAVAILABLE", "", tls=True) == ""
    assert explain("UNAVAILABLE", "failed to connect to all addresses", tls=False) == ""

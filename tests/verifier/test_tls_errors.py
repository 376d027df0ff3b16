"""TLS and mutual-TLS misconfiguration against REAL ``vattr serve`` processes: what each side
reports.

Five Provers run as subprocesses for the whole module (``--port 0``, certificates from
``tests/tls_helpers.py``), each with a thread draining its stderr. Every scenario connects
one misconfigured production :class:`ProverClient` and checks

* the client: the call fails with UNAVAILABLE and :func:`verifier.transport_errors.explain`
  turns its details into the hint for that misconfiguration;
* the server: its stderr gets the handshake-failure line gRPC logs for that case.

gRPC core decides what the server logs. With ``GRPC_VERBOSITY`` and ``GRPC_TRACE`` unset
(grpcio 1.85, where unset behaves like ``INFO``) the server logs a line when IT rejects the
connection (plaintext client, mutual TLS without an acceptable client certificate) and when
the client's SNI is not in its certificate. When the CLIENT rejects the server's
certificate (expired, unknown CA, wrong host name) the server is not told why; the expired
and plaintext-server cases therefore run with a trace enabled (``handshaker`` / ``http``)
to show what an operator can turn on. ``GRPC_VERBOSITY=ERROR`` hides the ``I`` lines.
The client's own error message (``ProverClient`` and ``vattr audit``) carries the hint.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from attribution.v1 import prover_pb2 as pb
from tests.tls_helpers import PKI, WRONG_HOST, make_pki
from verifier import transport_errors as te
from verifier.client import ClientTLS, ProverClient, TransportError

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
CALL_TIMEOUT = 5.0
LOG_WAIT = 10.0  # seconds to wait for the server's log line
SERVING = re.compile(r"^serving synthetic on 127\.0\.0\.1:(\d+) ")
GRPC_ENV = ("GRPC_VERBOSITY", "GRPC_TRACE")


# -- the Prover subprocesses -----------------------------------------------------------------
@dataclass
class ProverProcess:
    """A running ``vattr serve`` and everything it wrote to stderr so far."""

    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_for(self, pattern: str, since: int = 0, timeout: float = LOG_WAIT) -> str | None:
        """The first stderr line at index >= ``since`` matching ``pattern``, or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[since:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(left)

    def text(self, since: int = 0) -> str:
        with self.cond:
            return "\n".join(self.lines[since:])


def start_prover(
    name: str, args: list[str], store: Path, extra_env: dict[str, str]
) -> ProverProcess:
    env = {k: v for k, v in os.environ.items() if k not in GRPC_ENV}
    env.update(extra_env)
    cmd = [sys.executable, "-m", "vattr", "serve", "--task", "synthetic", "--port", "0"]
    cmd += ["--executor", "serial", "--store", str(store), *args]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    p = ProverProcess(name, proc)
    threading.Thread(target=p.drain, name=f"stderr-{name}", daemon=True).start()
    return p


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def provers(
    pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ProverProcess]]:
    """All five Provers, started in parallel; stopped with SIGTERM at the end."""
    work = tmp_path_factory.mktemp("provers")

    def tls(leaf: str) -> list[str]:
        files = getattr(pki, leaf)
        return ["--tls-cert", str(files.cert), "--tls-key", str(files.key)]

    configs: dict[str, tuple[list[str], dict[str, str]]] = {
        "tls": (tls("server"), {}),
        "wrong-host": (tls("server_wrong_host"), {}),
        "expired": (tls("server_expired"), {"GRPC_TRACE": "handshaker"}),
        "mtls": ([*tls("server"), "--client-ca", str(pki.ca.cert_path)], {}),
        "plaintext": ([], {"GRPC_TRACE": "http"}),
    }
    running = {
        name: start_prover(name, args, work / name, env) for name, (args, env) in configs.items()
    }
    try:
        for p in running.values():
            line = p.wait_for(SERVING.pattern, timeout=60)
            if line is None:
                p.proc.kill()
                raise AssertionError(f"vattr serve ({p.name}) did not start:\n{p.text()}")
            match = SERVING.search(line)
            assert match is not None
            p.port = int(match.group(1))
        yield running
    finally:
        for p in running.values():
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in running.values():
            try:
                p.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(timeout=10)


# -- the scenarios ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    server: str
    tls: Callable[[PKI], ClientTLS | None]
    hint: str
    server_log: str | None  # regex of the server's stderr line; None: gRPC logs nothing


HANDSHAKE = r"ssl_transport_security\.cc:\d+\] Handshake failed with error SSL_ERROR_SSL: "

SCENARIOS: dict[str, Scenario] = {
    "expired-server-certificate": Scenario(
        "expired",
        lambda k: ClientTLS(k.ca.cert_path),
        te.EXPIRED,
        # only with GRPC_TRACE=handshaker, and it does not say why
        r"handshake manager \S+: Failed with error: UNAVAILABLE: Handshake read failed "
        r"\(Socket closed\)",
    ),
    "client-trusts-another-ca": Scenario(
        "tls", lambda k: ClientTLS(k.other_ca.cert_path), te.UNTRUSTED, None
    ),
    "wrong-hostname": Scenario(
        "wrong-host", lambda k: ClientTLS(k.ca.cert_path), te.HOSTNAME, None
    ),
    # the name "localhost" given as the TLS name rather than resolved, so that a resolver
    # trying ::1 first (nothing listens there) cannot change the client's last error
    "wrong-hostname-localhost": Scenario(
        "wrong-host",
        lambda k: ClientTLS(k.ca.cert_path, server_name="localhost"),
        te.HOSTNAME,
        r"ssl_transport_security\.cc:\d+\] No match found for server name: localhost$",
    ),
    "server-name-override-not-in-certificate": Scenario(
        "tls",
        lambda k: ClientTLS(k.ca.cert_path, server_name="other.example"),
        te.HOSTNAME,
        r"ssl_transport_security\.cc:\d+\] No match found for server name: other\.example$",
    ),
    "plaintext-client-tls-server": Scenario(
        "tls", lambda k: None, te.SERVER_WANTS_TLS, HANDSHAKE + r".*WRONG_VERSION_NUMBER"
    ),
    "tls-client-plaintext-server": Scenario(
        "plaintext",
        lambda k: ClientTLS(k.ca.cert_path),
        te.SERVER_NOT_TLS,
        # only with GRPC_TRACE=http: the TLS ClientHello (0x16) instead of the HTTP/2 preface
        r"Failed parsing HTTP/2 \(Connect string mismatch: expected 'P' \(80\) got '.' \(22\)",
    ),
    "mtls-without-client-certificate": Scenario(
        "mtls",
        lambda k: ClientTLS(k.ca.cert_path),
        te.CLIENT_CERT_REFUSED,
        HANDSHAKE + r".*PEER_DID_NOT_RETURN_A_CERTIFICATE",
    ),
    "mtls-client-certificate-from-another-ca": Scenario(
        "mtls",
        lambda k: ClientTLS(k.ca.cert_path, k.client_other_ca.cert, k.client_other_ca.key),
        te.CLIENT_CERT_REFUSED,
        HANDSHAKE + r".*CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
    ),
    "mtls-server-certificate-as-client": Scenario(
        "mtls",
        lambda k: ClientTLS(k.ca.cert_path, k.server.cert, k.server.key),
        te.CLIENT_CERT_REFUSED,
        HANDSHAKE + r".*CERTIFICATE_VERIFY_FAILED: unsupported certificate purpose",
    ),
}


def fail_once(p: ProverProcess, s: Scenario, pki: PKI) -> tuple[TransportError, grpc.Call]:
    """One DescribeTasks call that must fail; its TransportError and the gRPC call."""
    with (
        ProverClient(f"127.0.0.1:{p.port}", tls=s.tls(pki), timeout=CALL_TIMEOUT) as client,
        pytest.raises(TransportError) as info,
    ):
        client.call("DescribeTasks", pb.DescribeTasksRequest())
    cause = info.value.__cause__
    assert isinstance(cause, grpc.Call), f"no gRPC status behind {info.value!r}"
    return info.value, cause


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_both_sides_report_the_misconfiguration(
    provers: dict[str, ProverProcess], pki: PKI, name: str
) -> None:
    s = SCENARIOS[name]
    p = provers[s.server]
    mark = p.mark()
    err, call = fail_once(p, s, pki)
    details = call.details() or ""
    assert call.code() == grpc.StatusCode.UNAVAILABLE, err
    hint = te.explain(call.code().name, details, tls=s.tls(pki) is not None)
    assert hint == s.hint, f"client details: {details!r}"
    if s.server_log is not None:
        line = p.wait_for(s.server_log, since=mark)
        assert line is not None, (
            f"no line matching {s.server_log!r} in the {s.server} Prover's stderr "
            f"(GRPC_VERBOSITY unset; did gRPC change its default?):\n{p.text(mark)}"
        )
    assert p.proc.poll() is None, f"the {s.server} Prover died:\n{p.text()}"


def test_correct_configuration_still_connects(provers: dict[str, ProverProcess], pki: PKI) -> None:
    """The control: the same Provers serve clients that are configured right (so the
    failures above are the misconfiguration, not a broken server)."""
    good = {
        "tls": ClientTLS(pki.ca.cert_path),
        "wrong-host": ClientTLS(pki.ca.cert_path, server_name=WRONG_HOST),
        "mtls": ClientTLS(pki.ca.cert_path, pki.client.cert, pki.client.key),
        "plaintext": None,
    }
    for server, tls in good.items():
        target = f"127.0.0.1:{provers[server].port}"
        with ProverClient(target, tls=tls, timeout=CALL_TIMEOUT) as client:
            desc = client.call("DescribeTasks", pb.DescribeTasksRequest())
        assert [t.task.name for t in desc.tasks] == ["synthetic"], server


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_client_error_message_carries_the_hint(
    provers: dict[str, ProverProcess], pki: PKI, name: str
) -> None:
    s = SCENARIOS[name]
    err, _ = fail_once(provers[s.server], s, pki)
    assert s.hint in str(err)


# -- the `vattr audit` command line ----------------------------------------------------------
@dataclass(frozen=True)
class AuditRun:
    returncode: int
    stderr: str
    report: Path


@pytest.fixture(scope="module")
def audit_without_client_certificate(
    provers: dict[str, ProverProcess], pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> AuditRun:
    """``vattr audit`` against the mutual-TLS Prover without a client certificate."""
    report = tmp_path_factory.mktemp("audit") / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in GRPC_ENV}
    cmd = [sys.executable, "-m", "vattr", "audit", "--task", "synthetic"]
    cmd += ["--prover", f"127.0.0.1:{provers['mtls'].port}", "--epsilon", "0.2"]
    cmd += ["--tls-ca", str(pki.ca.cert_path), "--timeout", "2", "--quiet"]
    cmd += ["--executor", "serial", "--report", str(report)]
    res = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return AuditRun(res.returncode, res.stderr, report)


def test_vattr_audit_fails_with_one_error_line(audit_without_client_certificate: AuditRun) -> None:
    run = audit_without_client_certificate
    assert run.returncode == 3, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("vattr: error:")]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert not run.report.exists()


def test_vattr_audit_error_carries_the_hint(audit_without_client_certificate: AuditRun) -> None:
    assert te.CLIENT_CERT_REFUSED in audit_without_client_certificate.stderr

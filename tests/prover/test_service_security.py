"""Transport security, authentication, sessions and bad input against a REAL Prover server.

Every server binds 127.0.0.1 on port 0 (except the one ``vattr serve --host 0.0.0.0
--insecure`` case, which must bind a non-loopback address) and is stopped in teardown.
Clients are the production :class:`verifier.client.ProverClient`; status codes are read
from the ``grpc.RpcError`` behind its :class:`TransportError`. Protocol messages for the
out-of-order cases come from a hand-driven :class:`attribution.protocol.verifier.VerifierSession`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attribution.commitments import SigningKey
from attribution.execution import SerialExecutor
from attribution.execution.executors import Block, BlockResult, Executor
from attribution.execution.plan import SubsetPlan
from attribution.protocol.common import task_info
from attribution.protocol.messages import ChallengeReveal
from attribution.protocol.planner import Plan, plan_run
from attribution.protocol.verifier import VerifierSession
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask, Task
from attribution.tasks.spec import TaskSpec
from attribution.v1 import prover_pb2 as pb
from attribution.v1 import prover_pb2_grpc
from prover.served import ServedTask, build_served
from prover.server import SERVICE_NAME, RunningServer, TLSConfig, start_server
from prover.service import ProverServicer
from tests.tls_helpers import PKI, WRONG_HOST, CertFiles, make_pki
from vattr.cli import main as vattr_main
from vattr.redteam.provers import red_team_prover
from verifier.audit import AuditResult, run_audit
from verifier.client import ClientTLS, ProverClient, TransportError

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
FAIL_TIMEOUT = 5.0  # deadline of calls that are expected to fail
TOKEN = "s3cret"  # noqa: S105 -- a test credential
ALICE, BOB = "alice-token", "bob-token"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 -- the non-loopback case of `vattr serve`
Code = grpc.StatusCode


# -- shared objects ------------------------------------------------------------------------
@dataclass(frozen=True)
class Env:
    task: Task
    honest: ServedTask
    red_team: ServedTask
    red_team_factory: Callable[..., ProverServicer]
    plan: Plan
    hint: float  # the synthetic oracle's B_>=2 (the honest residual), for planning


@pytest.fixture(scope="module")
def env() -> Env:
    return build_env()


def build_env() -> Env:
    """The synthetic task, its honest and scale-0.5 Provers and a plan at eps = 0.2."""
    task = load_task(resolve_spec("synthetic"))
    assert isinstance(task, OracleTask)
    hint = task.oracle.exact().B_ge2
    red_team, red_team_factory = red_team_prover(task, "exact", None, "scale:0.5")
    return Env(
        task=task,
        honest=build_served(task, "exact", None),
        red_team=red_team,
        red_team_factory=red_team_factory,
        # sizes fixed at open: these tests drive the messages by hand (pilot-planned
        # sessions over gRPC: tests/verifier/test_audit_grpc.py)
        plan=plan_run(task_info(task), 0.2, 0.05, hint=hint, planning="fixed"),
        hint=hint,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


class GatedExecutor:
    """The real :class:`SerialExecutor`, but training starts only once ``gate`` is set, so a
    test can act while the Prover's job is provably still running."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self._inner = SerialExecutor()

    def run(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, blocks: Sequence[Block]
    ) -> Iterator[BlockResult]:
        self.started.set()
        if not self.gate.wait(timeout=30):
            raise RuntimeError("the test never opened the gate")
        yield from self._inner.run(spec, digest, plan, blocks)

    def close(self) -> None:
        self.gate.set()
        self._inner.close()


StartServer = Callable[..., RunningServer]


@pytest.fixture
def serve(env: Env, tmp_path: Path) -> Iterator[StartServer]:
    """Factory: start a Prover on 127.0.0.1:0 (honest unless ``served`` is given); every
    server started is stopped in teardown."""
    started: list[tuple[RunningServer, Executor]] = []

    def start(
        served: ServedTask | None = None, *, executor: Executor | None = None, **kwargs: Any
    ) -> RunningServer:
        ex = executor if executor is not None else SerialExecutor()
        running = start_server(
            served or env.honest,
            SigningKey.generate(),
            ex,
            tmp_path / f"store-{len(started)}",
            host="127.0.0.1",
            port=0,
            **kwargs,
        )
        started.append((running, ex))
        return running

    yield start
    for running, ex in started:
        ex.close()  # opens a GatedExecutor's gate so that its job thread ends
        running.stop(0)


def target(running: RunningServer, host: str = "127.0.0.1") -> str:
    return f"{host}:{running.port}"


def status_of(fn: Callable[[], object]) -> grpc.StatusCode:
    """Run ``fn`` (one client call or a drained stream); it must fail: return its code."""
    with pytest.raises(TransportError) as info:
        fn()
    cause = info.value.__cause__
    assert isinstance(cause, grpc.Call), f"no gRPC status behind {info.value!r}"
    return cause.code()


def call_code(c: ProverClient, method: str, request: Any) -> grpc.StatusCode:
    """The status of a unary call that must fail."""
    return status_of(lambda: c.call(method, request))


def stream_code(c: ProverClient, method: str, request: Any) -> grpc.StatusCode:
    """The status of a server-streaming call that must fail (the stream is drained)."""
    return status_of(lambda: list(c.stream(method, request)))


def audit(client: ProverClient, env: Env, work: Path, plan: Plan | None = None) -> AuditResult:
    """One complete audit (no ``wait_ready``: every server here is listening before its
    client exists, and closing a channel right after ``channel_ready_future`` can trip
    gRPC's connectivity-poller thread)."""
    return run_audit(
        client,
        env.task,
        plan or env.plan,
        SigningKey.generate(),
        Path(tempfile.mkdtemp(dir=work)),
        executor="serial",
        quiet=True,
    )


def assert_audit_accepts(running: RunningServer, env: Env, work: Path) -> None:
    """The server still serves a normal, complete audit."""
    with ProverClient(target(running)) as c:
        assert audit(c, env, work).outcome.verdict == "ACCEPT"


@dataclass
class Manual:
    """A session driven by hand: the Verifier's state machine and the session ref."""

    v: VerifierSession
    ref: pb.SessionRef


def new_verifier(env: Env, digest: bytes | None = None) -> VerifierSession:
    return VerifierSession(
        task_info(env.task), digest or env.task.digest, env.plan.params, SigningKey.generate()
    )


def open_session(client: ProverClient, env: Env) -> Manual:
    v = new_verifier(env)
    resp = client.call("OpenSession", pb.OpenSessionRequest(body=v.open().to_bytes()))
    v.on_opened(bytes(resp.body))
    ref = pb.SessionRef(session_id=resp.session_id, session_token=resp.session_token)
    return Manual(v, ref)


def commit_attribution(client: ProverClient, s: Manual) -> None:
    resp = client.call("CommitAttribution", pb.CommitAttributionRequest(session=s.ref))
    s.v.on_attribution_commitment(bytes(resp.body))


def reveal(client: ProverClient, s: Manual, body: bytes) -> pb.RevealChallengeSeedResponse:
    req = pb.RevealChallengeSeedRequest(session=s.ref, body=body)
    resp: pb.RevealChallengeSeedResponse = client.call("RevealChallengeSeed", req)
    return resp


def watch(client: ProverClient, s: Manual, job_id: str) -> list[pb.WatchJobResponse]:
    return list(client.stream("WatchJob", pb.WatchJobRequest(session=s.ref, job_id=job_id)))


# -- 1. TLS ----------------------------------------------------------------------------------
def tls_server(serve: StartServer, leaf: CertFiles, client_ca: Path | None = None) -> RunningServer:
    return serve(tls=TLSConfig(leaf.cert, leaf.key, client_ca))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_audit_accepts(
    serve: StartServer, env: Env, pki: PKI, tmp_path: Path, host: str
) -> None:
    """A whole audit over TLS, the server verified through its SAN (IP and DNS)."""
    running = tls_server(serve, pki.server)
    with ProverClient(target(running, host), tls=ClientTLS(pki.ca.cert_path)) as c:
        assert audit(c, env, tmp_path).outcome.verdict == "ACCEPT"


def test_plaintext_client_against_tls_server_fails(serve: StartServer, pki: PKI) -> None:
    running = tls_server(serve, pki.server)
    with ProverClient(target(running), timeout=FAIL_TIMEOUT) as c:
        assert call_code(c, "DescribeTasks", pb.DescribeTasksRequest()) == Code.UNAVAILABLE


def test_client_trusting_another_ca_fails(serve: StartServer, pki: PKI) -> None:
    running = tls_server(serve, pki.server)
    tls = ClientTLS(pki.other_ca.cert_path)
    with ProverClient(target(running), tls=tls, timeout=FAIL_TIMEOUT) as c:
        assert call_code(c, "DescribeTasks", pb.DescribeTasksRequest()) == Code.UNAVAILABLE


@pytest.mark.parametrize(
    ("server_name", "ok"),
    [(None, False), ("localhost", False), (WRONG_HOST, True)],
    ids=["no-override", "override-to-another-name", "override-matches-cert"],
)
def test_wrong_hostname_needs_matching_override(
    serve: StartServer, pki: PKI, server_name: str | None, ok: bool
) -> None:
    """A certificate for another host fails unless ssl_target_name_override names it."""
    running = tls_server(serve, pki.server_wrong_host)
    tls = ClientTLS(pki.ca.cert_path, server_name=server_name)
    with ProverClient(target(running), tls=tls, timeout=FAIL_TIMEOUT) as c:
        if ok:
            assert c.call("DescribeTasks", pb.DescribeTasksRequest()).tasks
        else:
            assert call_code(c, "DescribeTasks", pb.DescribeTasksRequest()) == Code.UNAVAILABLE


def test_expired_server_certificate_fails(serve: StartServer, pki: PKI) -> None:
    running = tls_server(serve, pki.server_expired)
    with ProverClient(target(running), tls=ClientTLS(pki.ca.cert_path), timeout=FAIL_TIMEOUT) as c:
        assert call_code(c, "DescribeTasks", pb.DescribeTasksRequest()) == Code.UNAVAILABLE


# -- 2. mutual TLS ---------------------------------------------------------------------------
def test_mtls_client_with_valid_certificate_audits(
    serve: StartServer, env: Env, pki: PKI, tmp_path: Path
) -> None:
    running = tls_server(serve, pki.server, client_ca=pki.ca.cert_path)
    tls = ClientTLS(pki.ca.cert_path, pki.client.cert, pki.client.key)
    with ProverClient(target(running), tls=tls) as c:
        assert audit(c, env, tmp_path).outcome.verdict == "ACCEPT"


@pytest.mark.parametrize(
    "client_cert",
    [None, "client_other_ca", "server"],
    ids=["no-certificate", "certificate-from-another-ca", "server-certificate-no-clientAuth"],
)
def test_mtls_refuses_client(serve: StartServer, pki: PKI, client_cert: str | None) -> None:
    running = tls_server(serve, pki.server, client_ca=pki.ca.cert_path)
    leaf: CertFiles | None = getattr(pki, client_cert) if client_cert else None
    tls = ClientTLS(pki.ca.cert_path, leaf.cert if leaf else None, leaf.key if leaf else None)
    with ProverClient(target(running), tls=tls, timeout=FAIL_TIMEOUT) as c:
        assert call_code(c, "DescribeTasks", pb.DescribeTasksRequest()) == Code.UNAVAILABLE


# -- 3. bearer tokens ------------------------------------------------------------------------
SERVICE = pb.DESCRIPTOR.services_by_name["ProverService"]


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
@pytest.mark.parametrize("token", [None, "wrong", "s3cre", TOKEN + "x"])
def test_missing_or_wrong_token_is_unauthenticated(
    serve: StartServer, method: str, token: str | None
) -> None:
    """Every RPC, unary or server-streaming (WatchJob, Stream*), is refused with
    UNAUTHENTICATED by a handler of the right cardinality."""
    running = serve(tokens=[TOKEN.encode()])
    desc = SERVICE.methods_by_name[method]
    request = getattr(pb, desc.input_type.name)()
    with ProverClient(target(running), token=token, timeout=FAIL_TIMEOUT) as c:
        fails = stream_code if desc.server_streaming else call_code
        code = fails(c, method, request)
    assert code == Code.UNAUTHENTICATED


def test_token_without_bearer_prefix_is_unauthenticated(serve: StartServer) -> None:
    running = serve(tokens=[TOKEN.encode()])
    with grpc.insecure_channel(target(running)) as ch:
        stub = prover_pb2_grpc.ProverServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.DescribeTasks(
                pb.DescribeTasksRequest(), metadata=(("authorization", TOKEN),), timeout=5
            )
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == Code.UNAUTHENTICATED


def test_right_token_runs_whole_audit(serve: StartServer, env: Env, tmp_path: Path) -> None:
    running = serve(tokens=[b"other-token", TOKEN.encode()])
    with ProverClient(target(running), token=TOKEN) as c:
        assert audit(c, env, tmp_path).outcome.verdict == "ACCEPT"


def test_health_answers_serving_without_token(serve: StartServer) -> None:
    running = serve(tokens=[TOKEN.encode()])
    with grpc.insecure_channel(target(running)) as ch:
        health: Any = health_pb2_grpc.HealthStub(ch)  # the stubs' types lack Check
        for service in ("", SERVICE_NAME):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


# -- 4. sessions -----------------------------------------------------------------------------
def session_codes(c: ProverClient, ref: pb.SessionRef) -> set[grpc.StatusCode]:
    """The codes of one unary and two server-streaming calls on ``ref`` (all must fail)."""
    return {
        call_code(c, "CommitAttribution", pb.CommitAttributionRequest(session=ref)),
        stream_code(c, "StreamAttribution", pb.StreamAttributionRequest(session=ref)),
        stream_code(c, "WatchJob", pb.WatchJobRequest(session=ref)),
    }


def test_session_capability_checks(serve: StartServer, env: Env, tmp_path: Path) -> None:
    """Another session's (or a wrong) token -> PERMISSION_DENIED, an unknown id ->
    NOT_FOUND, an id of the wrong length -> INVALID_ARGUMENT, on unary and streaming RPCs
    alike; the rightful owners are unaffected."""
    running = serve()
    with ProverClient(target(running), timeout=10) as c:
        a, b = open_session(c, env), open_session(c, env)
        sid, tok = bytes(a.ref.session_id), bytes(a.ref.session_token)
        ref = pb.SessionRef
        cases = {
            "another session's token": (
                ref(session_id=sid, session_token=b.ref.session_token),
                Code.PERMISSION_DENIED,
            ),
            "no token": (ref(session_id=sid), Code.PERMISSION_DENIED),
            "token off by one byte": (
                ref(session_id=sid, session_token=tok[:-1] + bytes([tok[-1] ^ 1])),
                Code.PERMISSION_DENIED,
            ),
            "unknown id": (ref(session_id=os.urandom(16), session_token=tok), Code.NOT_FOUND),
            "15-byte id": (ref(session_id=sid[:15], session_token=tok), Code.INVALID_ARGUMENT),
            "17-byte id": (ref(session_id=sid + b"\0", session_token=tok), Code.INVALID_ARGUMENT),
            "empty id": (ref(session_token=tok), Code.INVALID_ARGUMENT),
        }
        for name, (bad, expected) in cases.items():
            assert session_codes(c, bad) == {expected}, name
        commit_attribution(c, a)
        commit_attribution(c, b)
    assert_audit_accepts(running, env, tmp_path)


# -- 5. bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"", b"\x00\xff\xfe garbage \x80", b"{}", b"[1, 2]", b'{"type": "open"}', b"not json"],
    ids=["empty", "binary", "empty-object", "list", "missing-fields", "text"],
)
def test_garbage_open_session_is_invalid_argument(
    serve: StartServer, env: Env, tmp_path: Path, body: bytes
) -> None:
    running = serve()
    with ProverClient(target(running), timeout=10) as c:
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.INVALID_ARGUMENT
    assert_audit_accepts(running, env, tmp_path)


def test_non_canonical_open_session_is_invalid_argument(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    """The same message with one extra space is not canonical: hashing would diverge."""
    running = serve()
    body = new_verifier(env).open().to_bytes().replace(b",", b", ", 1)
    with ProverClient(target(running), timeout=10) as c:
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.INVALID_ARGUMENT
    assert_audit_accepts(running, env, tmp_path)


def test_open_session_for_another_task_is_invalid_argument(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    running = serve()
    body = new_verifier(env, digest=bytes(32)).open().to_bytes()
    with ProverClient(target(running), timeout=10) as c:
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.INVALID_ARGUMENT
    assert_audit_accepts(running, env, tmp_path)


@pytest.mark.parametrize(
    "override",
    [{"outputs": ["a"]}, {"n_pairs": [1.5, 1, 1]}, {"n_single": 0.5}],
    ids=["outputs-str", "n_pairs-float", "n_single-float"],
)
def test_open_session_with_mistyped_params_is_invalid_argument(
    serve: StartServer, env: Env, override: dict[str, Any]
) -> None:
    running = serve()
    msg = new_verifier(env).open()
    body = dataclasses.replace(msg, params={**msg.params, **override}).to_bytes()
    with ProverClient(target(running), timeout=10) as c:
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.INVALID_ARGUMENT


def test_duplicate_open_session_is_already_exists(serve: StartServer, env: Env) -> None:
    running = serve()
    body = new_verifier(env).open().to_bytes()
    with ProverClient(target(running), timeout=10) as c:
        c.call("OpenSession", pb.OpenSessionRequest(body=body))
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.ALREADY_EXISTS


def test_oversized_request_is_resource_exhausted(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    running = serve()
    body = b"x" * (4 * 1024 * 1024 + 1024)
    with ProverClient(target(running), timeout=10) as c:
        code = call_code(c, "OpenSession", pb.OpenSessionRequest(body=body))
    assert code == Code.RESOURCE_EXHAUSTED
    assert_audit_accepts(running, env, tmp_path)


def test_steps_out_of_order_are_failed_precondition(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    """Streams before their commitments, reveal before the attribution commitment,
    CommitEvaluations before the reveal: FAILED_PRECONDITION, and the session then
    completes normally."""
    running = serve()
    with ProverClient(target(running), timeout=10) as c:
        s = open_session(c, env)
        good_reveal = ChallengeReveal(seed=s.v.secrets.seed_e, salt=s.v.secrets.salt_e)
        ref = s.ref
        stream_a = pb.StreamAttributionRequest(session=ref)
        assert stream_code(c, "StreamAttribution", stream_a) == Code.FAILED_PRECONDITION
        assert status_of(lambda: reveal(c, s, good_reveal.to_bytes())) == Code.FAILED_PRECONDITION
        commit_attribution(c, s)
        commit_f = pb.CommitEvaluationsRequest(session=ref)
        assert call_code(c, "CommitEvaluations", commit_f) == Code.FAILED_PRECONDITION
        stream_f = pb.StreamEvaluationsRequest(session=ref)
        assert stream_code(c, "StreamEvaluations", stream_f) == Code.FAILED_PRECONDITION
        # the session is intact: the rest of the protocol runs
        body = s.v.reveal_challenge().to_bytes()
        assert body == good_reveal.to_bytes()
        job = reveal(c, s, body)
        assert watch(c, s, job.job_id)[-1].state == pb.JOB_STATE_DONE
        evals = c.call("CommitEvaluations", pb.CommitEvaluationsRequest(session=ref))
        s.v.on_evaluation_commitment(bytes(evals.body))
        n = s.v.layout.n_rows * env.task.n_outputs
        got = c.fetch_vector("StreamEvaluations", pb.StreamEvaluationsRequest(session=ref), n)
        s.v.receive_evaluations(got)
        assert s.v.failure is None
    assert_audit_accepts(running, env, tmp_path)


def test_commit_evaluations_while_job_runs_is_failed_precondition(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    gated = GatedExecutor()
    running = serve(executor=gated)
    with ProverClient(target(running), timeout=10) as c:
        s = open_session(c, env)
        commit_attribution(c, s)
        job = reveal(c, s, s.v.reveal_challenge().to_bytes())
        assert gated.started.wait(timeout=10), "the Prover never started its training job"
        req = pb.CommitEvaluationsRequest(session=s.ref)
        assert call_code(c, "CommitEvaluations", req) == Code.FAILED_PRECONDITION
        stream_f = pb.StreamEvaluationsRequest(session=s.ref)
        assert stream_code(c, "StreamEvaluations", stream_f) == Code.FAILED_PRECONDITION
        # an unknown job id on a valid session
        assert status_of(lambda: watch(c, s, "no-such-job")) == Code.NOT_FOUND
        gated.gate.set()
        updates = watch(c, s, job.job_id)
        assert updates[-1].state == pb.JOB_STATE_DONE
        assert updates[-1].done == updates[-1].total == job.total
        s.v.on_evaluation_commitment(bytes(c.call("CommitEvaluations", req).body))
    assert_audit_accepts(running, env, tmp_path)


def test_reveal_checks_commitment_and_is_idempotent(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    """A seed that does not match commit_e -> FAILED_PRECONDITION (ProtocolError) and
    changes nothing; the right reveal starts the job; the same bytes again return the same
    job; a different second reveal -> ALREADY_EXISTS."""
    running = serve()
    with ProverClient(target(running), timeout=10) as c:
        s = open_session(c, env)
        commit_attribution(c, s)
        secrets_ = s.v.secrets
        forged = ChallengeReveal(seed=bytes(32), salt=secrets_.salt_e).to_bytes()
        assert status_of(lambda: reveal(c, s, forged)) == Code.FAILED_PRECONDITION
        assert status_of(lambda: reveal(c, s, b"garbage")) == Code.INVALID_ARGUMENT
        body = s.v.reveal_challenge().to_bytes()
        first = reveal(c, s, body)
        again = reveal(c, s, body)
        assert (again.job_id, again.total) == (first.job_id, first.total)
        other = ChallengeReveal(seed=secrets_.seed_c, salt=secrets_.salt_c).to_bytes()
        assert status_of(lambda: reveal(c, s, other)) == Code.ALREADY_EXISTS
        assert status_of(lambda: reveal(c, s, forged)) == Code.ALREADY_EXISTS
        assert watch(c, s, first.job_id)[-1].state == pb.JOB_STATE_DONE
    assert_audit_accepts(running, env, tmp_path)


# -- 6. per-client session limit -------------------------------------------------------------
def test_per_client_session_limit(serve: StartServer, env: Env, tmp_path: Path) -> None:
    """A decided session does not count; two open ones do; the third is refused while the
    first two stay usable."""
    running = serve(max_sessions_per_client=2)
    with ProverClient(target(running), timeout=10) as c:
        assert audit(c, env, tmp_path).outcome.verdict == "ACCEPT"  # decided: frees its slot
        a, b = open_session(c, env), open_session(c, env)
        assert status_of(lambda: open_session(c, env)) == Code.RESOURCE_EXHAUSTED
        for s in (a, b):
            commit_attribution(c, s)
            job = reveal(c, s, s.v.reveal_challenge().to_bytes())
            assert watch(c, s, job.job_id)[-1].state == pb.JOB_STATE_DONE


def test_session_limit_is_per_client_identity(serve: StartServer, env: Env) -> None:
    """Clients with different bearer tokens are different clients."""
    running = serve(tokens=[ALICE.encode(), BOB.encode()], max_sessions_per_client=1)
    with (
        ProverClient(target(running), token=ALICE, timeout=10) as alice,
        ProverClient(target(running), token=BOB, timeout=10) as bob,
    ):
        open_session(alice, env)
        assert status_of(lambda: open_session(alice, env)) == Code.RESOURCE_EXHAUSTED
        commit_attribution(bob, open_session(bob, env))


def test_finished_audits_do_not_exhaust_server_capacity(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    running = serve()
    running.servicer.max_sessions = 2  # the constructor's limit (64), scaled down
    with ProverClient(target(running), timeout=10) as c:
        for _ in range(3):
            assert audit(c, env, tmp_path).outcome.verdict == "ACCEPT"


# -- 7. red team -----------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_red_team_prover_is_rejected_over_grpc(
    serve: StartServer, env: Env, tmp_path: Path
) -> None:
    """scale:0.5 halves the attribution: its excess error (1 - 0.5)^2 B1 ~ 0.085 on the
    synthetic task is within eps = 0.2 (INCONCLUSIVE there is correct), so the audit is
    sized at eps = 0.05, where the lower confidence bound (~0.064) clears eps/2 by ~4
    standard errors."""
    plan = plan_run(task_info(env.task), 0.05, 0.05, hint=env.hint)
    running = serve(env.red_team, servicer_factory=env.red_team_factory)
    with ProverClient(target(running)) as c:
        res = audit(c, env, tmp_path, plan)
    assert (res.outcome.verdict, res.outcome.reason) == ("REJECT", "mse_gap"), res.outcome


# -- 8. `vattr serve` as a subprocess -------------------------------------------------------
SERVING = re.compile(r"^serving (\S+) on (\S+):(\d+) \(prover key")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Subprocesses started by a test; any still running at teardown are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=10)


def vattr(*args: str) -> list[str]:
    return [sys.executable, "-m", "vattr", *args]


def start_vattr_serve(
    procs: list[subprocess.Popen[str]], tmp_path: Path, *args: str
) -> tuple[subprocess.Popen[str], int]:
    """Start ``vattr serve --port 0``; return the process and the port it reports."""
    cmd = vattr("serve", "--task", "synthetic", "--port", "0", "--store", str(tmp_path / "s"))
    proc = subprocess.Popen(
        [*cmd, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    procs.append(proc)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        m = SERVING.match(line)
        if m:
            assert m.group(1) == "synthetic"
            return proc, int(m.group(3))
    proc.wait(timeout=10)
    raise AssertionError(f"vattr serve exited ({proc.returncode}) before serving:\n{''.join(seen)}")


def stop_with_sigterm(proc: subprocess.Popen[str]) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    return proc.returncode, time.monotonic() - t0, err


@pytest.mark.parametrize(
    "extra", [(), ("--host", ALL_INTERFACES, "--insecure")], ids=["loopback", "any-insecure"]
)
def test_vattr_serve_answers_and_exits_cleanly_on_sigterm(
    procs: list[subprocess.Popen[str]], tmp_path: Path, env: Env, extra: tuple[str, ...]
) -> None:
    proc, port = start_vattr_serve(procs, tmp_path, *extra)
    assert port > 0
    with ProverClient(f"127.0.0.1:{port}", timeout=10) as c:
        desc = c.call("DescribeTasks", pb.DescribeTasksRequest())
    assert [t.task.name for t in desc.tasks] == ["synthetic"]
    assert bytes(desc.tasks[0].task.digest) == env.task.digest
    code, seconds, err = stop_with_sigterm(proc)
    assert code == 0, err
    assert seconds < 5, f"SIGTERM took {seconds:.1f} s"
    assert "Traceback" not in err


def test_vattr_serve_refuses_plaintext_on_non_loopback(tmp_path: Path) -> None:
    cmd = vattr("serve", "--task", "synthetic", "--host", ALL_INTERFACES, "--port", "0")
    res = subprocess.run(
        [*cmd, "--store", str(tmp_path / "s")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("vattr: error:")]
    assert len(errors) == 1, res.stderr
    assert "TLS" in errors[0]
    assert "Traceback" not in res.stderr
    assert "serving" not in res.stderr


def test_vattr_serve_refuses_world_readable_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "prover.pem"
    assert vattr_main(["keygen", "--out", str(key)]) == 0
    capsys.readouterr()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    cmd = vattr("serve", "--task", "synthetic", "--port", "0", "--key", str(key))
    res = subprocess.run(
        [*cmd, "--store", str(tmp_path / "s")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("vattr: error:")]
    assert len(errors) == 1, res.stderr
    assert "0644" in errors[0]
    assert "serving" not in res.stderr

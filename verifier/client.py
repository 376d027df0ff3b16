"""The Verifier's gRPC client and the audit driver (``vattr audit``).

``run_audit`` plays the Verifier's side of the protocol against a remote Prover with the
same state machine as ``vattr simulate`` (so both give bit-identical statistics for the
same seeds), trains the spot checks and MSE samples locally, and returns the outcome with
everything needed for the signed report. Every call carries a deadline; transport
failures raise :class:`TransportError` (exit code 3).

Crashes on either side lose nothing: the audit's progress and secrets are saved in the
work directory after every answer (:mod:`verifier.audit_state`), so running the audit
again on the same work directory resumes the same session; and once the session is open,
a Prover that becomes unavailable (restarting on its store, which resumes its sessions)
is waited for up to ``reconnect`` seconds, each step being retried where it stopped --
all Prover steps are idempotent, and a saved training job is only watched again, never
revealed twice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from attribution.commitments import SigningKey
from attribution.errors import StoreCorruptError, UsageError
from attribution.execution import ResultStore, make_executor, run_plan
from attribution.execution.plan import RowSubset
from attribution.progress import Progress
from attribution.protocol.common import TaskInfo, task_info
from attribution.protocol.planner import Plan
from attribution.protocol.verifier import Outcome, VerifierSecrets, VerifierSession
from attribution.tasks.runtime import Task
from attribution.v1 import prover_pb2, prover_pb2_grpc
from verifier.audit_state import AuditState
from verifier.transport_errors import EXPIRED, HOSTNAME, SERVER_NOT_TLS, UNTRUSTED, explain

FloatArray = npt.NDArray[np.float64]
R = TypeVar("R")
RETRYABLE = frozenset({"UNAVAILABLE"})
# misconfigurations that waiting does not cure (a restarting Prover refuses connections or
# closes sockets, which stays retryable)
CONFIG_ERRORS = frozenset({EXPIRED, UNTRUSTED, HOSTNAME, SERVER_NOT_TLS})


class TransportError(Exception):
    """The Prover could not be reached or answered with an error status.

    ``code`` is the gRPC status name (``"UNAVAILABLE"``, ...) when there was one; ``hint``
    the one-line explanation of a connection failure (:func:`explain`), if any."""

    def __init__(self, message: str, code: str | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


class MalformedStream(TransportError):
    """The Prover's stream broke its framing (wrong length or total, stray or
    misplaced chunks): the Prover sent a malformed vector."""


@dataclass(frozen=True)
class ClientTLS:
    ca: Path | None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None


class ProverClient:
    def __init__(
        self,
        target: str,
        *,
        tls: ClientTLS | None = None,
        token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        options: list[tuple[str, Any]] = []
        if tls is not None:
            from attribution.transport.tls import channel_credentials

            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            creds = channel_credentials(tls.ca, tls.cert, tls.key)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = prover_pb2_grpc.ProverServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout = timeout
        self.target = target
        self.tls = tls is not None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ProverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, name: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self.stub, name)(
                request, timeout=timeout or self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise self._error(name, exc) from exc

    def stream(self, name: str, request: Any, timeout: float | None = None) -> Iterator[Any]:
        try:
            yield from getattr(self.stub, name)(
                request, timeout=timeout or self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise self._error(name, exc) from exc

    def _error(self, name: str, exc: grpc.RpcError) -> TransportError:
        """The TransportError of a failed call; connection failures get a one-line hint."""
        code, details = exc.code().name, exc.details() or ""
        hint = explain(code, details, tls=self.tls)
        message = f"{name}: {code}: {details}" + (f" (hint: {hint})" if hint else "")
        return TransportError(message, code, hint)

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            # the ready future keeps no reason: one fail-fast call recovers it
            reason = ""
            try:
                self.call("DescribeTasks", prover_pb2.DescribeTasksRequest(), min(timeout, 5.0))
            except TransportError as probe:
                reason = f": {probe}"
            raise TransportError(f"cannot reach the Prover at {self.target}{reason}") from exc

    def fetch_vector(self, name: str, request: Any, expected: int) -> FloatArray:
        """Collect a chunked float64 stream; offsets must be contiguous, lengths exact.

        Every message announces ``expected`` values and holds whole float64 values that
        continue exactly where the previous chunk ended; the only empty chunk allowed is the
        single message of a zero-length vector. A stream that breaks these rules, or ends
        cleanly before ``expected`` values, raises :class:`MalformedStream` (the Prover's
        doing: a signed REJECT, not a retry); a failed call raises :class:`TransportError`.
        """
        out = np.empty(expected, dtype="<f8")  # bounded memory: one copy plus one chunk
        received = 0
        messages = 0
        for msg in self.stream(name, request, timeout=max(self.timeout, 600.0)):
            messages += 1
            data = bytes(msg.chunk.values_f64le)
            if msg.total != expected:
                raise MalformedStream(f"{name}: announced {msg.total} values, expected {expected}")
            if len(data) % 8:
                raise MalformedStream(
                    f"{name}: chunk at offset {msg.chunk.offset} holds {len(data)} bytes, "
                    "not a multiple of 8 (whole float64 values)"
                )
            if msg.chunk.offset != received:
                raise MalformedStream(
                    f"{name}: chunk at offset {msg.chunk.offset} "
                    f"({len(data)} bytes) does not continue at {received}"
                )
            count = len(data) // 8
            if count == 0 and (expected != 0 or messages > 1):
                raise MalformedStream(
                    f"{name}: empty chunk at offset {received} (only a zero-length vector "
                    "is sent as one empty chunk)"
                )
            if received + count > expected:
                raise MalformedStream(f"{name}: more values than announced")
            out[received : received + count] = np.frombuffer(data, dtype="<f8")
            received += count
        if received != expected or messages == 0:
            raise MalformedStream(
                f"{name}: stream ended after {received} of {expected} values"
                + ("" if messages else " (no chunk at all)")
            )
        return out.astype(np.float64, copy=False)


@dataclass
class AuditResult:
    outcome: Outcome
    session: VerifierSession
    evaluations: FloatArray | None
    spot_values: FloatArray
    mse_values: FloatArray | None
    prover_key: bytes


def _train_local(
    task: Task,
    plan: Any,
    rows: list[int],
    executor_kind: str,
    work_dir: Path,
    label: str,
    quiet: bool,
) -> FloatArray:
    """Train ``rows`` of ``plan`` locally (spot checks or MSE samples) into a store."""
    if not rows:
        return np.zeros((0, task.n_outputs))

    sub = RowSubset(plan, tuple(rows))
    executor = make_executor(executor_kind)
    try:
        with ResultStore.open(
            work_dir / label,
            task_digest=task.digest,
            task_name=task.spec.name,
            plan=sub.describe(),
            n_outputs=task.n_outputs,
            output_names=task.output_names,
        ) as store:
            bar = Progress(len(store.pending_rows()), f"verifier {label}", not quiet)
            run_plan(task.spec, task.digest, sub, store, executor, 256, bar)
            return np.array(store.outputs)
    finally:
        executor.close()


def describe_prover(client: ProverClient) -> Any:
    return client.call("DescribeTasks", prover_pb2.DescribeTasksRequest())


class Reconnect:
    """Retry a step while the Prover is UNAVAILABLE (e.g. restarting), for up to ``window``
    seconds per outage with exponential back-off (0.5 s doubling to 5 s); other errors,
    and an outage longer than the window, raise."""

    def __init__(self, window: float, say: Callable[[str], None]) -> None:
        self.window = window
        self.say = say

    def __call__(self, what: str, fn: Callable[[], R]) -> R:
        start: float | None = None
        delay = 0.5
        while True:
            try:
                return fn()
            except TransportError as exc:
                if exc.code not in RETRYABLE or exc.hint in CONFIG_ERRORS or self.window <= 0:
                    raise
                now = time.monotonic()
                if start is None:
                    start = now
                    self.say(f"{what}: the Prover is unavailable; retrying for {self.window:.0f} s")
                elif now - start > self.window:
                    raise TransportError(
                        f"{exc} (still unavailable after {self.window:.0f} s)", exc.code
                    ) from exc
                time.sleep(delay)
                delay = min(2 * delay, 5.0)


def _watch(client: ProverClient, ref: Any, job_id: str, bar: Progress) -> None:
    """Follow the Prover's training job to its end (one stream; raises to be retried)."""
    request = prover_pb2.WatchJobRequest(session=ref, job_id=job_id)
    for update in client.stream("WatchJob", request, timeout=24 * 3600):
        if int(update.done) > bar.done:
            bar.update(int(update.done) - bar.done)
        if update.state == prover_pb2.JOB_STATE_FAILED:
            raise TransportError(f"the Prover's training job failed: {update.message}")
        if update.state == prover_pb2.JOB_STATE_DONE:
            return
    raise TransportError("WatchJob: the stream ended before the job did", "UNAVAILABLE")


def _resume_session(
    state: AuditState, task: Task, key: SigningKey, info: TaskInfo
) -> VerifierSession:
    """Re-run the Verifier's state machine from the saved Prover messages."""
    if state.task_digest != task.digest:
        raise UsageError("the saved audit is of another task (digest mismatch)")
    if state.verifier_key != key.public_key_raw:
        raise UsageError("the saved audit was signed with another Verifier key")
    session = VerifierSession(
        info,
        task.digest,
        state.protocol_params,
        key,
        state.verifier_secrets,
        task_name=task.spec.name,
    )
    session.open()
    if session.session_id != state.session_id:
        raise StoreCorruptError("the saved audit state does not reproduce its session id")
    session.on_opened(state.opened_body)
    return session


def run_audit(
    client: ProverClient,
    task: Task,
    plan: Plan | None,
    key: SigningKey,
    work_dir: Path,
    *,
    executor: str = "local",
    quiet: bool = False,
    secrets: VerifierSecrets | None = None,
    log: Callable[[str], None] | None = None,
    reconnect: float = 0.0,
) -> AuditResult:
    """Run one interactive audit of the Prover behind ``client``, or resume the one saved
    in ``work_dir`` (then ``plan`` and ``secrets`` are ignored: the saved ones hold; ``plan``
    may be None only when resuming). ``reconnect``: seconds to wait for an unavailable
    Prover once the session is open (0 = fail at once)."""
    say = log or (lambda m: None if quiet else print(m, file=sys.stderr))
    retry = Reconnect(reconnect, say)
    desc = describe_prover(client)
    served = next((t for t in desc.tasks if t.task.name == task.spec.name), None)
    if served is None:
        raise UsageError(f"the Prover does not serve {task.spec.name!r}")
    if bytes(served.task.digest) != task.digest:
        raise TransportError(
            f"task digest mismatch: the Prover serves {bytes(served.task.digest).hex()[:16]}..., "
            f"this Verifier has {task.digest.hex()[:16]}... (different spec or data)"
        )
    info = task_info(task)
    work_dir.mkdir(parents=True, exist_ok=True)
    state = AuditState.find(work_dir)
    if state is not None:
        session = _resume_session(state, task, key, info)
        say(f"resuming audit session {session.session_id.hex()} saved in {work_dir}")
    else:
        if plan is None:
            raise UsageError(f"no saved audit to resume in {work_dir}")
        session = VerifierSession(
            info, task.digest, plan.params, key, secrets, task_name=task.spec.name
        )
        opened = client.call(
            "OpenSession", prover_pb2.OpenSessionRequest(body=session.open().to_bytes())
        )
        session.on_opened(bytes(opened.body))
        state = AuditState(
            client.target,
            task.digest,
            plan.params.to_dict(),
            key.public_key_raw,
            AuditState.secrets_json(session.secrets),
            session.session_id,
            bytes(opened.session_token),
            bytes(opened.body),
        )
        state.save(work_dir)  # the secrets reach the disk before anything is revealed
        prover_fp = bytes(desc.prover_key).hex()[:16]
        say(f"session {session.session_id.hex()} opened with Prover {prover_fp}...")
    ref = prover_pb2.SessionRef(session_id=state.session_id, session_token=state.session_token)

    def saved(name: str, value: object) -> None:
        setattr(state, name, value)
        state.save(work_dir)

    if not state.attribution_body:
        commit = retry(
            "CommitAttribution",
            lambda: client.call(
                "CommitAttribution", prover_pb2.CommitAttributionRequest(session=ref)
            ),
        )
        saved("attribution_body", bytes(commit.body))
    session.on_attribution_commitment(state.attribution_body)
    reveal = session.reveal_challenge()
    if not state.job_id:
        job = retry(
            "RevealChallengeSeed",
            lambda: client.call(
                "RevealChallengeSeed",
                prover_pb2.RevealChallengeSeedRequest(session=ref, body=reveal.to_bytes()),
            ),
        )
        saved("job_id", str(job.job_id))
    if not state.evaluations_body:
        bar = Progress(session.layout.n_rows, "prover trains E", not quiet)
        retry("WatchJob", lambda: _watch(client, ref, state.job_id, bar))
        evals = retry(
            "CommitEvaluations",
            lambda: client.call(
                "CommitEvaluations", prover_pb2.CommitEvaluationsRequest(session=ref)
            ),
        )
        saved("evaluations_body", bytes(evals.body))
    session.on_evaluation_commitment(state.evaluations_body)
    n_a = task.n_outputs * (task.n_points + 1)
    n_f = session.layout.n_rows * task.n_outputs

    def fetch(name: str, request: Any, expected: int, what: str) -> FloatArray:
        try:
            return retry(name, lambda: client.fetch_vector(name, request, expected))
        except MalformedStream as exc:
            session.reject_stream(what, str(exc))
            return np.zeros(0)

    attribution = fetch(
        "StreamAttribution", prover_pb2.StreamAttributionRequest(session=ref), n_a, "attribution"
    )
    if attribution.size == n_a:
        session.receive_attribution(attribution)
    evaluations = fetch(
        "StreamEvaluations", prover_pb2.StreamEvaluationsRequest(session=ref), n_f, "evaluations"
    )
    if evaluations.size == n_f:
        session.receive_evaluations(evaluations)
    rows = session.spot_check_rows()
    spot = _train_local(task, session.challenge_plan(), rows, executor, work_dir, "spot", quiet)
    m_plan = session.mse_plan()
    mse = None
    if m_plan is not None:
        mse = _train_local(
            task, m_plan, list(range(m_plan.n_rows)), executor, work_dir, "mse", quiet
        )
    outcome = session.decide(spot, mse)
    if not state.delivered:
        ack = retry(
            "DeliverVerdict",
            lambda: client.call(
                "DeliverVerdict",
                prover_pb2.DeliverVerdictRequest(session=ref, body=outcome.message.to_bytes()),
            ),
        )
        if not ack.acknowledged:
            say("warning: the Prover did not acknowledge the verdict")
        saved("delivered", True)
    return AuditResult(
        outcome,
        session,
        evaluations.reshape(-1, task.n_outputs) if evaluations.size else None,
        spot,
        mse,
        bytes(desc.prover_key),
    )

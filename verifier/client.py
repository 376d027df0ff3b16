"""The Verifier's gRPC client and the audit driver (``vattr audit``).

``run_audit`` plays the Verifier's side of the protocol against a remote Prover with the
same state machine as ``vattr simulate`` (so both give bit-identical statistics for the
same seeds), trains the spot checks and MSE samples locally, and returns the outcome with
everything needed for the signed report. Every call carries a deadline; transport
failures raise :class:`TransportError` (exit code 3).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from attribution.commitments import SigningKey
from attribution.errors import UsageError
from attribution.execution import ResultStore, make_executor, run_plan
from attribution.execution.plan import RowSubset
from attribution.progress import Progress
from attribution.protocol.common import TaskInfo
from attribution.tasks.runtime import Task
from attribution.v1 import prover_pb2, prover_pb2_grpc
from verifier.planner import Plan
from verifier.session import Outcome, VerifierSecrets, VerifierSession

FloatArray = npt.NDArray[np.float64]


class TransportError(Exception):
    """The Prover could not be reached or answered with an error status."""


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
            from prover.auth import channel_credentials

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
            raise TransportError(f"{name}: {exc.code().name}: {exc.details()}") from exc

    def stream(self, name: str, request: Any, timeout: float | None = None) -> Iterator[Any]:
        try:
            yield from getattr(self.stub, name)(
                request, timeout=timeout or self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise TransportError(f"{name}: {exc.code().name}: {exc.details()}") from exc

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise TransportError(f"cannot reach the Prover at {self.target}") from exc

    def fetch_vector(self, name: str, request: Any, expected: int) -> FloatArray:
        """Collect a chunked float64 stream; offsets must be contiguous, lengths exact."""
        out = np.empty(expected, dtype="<f8")  # bounded memory: one copy plus one chunk
        received = 0
        for msg in self.stream(name, request, timeout=max(self.timeout, 600.0)):
            data = bytes(msg.chunk.values_f64le)
            if msg.total != expected:
                raise TransportError(f"{name}: announced {msg.total} values, expected {expected}")
            if msg.chunk.offset != received or len(data) % 8:
                raise TransportError(
                    f"{name}: chunk at offset {msg.chunk.offset} "
                    f"({len(data)} bytes) does not continue at {received}"
                )
            count = len(data) // 8
            if received + count > expected:
                raise TransportError(f"{name}: more values than announced")
            out[received : received + count] = np.frombuffer(data, dtype="<f8")
            received += count
        if received != expected:
            raise TransportError(f"{name}: stream ended after {received} of {expected} values")
        return out.astype(np.float64, copy=False)


@dataclass
class AuditResult:
    outcome: Outcome
    session: VerifierSession
    evaluations: FloatArray | None
    spot_values: FloatArray
    mse_values: FloatArray | None
    prover_key: bytes
    red_team: str


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


def run_audit(
    client: ProverClient,
    task: Task,
    plan: Plan,
    key: SigningKey,
    work_dir: Path,
    *,
    executor: str = "local",
    quiet: bool = False,
    secrets: VerifierSecrets | None = None,
    log: Callable[[str], None] | None = None,
) -> AuditResult:
    """Run one interactive audit of the Prover behind ``client``."""
    say = log or (lambda m: None if quiet else print(m, file=sys.stderr))
    desc = describe_prover(client)
    served = next((t for t in desc.tasks if t.task.name == task.spec.name), None)
    if served is None:
        raise UsageError(f"the Prover does not serve {task.spec.name!r}")
    if bytes(served.task.digest) != task.digest:
        raise TransportError(
            f"task digest mismatch: the Prover serves {bytes(served.task.digest).hex()[:16]}..., "
            f"this Verifier has {task.digest.hex()[:16]}... (different spec or data)"
        )
    info = TaskInfo(task.n_points, task.n_outputs, task.bound, task.tau, task.spec.p)
    session = VerifierSession(
        info, task.digest, plan.params, key, secrets, task_name=task.spec.name
    )
    opened = client.call(
        "OpenSession", prover_pb2.OpenSessionRequest(body=session.open().to_bytes())
    )
    ref = prover_pb2.SessionRef(session_id=opened.session_id, session_token=opened.session_token)
    session.on_opened(bytes(opened.body))
    prover_fp = bytes(desc.prover_key).hex()[:16]
    say(f"session {session.session_id.hex()} opened with Prover {prover_fp}...")
    commit = client.call("CommitAttribution", prover_pb2.CommitAttributionRequest(session=ref))
    session.on_attribution_commitment(bytes(commit.body))
    reveal = session.reveal_challenge()
    job = client.call(
        "RevealChallengeSeed",
        prover_pb2.RevealChallengeSeedRequest(session=ref, body=reveal.to_bytes()),
    )
    bar = Progress(int(job.total), "prover trains E", not quiet)
    last = 0
    for update in client.stream(
        "WatchJob", prover_pb2.WatchJobRequest(session=ref, job_id=job.job_id), timeout=24 * 3600
    ):
        bar.update(int(update.done) - last)
        last = int(update.done)
        if update.state == prover_pb2.JOB_STATE_FAILED:
            raise TransportError(f"the Prover's training job failed: {update.message}")
    evals = client.call("CommitEvaluations", prover_pb2.CommitEvaluationsRequest(session=ref))
    session.on_evaluation_commitment(bytes(evals.body))
    n_a = task.n_outputs * (task.n_points + 1)
    n_f = session.layout.n_rows * task.n_outputs
    attribution = client.fetch_vector(
        "StreamAttribution", prover_pb2.StreamAttributionRequest(session=ref), n_a
    )
    session.receive_attribution(attribution)
    evaluations = client.fetch_vector(
        "StreamEvaluations", prover_pb2.StreamEvaluationsRequest(session=ref), n_f
    )
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
    ack = client.call(
        "DeliverVerdict",
        prover_pb2.DeliverVerdictRequest(session=ref, body=outcome.message.to_bytes()),
    )
    if not ack.acknowledged:
        say("warning: the Prover did not acknowledge the verdict")
    return AuditResult(
        outcome,
        session,
        evaluations.reshape(-1, task.n_outputs) if evaluations.size else None,
        spot,
        mse,
        bytes(desc.prover_key),
        served.red_team_strategy,
    )

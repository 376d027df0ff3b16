"""``vattr audit``: one audit of a remote Prover over gRPC, resumable after a crash.

:func:`run_audit` runs the protocol's one message loop
(:mod:`attribution.protocol.driver`, the same loop as ``vattr simulate``,
so both give bit-identical statistics for the same seeds) with a gRPC port to the Prover,
trains the spot checks and MSE samples locally into resumable stores in the work
directory, and returns the outcome with everything needed for the signed report.

Crashes on either side lose nothing: the audit's secrets and the Prover's answers are
saved in the work directory after every answer (:mod:`verifier.audit_state`, the loop's
journal), so running the audit again on the same work directory resumes the same
session; once the session is open, a Prover that becomes unavailable (restarting on its
store, which resumes its sessions) is waited for up to ``reconnect`` seconds, each step
being retried where it stopped -- all Prover steps are idempotent, and a saved training
job is only watched again, never revealed twice.

The verdict is the Verifier's own: the loop decides (``driver.decide``), then
``on_decided`` runs (``vattr audit`` writes the signed report there), and only then is
the verdict delivered (``driver.deliver``); a Prover that refuses the delivery is recorded in the
result (``delivery_error``), not allowed to suppress it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from attribution.commitments import SigningKey
from attribution.errors import StoreCorruptError, UsageError
from attribution.execution import ResultStore, make_executor, run_plan
from attribution.execution.plan import RowSubset
from attribution.progress import Progress
from attribution.protocol.challenges import ChallengePlan, MsePlan
from attribution.protocol.common import TaskInfo, task_info
from attribution.protocol.driver import LocalTrainer, StreamRejected, decide, deliver
from attribution.protocol.planner import Plan
from attribution.protocol.verifier import Outcome, VerifierSecrets, VerifierSession
from attribution.tasks.runtime import Task
from attribution.v1 import prover_pb2
from verifier.audit_state import AuditState
from verifier.client import (
    CONFIG_ERRORS,
    RETRYABLE,
    MalformedStream,
    ProverClient,
    TransportError,
)

FloatArray = npt.NDArray[np.float64]
R = TypeVar("R")


@dataclass
class AuditResult:
    outcome: Outcome
    session: VerifierSession
    evaluations: FloatArray | None
    spot_values: FloatArray
    mse_values: FloatArray | None
    prover_key: bytes
    delivery_error: str = ""  # why the Prover did not take the verdict ("" = delivered)


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


# A Prover's training job must make progress within this many call timeouts (--timeout):
# 5 minutes with the default 60 s, 25 s with --timeout 5 (a stalled job ends the audit
# within two such windows: the first one sees the job's first report).
STALL_FACTOR = 5


class GrpcProver:
    """The :class:`~attribution.protocol.driver.ProverPort` of a remote Prover: one RPC
    per step, each retried through ``retry`` while the Prover restarts."""

    def __init__(
        self,
        client: ProverClient,
        retry: Reconnect,
        quiet: bool,
        on_open: Callable[[Any], None],
        job_timeout: float = 24 * 3600.0,
    ) -> None:
        self.client = client
        self.job_timeout = job_timeout  # deadline of the whole training of E (s)
        self.retry = retry
        self.quiet = quiet
        self.on_open = on_open  # persists the OpenSessionResponse (session id and token)
        self.ref: Any = None  # the session's id and token, once open
        self.received: dict[str, FloatArray] = {}  # the vectors as streamed (for the report)

    def _call(self, name: str, request: Any) -> Any:
        return self.retry(name, lambda: self.client.call(name, request))

    def open_session(self, body: bytes) -> bytes:
        opened = self.client.call("OpenSession", prover_pb2.OpenSessionRequest(body=body))
        self.ref = prover_pb2.SessionRef(
            session_id=opened.session_id, session_token=opened.session_token
        )
        self.on_open(opened)
        return bytes(opened.body)

    def commit_attribution(self) -> bytes:
        request = prover_pb2.CommitAttributionRequest(session=self.ref)
        return bytes(self._call("CommitAttribution", request).body)

    def reveal_challenge(self, body: bytes) -> str:
        request = prover_pb2.RevealChallengeSeedRequest(session=self.ref, body=body)
        return str(self._call("RevealChallengeSeed", request).job_id)

    def wait_trained(self, job: str, total: int) -> None:
        bar = Progress(total, "prover trains E", not self.quiet)
        self.retry("WatchJob", lambda: self._watch(job, bar))

    def _watch(self, job_id: str, bar: Progress) -> None:
        """Follow the Prover's training job to its end (raises to be retried).

        WatchJob is polled with a per-call deadline of ``STALL_FACTOR`` call timeouts
        (``--timeout``), re-issued while the job progresses; a job that makes no progress
        within one such window, or runs past ``--job-timeout``, ends the audit
        (DEADLINE_EXCEEDED, exit 3)."""
        request = prover_pb2.WatchJobRequest(session=self.ref, job_id=job_id)
        end = time.monotonic() + self.job_timeout
        stall = STALL_FACTOR * self.client.timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TransportError(
                    f"WatchJob: the Prover's training ran past --job-timeout "
                    f"({self.job_timeout:g} s)",
                    "DEADLINE_EXCEEDED",
                )
            before = bar.done
            try:
                for update in self.client.stream(
                    "WatchJob", request, timeout=min(remaining, stall)
                ):
                    if int(update.done) > bar.done:
                        bar.update(int(update.done) - bar.done)
                    if update.state == prover_pb2.JOB_STATE_FAILED:
                        raise TransportError(f"the Prover's training job failed: {update.message}")
                    if update.state == prover_pb2.JOB_STATE_DONE:
                        return
            except TransportError as exc:
                if exc.code != "DEADLINE_EXCEEDED":
                    raise
                if bar.done == before:
                    raise TransportError(
                        f"WatchJob: the Prover's training made no progress in {stall:g} s "
                        f"({bar.done} of {bar.total} rows)",
                        "DEADLINE_EXCEEDED",
                    ) from exc
                continue  # it progressed: poll again
            raise TransportError("WatchJob: the stream ended before the job did", "UNAVAILABLE")

    def commit_evaluations(self) -> bytes:
        request = prover_pb2.CommitEvaluationsRequest(session=self.ref)
        return bytes(self._call("CommitEvaluations", request).body)

    def _fetch(self, name: str, request: Any, expected: int) -> FloatArray:
        try:
            values = self.retry(name, lambda: self.client.fetch_vector(name, request, expected))
        except MalformedStream as exc:
            raise StreamRejected(str(exc)) from exc
        self.received[name] = values
        return values

    def stream_attribution(self, expected: int) -> FloatArray:
        request = prover_pb2.StreamAttributionRequest(session=self.ref)
        return self._fetch("StreamAttribution", request, expected)

    def stream_evaluations(self, expected: int) -> FloatArray:
        request = prover_pb2.StreamEvaluationsRequest(session=self.ref)
        return self._fetch("StreamEvaluations", request, expected)

    def deliver_verdict(self, body: bytes) -> None:
        request = prover_pb2.DeliverVerdictRequest(session=self.ref, body=body)
        if not self._call("DeliverVerdict", request).acknowledged:
            raise TransportError("the Prover did not acknowledge the verdict")


class StateJournal:
    """The loop's journal kept in the audit state (saved after every answer)."""

    STEPS: ClassVar[dict[str, str]] = {
        "opened": "opened_body",
        "attribution": "attribution_body",
        "evaluations": "evaluations_body",
    }

    def __init__(self, state: AuditState | None, work_dir: Path) -> None:
        self.state = state  # None until the session opens (then set by the opener)
        self.work_dir = work_dir

    def get(self, step: str) -> bytes | None:
        state = self.state
        if state is None:
            return None
        if step == "job":
            return state.job_id.encode() if state.job_id else None
        if step == "delivered":
            return b"1" if state.delivered else None
        value: bytes = getattr(state, self.STEPS[step])
        return value or None

    def put(self, step: str, body: bytes) -> None:
        state = self.state
        if state is None:
            raise UsageError("audit state missing: the session was not opened")
        if step == "job":
            state.job_id = body.decode()
        elif step == "delivered":
            state.delivered = True
        else:
            setattr(state, self.STEPS[step], body)
        state.save(self.work_dir)


def local_trainer(task: Task, executor_kind: str, work_dir: Path, quiet: bool) -> LocalTrainer:
    """Train rows of a plan locally (spot checks or MSE samples) into a resumable store
    ``work_dir/<label>``."""

    def train(plan: ChallengePlan | MsePlan, rows: Sequence[int], label: str) -> FloatArray:
        rows = list(rows)
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

    return train


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
    on_decided: Callable[[AuditResult], None] | None = None,
    job_timeout: float = 24 * 3600.0,
) -> AuditResult:
    """Run one interactive audit of the Prover behind ``client``, or resume the one saved
    in ``work_dir`` (then ``plan`` and ``secrets`` are ignored: the saved ones hold; ``plan``
    may be None only when resuming). ``reconnect``: seconds to wait for an unavailable
    Prover once the session is open (0 = fail at once). ``on_decided`` receives the result
    as soon as the verdict is signed, before it is delivered to the Prover. ``job_timeout``:
    seconds the Prover's training of E may take (DEADLINE_EXCEEDED, exit 3, beyond)."""
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
    info = task_info(task)
    work_dir.mkdir(parents=True, exist_ok=True)
    journal = StateJournal(AuditState.find(work_dir), work_dir)
    saved = journal.state
    if saved is not None:
        session = _resume_session(saved, task, key, info)
        say(f"resuming audit session {session.session_id.hex()} saved in {work_dir}")
    else:
        if plan is None:
            raise UsageError(f"no saved audit to resume in {work_dir}")
        session = VerifierSession(
            info, task.digest, plan.params, key, secrets, task_name=task.spec.name
        )

    def opened(response: Any) -> None:
        journal.state = AuditState(
            client.target,
            task.digest,
            session.params.to_dict(),
            key.public_key_raw,
            AuditState.secrets_json(session.secrets),
            bytes(response.session_id),
            bytes(response.session_token),
            bytes(response.body),
        )
        journal.state.save(work_dir)  # the secrets reach the disk before anything is revealed
        say(
            f"session {session.session_id.hex()} opened with Prover "
            f"{bytes(desc.prover_key).hex()[:16]}..."
        )

    port = GrpcProver(client, Reconnect(reconnect, say), quiet, opened, job_timeout)
    if saved is not None:
        port.ref = prover_pb2.SessionRef(
            session_id=saved.session_id, session_token=saved.session_token
        )
    decided = decide(session, port, local_trainer(task, executor, work_dir, quiet), journal=journal)
    evals = port.received.get("StreamEvaluations")
    result = AuditResult(
        decided.outcome,
        session,
        None if evals is None else evals.reshape(-1, task.n_outputs),
        decided.spot_values,
        decided.mse_values,
        bytes(desc.prover_key),
    )
    if on_decided is not None:
        on_decided(result)  # e.g. the signed report, before the Prover sees the verdict
    try:
        deliver(session, port, decided.outcome, journal=journal)
    except TransportError as exc:
        # the Prover did not take the verdict: its failure, on record; the verdict stands
        result.delivery_error = str(exc)
        say(f"warning: the Prover did not take the verdict: {exc}")
    return result

"""The one message loop of an audit: the Verifier's state machine against a Prover port.

Every way of running the protocol goes through this loop: ``vattr audit`` (the port is
the gRPC client, :mod:`verifier.audit`), ``vattr simulate`` and the tests (an in-process
Prover state machine, :mod:`vattr.simulate`) and ``vattr check --replay`` (the Prover
answered from a report, :mod:`verifier.reports.report`). So both give bit-identical
statistics, verdicts and transcript heads for the same seeds. The order is that of
docs/protocol.md section 2:

1. OpenSession / SessionOpened (skipped when the session is already open, e.g. resumed);
2. AttributionCommitment; with planning "pilot" (docs/protocol.md section 6.14) the
   attribution is streamed now, the Verifier trains its secret pilot M and fixes the
   sizes from the committed attribution's residual on it (a malformed attribution is a
   REJECT before any training, and E is never revealed);
3. ChallengeReveal, then the Prover trains E (interactive mode only);
4. EvaluationCommitment, then the streamed attribution and f-values;
5. the Verifier trains its secret spot checks C and MSE samples M -- only when what was
   received is well formed and matches its commitments: a malformed stream or a root
   mismatch is already a REJECT, decided without a single local training (cheap checks
   first);
6. decide and sign (:func:`decide` ends here: the caller keeps the signed verdict --
   ``vattr audit`` writes its report -- *before* delivering it, so a Prover that refuses
   the delivery cannot suppress it);
7. DeliverVerdict (interactive mode, :func:`deliver`).

The loop does no I/O itself: the port talks to the Prover, the trainer trains, and the
journal keeps the Prover's answers (a resumed audit replays them instead of asking
again: every step is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from attribution.protocol.challenges import ChallengePlan, MsePlan
from attribution.protocol.common import Phase
from attribution.protocol.verifier import Outcome, VerifierSession

FloatArray = npt.NDArray[np.float64]


class StreamRejected(Exception):
    """The Prover's stream broke its framing (wrong length, stray or misplaced chunks):
    the Prover sent a malformed vector, which is a signed REJECT, not a retry."""


class ProverPort(Protocol):
    """The Prover as the Verifier's loop sees it (bytes are canonical protocol messages)."""

    def open_session(self, body: bytes) -> bytes:
        """Send OpenSession; the Prover's SessionOpened."""
        ...

    def commit_attribution(self) -> bytes:
        """The Prover's AttributionCommitment."""
        ...

    def reveal_challenge(self, body: bytes) -> str:
        """Send ChallengeReveal; the Prover starts training E. Returns a job reference."""
        ...

    def wait_trained(self, job: str, total: int) -> None:
        """Return once the Prover's training of E (``total`` rows) has finished."""
        ...

    def commit_evaluations(self) -> bytes:
        """The Prover's EvaluationCommitment."""
        ...

    def stream_attribution(self, expected: int) -> FloatArray:
        """The streamed attribution (``expected`` values); :class:`StreamRejected` when
        its framing is broken."""
        ...

    def stream_evaluations(self, expected: int) -> FloatArray:
        """The streamed f-values of E (``expected`` values); :class:`StreamRejected`."""
        ...

    def deliver_verdict(self, body: bytes) -> None:
        """Send the signed VerdictMessage."""
        ...


# The Verifier's own trainings: (plan, rows, label) -> f-values of those rows (len, T);
# ``label`` names the work ("spot" or "mse") for stores and progress bars.
LocalTrainer = Callable[[ChallengePlan | MsePlan, Sequence[int], str], FloatArray]


class Journal(Protocol):
    """Where the Prover's answers are kept, by step name, so that a resumed loop replays
    them instead of asking again."""

    def get(self, step: str) -> bytes | None: ...

    def put(self, step: str, body: bytes) -> None: ...


class MemoryJournal:
    """A journal that forgets (simulations, tests)."""

    def __init__(self) -> None:
        self._steps: dict[str, bytes] = {}

    def get(self, step: str) -> bytes | None:
        return self._steps.get(step)

    def put(self, step: str, body: bytes) -> None:
        self._steps[step] = body


def _once(journal: Journal, step: str, ask: Callable[[], bytes]) -> bytes:
    saved = journal.get(step)
    if saved is not None:
        return saved
    body = ask()
    journal.put(step, body)
    return body


@dataclass(frozen=True)
class Decided:
    """A signed verdict and the Verifier's own trainings it rests on (empty / None when
    the session was decided before any local training)."""

    outcome: Outcome
    spot_values: FloatArray
    mse_values: FloatArray | None


def decide(
    session: VerifierSession,
    port: ProverPort,
    train: LocalTrainer,
    *,
    journal: Journal | None = None,
    claimed_mse: FloatArray | None = None,
) -> Decided:
    """Steps 1-6: run (or resume) the session up to its signed verdict."""
    journal = journal if journal is not None else MemoryJournal()
    task = session.task
    if session.phase == Phase.NEW:
        request = session.open().to_bytes()
        session.on_opened(_once(journal, "opened", lambda: port.open_session(request)))
    session.on_attribution_commitment(_once(journal, "attribution", port.commit_attribution))
    interactive = session.params.mode == "interactive"
    pilot_planned = session.params.planning == "pilot"
    n_a = task.n_outputs * (task.n_points + 1)
    mse = None
    if pilot_planned:
        _receive_attribution(session, port, n_a)
        m_plan = session.mse_plan()
        if session.failure is not None or m_plan is None:
            spot = np.zeros((0, task.n_outputs))
            return Decided(session.decide(spot, None, claimed_mse), spot, None)
        mse = train(m_plan, range(m_plan.n_rows), "mse")
        session.size_from_pilot(mse)
    if interactive:
        reveal = session.reveal_challenge().to_bytes()
        job = _once(journal, "job", lambda: port.reveal_challenge(reveal).encode()).decode()

        def evaluations() -> bytes:
            port.wait_trained(job, session.layout.n_rows)
            return port.commit_evaluations()

        session.on_evaluation_commitment(_once(journal, "evaluations", evaluations))
    if not pilot_planned:
        _receive_attribution(session, port, n_a)
    if interactive:
        n_f = session.layout.n_rows * task.n_outputs
        try:
            session.receive_evaluations(port.stream_evaluations(n_f))
        except StreamRejected as exc:
            session.reject_stream("evaluations", str(exc))
    spot = np.zeros((0, task.n_outputs))
    if session.failure is None:  # cheap checks first: no training against a REJECT
        rows = session.spot_check_rows()
        if rows:
            spot = train(session.challenge_plan(), rows, "spot")
        m_plan = session.mse_plan()
        if m_plan is not None and mse is None:
            mse = train(m_plan, range(m_plan.n_rows), "mse")
    return Decided(session.decide(spot, mse, claimed_mse), spot, mse)


def _receive_attribution(session: VerifierSession, port: ProverPort, n_values: int) -> None:
    try:
        session.receive_attribution(port.stream_attribution(n_values))
    except StreamRejected as exc:
        session.reject_stream("attribution", str(exc))


def deliver(
    session: VerifierSession,
    port: ProverPort,
    outcome: Outcome,
    *,
    journal: Journal | None = None,
) -> None:
    """Step 7: send the signed verdict (interactive mode; once per journal)."""
    journal = journal if journal is not None else MemoryJournal()
    if session.params.mode == "interactive" and journal.get("delivered") is None:
        port.deliver_verdict(outcome.message.to_bytes())
        journal.put("delivered", b"1")


def run_verifier(
    session: VerifierSession,
    port: ProverPort,
    train: LocalTrainer,
    *,
    journal: Journal | None = None,
    claimed_mse: FloatArray | None = None,
) -> Decided:
    """One session from open to delivered verdict: :func:`decide`, then :func:`deliver`."""
    journal = journal if journal is not None else MemoryJournal()
    decided = decide(session, port, train, journal=journal, claimed_mse=claimed_mse)
    deliver(session, port, decided.outcome, journal=journal)
    return decided

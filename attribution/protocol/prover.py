"""The Prover's side of the protocol as a pure state machine (no I/O, no training).

``on_open`` -> SessionOpened; ``commit_attribution(A)`` -> AttributionCommitment (the
Prover is bound to A before any challenge exists); ``on_challenge`` checks the revealed
seed against the Verifier's commitment and returns E as a plan to train (with planning
"pilot", docs/protocol.md section 6.14, the reveal also carries the sizes the Verifier's
pilot fixed: ``params`` becomes the sized parameters, every other field as opened);
``commit_evaluations(F)`` -> EvaluationCommitment; ``on_verdict`` checks the Verifier's
signature and that the revealed seeds match the commitments made at open.
What the Prover commits and streams is the caller's choice (the honest service or a
red-team strategy); the session only enforces order and signs.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from attribution.commitments import Direction, SigningKey, Transcript, vector_root
from attribution.errors import LocalProtocolError, RemoteProtocolError, UsageError
from attribution.protocol import need, statements
from attribution.protocol.challenges import ChallengeLayout, ChallengePlan
from attribution.protocol.common import (
    Phase,
    TaskInfo,
    make_challenge_plan,
    seed_commitment,
    session_id_for,
)
from attribution.protocol.messages import (
    PROTOCOL_VERSION,
    AttributionCommitment,
    ChallengeReveal,
    EvaluationCommitment,
    OpenSession,
    SessionOpened,
    VerdictMessage,
    decode,
)
from attribution.protocol.params import ProtocolParams
from attribution.subsets import bind_digest

FloatArray = npt.NDArray[np.float64]
C = TypeVar("C", AttributionCommitment, EvaluationCommitment)


class ChallengeTooLarge(RemoteProtocolError):
    """The Verifier revealed an E larger than this Prover's limit (nothing was changed)."""


class ProverSession:
    def __init__(
        self, task: TaskInfo, task_digest: bytes, key: SigningKey, nonce: bytes | None = None
    ) -> None:
        self.task = task
        self.task_digest = task_digest
        self.key = key
        self.nonce = nonce or secrets.token_bytes(32)
        self.phase = Phase.NEW
        self.transcript: Transcript | None = None
        self.open_msg: OpenSession | None = None
        self.params: ProtocolParams | None = None
        self.opened_params: ProtocolParams | None = None
        self.session_id = b""
        self.root_a = b""
        self.plan: ChallengePlan | None = None

    def _expect(self, phase: Phase, step: str) -> None:
        if self.phase != phase:
            raise LocalProtocolError(f"{step}: not allowed in phase {self.phase.name}")

    @property
    def head(self) -> bytes:
        return self.transcript.head if self.transcript is not None else b""

    def on_open(self, data: bytes) -> SessionOpened:
        self._expect(Phase.NEW, "on_open")
        msg = decode(data, OpenSession)
        if msg.protocol_version != PROTOCOL_VERSION:
            raise RemoteProtocolError(f"unsupported protocol version {msg.protocol_version}")
        if msg.task_digest != self.task_digest:
            raise RemoteProtocolError("the Verifier asks for another task (digest mismatch)")
        self.params = ProtocolParams.from_dict(msg.params)
        if self.params != self.params.opening():
            raise RemoteProtocolError("a pilot-planned session opens with its sizes at zero")
        self.opened_params = self.params
        self.open_msg = msg
        self.session_id = session_id_for(data)
        self.transcript = Transcript(self.session_id, PROTOCOL_VERSION)
        self.transcript.append(Direction.VERIFIER_TO_PROVER, "open", data)
        sig = statements.sign(self.key, statements.opened(self.session_id, self.nonce, self.head))
        out = SessionOpened(
            session_id=self.session_id,
            nonce=self.nonce,
            prover_key=self.key.public_key_raw,
            signature=sig,
        )
        self.transcript.append(Direction.PROVER_TO_VERIFIER, "opened", out.to_bytes())
        self.phase = Phase.SESSION
        return out

    def _commit(
        self,
        values: npt.ArrayLike,
        what: str,
        kind: type[C],
        phase: Phase,
        expected: str,
    ) -> C:
        """Sign and log a commitment to a matrix: its Merkle root over the row-major values
        and its shape, bound to the session and the transcript head."""
        transcript = need(self.transcript, "transcript")
        M = np.asarray(values, dtype=np.float64)
        if M.ndim != 2:
            raise LocalProtocolError(f"{expected} must be a matrix")
        root = vector_root(M.ravel())
        rows, cols = M.shape
        statement = statements.commit(what, self.session_id, root, rows, cols, self.head)
        sig = statements.sign(self.key, statement)
        out = kind(root=root, rows=rows, cols=cols, signature=sig)
        transcript.append(Direction.PROVER_TO_VERIFIER, f"commit_{what}", out.to_bytes())
        self.phase = phase
        return out

    def commit_attribution(self, attribution: npt.ArrayLike) -> AttributionCommitment:
        self._expect(Phase.SESSION, "commit_attribution")
        out = self._commit(
            attribution,
            "attribution",
            AttributionCommitment,
            Phase.ATTRIBUTION,
            "the attribution (outputs, 1 + N)",
        )
        self.root_a = out.root
        return out

    def on_challenge(self, data: bytes, max_rows: int | None = None) -> ChallengePlan:
        """Accept the revealed challenge; ``max_rows``: refuse (:class:`ChallengeTooLarge`,
        nothing changed) an E of more trainings than that."""
        self._expect(Phase.ATTRIBUTION, "on_challenge")
        transcript = need(self.transcript, "transcript")
        open_msg = need(self.open_msg, "open message")
        opened = need(self.opened_params, "parameters")
        msg = decode(data, ChallengeReveal)
        if seed_commitment("E", msg.seed, msg.salt) != open_msg.commit_e:
            raise RemoteProtocolError("the revealed challenge seed does not match its commitment")
        params = opened
        if opened.planning == "pilot":
            if msg.plan is None:
                raise RemoteProtocolError("a pilot-planned challenge must carry its sizes")
            try:
                params = opened.sized(msg.plan)
            except UsageError as exc:
                raise RemoteProtocolError(f"the challenge's sizes are malformed: {exc}") from exc
        elif msg.plan is not None:
            raise RemoteProtocolError("sizes were fixed at open: the challenge carries none")
        if max_rows is not None and params.n_challenges > max_rows:
            raise ChallengeTooLarge(
                f"|E| = {params.n_challenges} exceeds this Prover's limit of {max_rows} "
                "trainings per session"
            )
        transcript.append(Direction.VERIFIER_TO_PROVER, "reveal_challenge", data)
        self.params = params
        bind = bind_digest(
            self.task_digest, opened.digest(), self.session_id, self.nonce, self.root_a
        )
        layout = ChallengeLayout(params.n_pairs, params.n_single)
        self.plan = make_challenge_plan(self.task, params, layout, msg.seed, bind)
        self.phase = Phase.CHALLENGE
        return self.plan

    def commit_evaluations(self, values: npt.ArrayLike) -> EvaluationCommitment:
        self._expect(Phase.CHALLENGE, "commit_evaluations")
        return self._commit(
            values,
            "evaluations",
            EvaluationCommitment,
            Phase.EVALUATIONS,
            "the f-values (|E|, outputs)",
        )

    def on_verdict(self, data: bytes) -> VerdictMessage:
        """Check the verdict's signature -- it covers the Verifier's transcript head, so it
        verifies only if both transcripts agree -- and the revealed secret seeds."""
        open_msg = need(self.open_msg, "open message")
        msg = decode(data, VerdictMessage)
        ok = statements.verify(
            open_msg.verifier_key,
            msg.signature,
            statements.verdict(
                self.session_id, self.head, msg.verdict, msg.reason, msg.certificate_digest
            ),
        )
        if not ok:
            raise RemoteProtocolError(
                "bad Verifier signature on the verdict (or transcripts differ)"
            )
        if seed_commitment("C", msg.seed_c, msg.salt_c) != open_msg.commit_c or (
            seed_commitment("M", msg.seed_m, msg.salt_m) != open_msg.commit_m
        ):
            raise RemoteProtocolError("revealed spot-check or MSE seeds do not match commitments")
        self.phase = Phase.DECIDED
        return msg

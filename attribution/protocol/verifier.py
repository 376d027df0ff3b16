"""The Verifier's side of the protocol as a pure state machine (no I/O, no training).

Message order (docs/protocol.md section 2.3), each message appended to the hash-chained transcript:

1.  ``open()``                      -> OpenSession (commitments to seed_E, seed_C, seed_M)
1'. ``on_opened(bytes)``            <- SessionOpened (Prover nonce and key, signed)
2.  ``on_attribution_commitment``   <- AttributionCommitment (Merkle root, signed)
2'. planning "pilot" only (docs/protocol.md section 6.14): ``receive_attribution(values)``,
    then ``size_from_pilot(pilot)`` with the local trainings of M: rho, the pairs per level
    and k are fixed from the committed attribution's residual on the secret pilot
3.  ``reveal_challenge()``          -> ChallengeReveal (seed_E, salt_E, and the pilot's
    sizes); E is now fixed
5.  ``on_evaluation_commitment``    <- EvaluationCommitment (root of the f-values, signed)
    ``receive_attribution(values)`` / ``receive_evaluations(values)``: roots recomputed
6.  ``spot_check_rows()`` / ``mse_plan()``: what the caller must train locally
    ``decide(spot_values, mse_values)`` -> :class:`Outcome` (verdict, certificate, signed
    VerdictMessage revealing seed_C and seed_M)

Calling a step out of order raises :class:`~attribution.errors.LocalProtocolError` (our
misuse). A Prover message that cannot be decoded or is badly signed raises
:class:`~attribution.errors.RemoteProtocolError` (there is no signed statement to judge);
a committed vector that is malformed or inconsistent with its commitment does not raise:
it fixes the verdict to REJECT with the reason (``malformed``, ``commitment_mismatch``),
which is then signed like any other verdict.

Modes: ``interactive`` (the protocol above), ``noninteractive`` (the Verifier trains E
itself: steps 3 and 5 are skipped and the local values replace the Prover's), ``naive``
(baseline: only the local MSE against the Prover's claimed MSE, docs/protocol.md section 6.12).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.commitments import Direction, Transcript, vector_root
from attribution.errors import LocalProtocolError, RemoteProtocolError
from attribution.protocol import need, statements
from attribution.protocol.certificate import certificate_digest, field_hashes, values_digest
from attribution.protocol.challenges import ChallengeLayout, ChallengePlan, MsePlan, spot_check_rows
from attribution.protocol.common import (
    Phase,
    Signer,
    TaskInfo,
    g_values,
    make_challenge_plan,
    seed_commitment,
    session_id_for,
)
from attribution.protocol.decision import (
    ACCEPT,
    INCONCLUSIVE,
    REJECT,
    band_radius,
    clip_statistics,
    committed_band,
    decide_output,
    prescreen,
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
from attribution.protocol.planner import replan_from_pilot
from attribution.subsets import bind_digest, prob_to_u32, xof

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VerifierSecrets:
    """Seeds and salts of E (revealed at step 3), C and M (revealed with the verdict)."""

    seed_e: bytes
    salt_e: bytes
    seed_c: bytes
    salt_c: bytes
    seed_m: bytes
    salt_m: bytes

    @classmethod
    def generate(cls) -> VerifierSecrets:
        return cls(*(secrets.token_bytes(32) for _ in range(6)))

    @classmethod
    def derive(cls, master: bytes) -> VerifierSecrets:
        """Deterministic secrets for reproducible simulations (never for real audits)."""
        names = ("seed_e", "salt_e", "seed_c", "salt_c", "seed_m", "salt_m")
        return cls(*(xof("verifier-secret", master, name.encode(), [], 32) for name in names))


@dataclass(frozen=True)
class Outcome:
    """A decided session: verdict, reason, certificate (JSON-able) and the signed message."""

    verdict: str
    reason: str
    certificate: dict[str, Any]
    message: VerdictMessage
    field_hashes: dict[str, str]


@dataclass(frozen=True)
class Evaluation:
    """The unsigned decision: verdict, reason, per-output statistics, spot-check counts."""

    verdict: str
    reason: str
    detail: str
    stats: list[dict[str, Any]]
    n_spot: int
    spot_failures: int


class VerifierSession:
    def __init__(
        self,
        task: TaskInfo,
        task_digest: bytes,
        params: ProtocolParams,
        key: Signer,
        secrets_: VerifierSecrets | None = None,
        masks_fn: Callable[[ChallengePlan | MsePlan], npt.NDArray[np.bool_]] | None = None,
        task_name: str = "",
    ) -> None:
        self.task = task
        self.task_name = task_name
        # how E's masks are derived (a cache may be injected when both roles share a process)
        self._masks_fn = masks_fn or (lambda plan: plan.masks(range(plan.n_rows)))
        self.task_digest = task_digest
        # what is sent at open; with planning "pilot" the sizes are zero until the pilot
        self.opened_params = params.opening()
        self.params = self.opened_params
        self.planning: dict[str, Any] | None = None  # the pilot's sizing, once done
        self._pilot_digest = ""
        self.key = key
        self.secrets = secrets_ or VerifierSecrets.generate()
        self.phase = Phase.NEW
        self.transcript: Transcript | None = None
        self.failure: tuple[str, str] | None = None
        self.layout = ChallengeLayout(params.n_pairs, params.n_single)
        self.session_id = b""
        self.nonce = b""
        self.prover_key = b""
        self.root_a = b""
        self.root_f = b""
        self.attribution: FloatArray | None = None
        self.evaluations: FloatArray | None = None
        self.claimed_mse: FloatArray | None = None

    # -- helpers ---------------------------------------------------------------------
    def _expect(self, phase: Phase, step: str) -> None:
        if self.phase != phase:
            raise LocalProtocolError(f"{step}: not allowed in phase {self.phase.name}")

    def _fail(self, reason: str, detail: str) -> None:
        if self.failure is None:
            self.failure = (reason, detail)

    def _log(self, direction: Direction, label: str, data: bytes) -> None:
        need(self.transcript, "transcript").append(direction, label, data)

    @property
    def head(self) -> bytes:
        return self.transcript.head if self.transcript is not None else b""

    @property
    def bind(self) -> bytes:
        # the opening parameters: M (drawn before a pilot fixes the sizes) and E share it
        return bind_digest(
            self.task_digest,
            self.opened_params.digest(),
            self.session_id,
            self.nonce,
            self.root_a,
        )

    # -- 1 ---------------------------------------------------------------------------
    def open(self) -> OpenSession:
        self._expect(Phase.NEW, "open")
        s = self.secrets
        msg = OpenSession(
            protocol_version=PROTOCOL_VERSION,
            task_digest=self.task_digest,
            params=self.opened_params.to_dict(),
            verifier_key=self.key.public_key_raw,
            commit_e=seed_commitment("E", s.seed_e, s.salt_e),
            commit_c=seed_commitment("C", s.seed_c, s.salt_c),
            commit_m=seed_commitment("M", s.seed_m, s.salt_m),
        )
        data = msg.to_bytes()
        self.session_id = session_id_for(data)
        self.transcript = Transcript(self.session_id, PROTOCOL_VERSION)
        self._log(Direction.VERIFIER_TO_PROVER, "open", data)
        self.phase = Phase.OPENED
        return msg

    def on_opened(self, data: bytes) -> None:
        self._expect(Phase.OPENED, "on_opened")
        head = self.head
        msg = decode(data, SessionOpened)
        self._log(Direction.PROVER_TO_VERIFIER, "opened", data)
        if msg.session_id != self.session_id:
            raise RemoteProtocolError("the Prover answered with another session id")
        if len(msg.nonce) != 32 or len(msg.prover_key) != 32:
            raise RemoteProtocolError("the Prover's nonce and key must be 32 bytes each")
        statement = statements.opened(msg.session_id, msg.nonce, head)
        if not statements.verify(msg.prover_key, msg.signature, statement):
            raise RemoteProtocolError("bad Prover signature on the session opening")
        self.nonce, self.prover_key = msg.nonce, msg.prover_key
        self.phase = Phase.SESSION

    # -- 2 ---------------------------------------------------------------------------
    def _on_commit(
        self,
        data: bytes,
        kind: type[AttributionCommitment] | type[EvaluationCommitment],
        what: str,
        shape: tuple[int, int],
    ) -> bytes:
        """Decode, log and check a signed commitment; a wrong shape fixes REJECT."""
        head = self.head
        msg = decode(data, kind)
        self._log(Direction.PROVER_TO_VERIFIER, f"commit_{what}", data)
        statement = statements.commit(what, self.session_id, msg.root, msg.rows, msg.cols, head)
        if not statements.verify(self.prover_key, msg.signature, statement):
            raise RemoteProtocolError(f"bad Prover signature on the {what} commitment")
        if (msg.rows, msg.cols) != shape:
            self._fail("malformed", f"{what} shape ({msg.rows}, {msg.cols}) != {shape}")
        return msg.root

    def on_attribution_commitment(self, data: bytes) -> None:
        self._expect(Phase.SESSION, "on_attribution_commitment")
        shape = (self.task.n_outputs, self.task.n_points + 1)
        self.root_a = self._on_commit(data, AttributionCommitment, "attribution", shape)
        self.phase = Phase.ATTRIBUTION

    # -- 2' --------------------------------------------------------------------------
    def size_from_pilot(self, pilot_values: FloatArray) -> None:
        """Planning "pilot" (docs/protocol.md section 6.14): fix rho, the pairs per level and
        k from the committed attribution's residual on the pilot M (the local trainings of
        :meth:`mse_plan`, the same values later passed to :meth:`decide`). The hint is the
        largest mean of ``(f - g)^2`` over the audited outputs; the sizes are
        :func:`attribution.protocol.planner.replan_from_pilot` of it."""
        self._expect(Phase.ATTRIBUTION, "size_from_pilot")
        if self.params.planning != "pilot" or self.planning is not None:
            raise LocalProtocolError("size_from_pilot: the session is not waiting for a pilot")
        attribution = need(self.attribution, "the committed attribution (streamed first)")
        plan = need(self.mse_plan(), "the pilot M")
        pilot = np.asarray(pilot_values, dtype=np.float64).reshape(plan.n_rows, -1)
        masks = self._masks_fn(plan)
        residual_sq = [
            float(np.mean((pilot[:, o] - g_values(attribution[o], masks)) ** 2))
            for o in self.params.outputs
        ]
        sized, planned = replan_from_pilot(self.task, self.opened_params, max(residual_sq))
        self.params = sized
        self.layout = ChallengeLayout(sized.n_pairs, sized.n_single)
        self._pilot_digest = values_digest(pilot)
        self.planning = {
            **self._opening_record(),
            "pilot_size": plan.n_rows,
            "pilot_mean_sq_residual": residual_sq,
            # the hint the sizes were planned at: below the pilot's when the budget bound
            "planned_mean_sq_residual": planned,
            "capped": planned < max(residual_sq),
            "sized": True,
        }

    def _opening_record(self) -> dict[str, Any]:
        """The certificate's record of what a pilot-planned session opened with."""
        return {
            "planning": "pilot",
            "opened_params": self.opened_params.to_dict(),
            "opened_params_digest": self.opened_params.digest().hex(),
        }

    def adopt_sizes(self, sized: ProtocolParams) -> None:
        """Offline inspection of a decided session (a report): take the certified sizes of
        a pilot-planned session without its pilot, to re-derive E and C. ``sized`` must
        be the opening parameters with the sizes filled in."""
        if sized.opening() != self.opened_params:
            raise LocalProtocolError("adopt_sizes: not this session's opening parameters")
        self.params = sized
        self.layout = ChallengeLayout(sized.n_pairs, sized.n_single)

    # -- 3 ---------------------------------------------------------------------------
    def reveal_challenge(self) -> ChallengeReveal:
        self._expect(Phase.ATTRIBUTION, "reveal_challenge")
        sizes = None
        if self.params.planning == "pilot":
            if self.planning is None:
                raise LocalProtocolError("reveal_challenge: the pilot has not fixed the sizes")
            sizes = self.params.size_fields()
        msg = ChallengeReveal(seed=self.secrets.seed_e, salt=self.secrets.salt_e, plan=sizes)
        self._log(Direction.VERIFIER_TO_PROVER, "reveal_challenge", msg.to_bytes())
        self.phase = Phase.CHALLENGE
        return msg

    def challenge_plan(self) -> ChallengePlan:
        if self.phase < Phase.ATTRIBUTION:
            raise LocalProtocolError("E is defined only after the attribution commitment")
        return make_challenge_plan(
            self.task, self.params, self.layout, self.secrets.seed_e, self.bind
        )

    # -- 5 ---------------------------------------------------------------------------
    def on_evaluation_commitment(self, data: bytes) -> None:
        self._expect(Phase.CHALLENGE, "on_evaluation_commitment")
        shape = (self.layout.n_rows, self.task.n_outputs)
        self.root_f = self._on_commit(data, EvaluationCommitment, "evaluations", shape)
        self.phase = Phase.EVALUATIONS

    def receive_attribution(self, values: npt.ArrayLike) -> None:
        """The streamed attribution (flat, row-major (outputs, 1 + N)); root rechecked."""
        if self.phase < Phase.ATTRIBUTION or self.phase == Phase.DECIDED:
            raise LocalProtocolError("the attribution can be received only after its commitment")
        arr = self._vector(values, self.task.n_outputs * (self.task.n_points + 1), "attribution")
        if arr is None:
            return
        if vector_root(arr) != self.root_a:
            self._fail("commitment_mismatch", "the attribution does not match its root")
            return
        self.attribution = arr.reshape(self.task.n_outputs, self.task.n_points + 1)

    def receive_evaluations(self, values: npt.ArrayLike) -> None:
        """The streamed f-values of E (flat, row-major (|E|, outputs)); root rechecked."""
        self._expect(Phase.EVALUATIONS, "receive_evaluations")
        arr = self._vector(values, self.layout.n_rows * self.task.n_outputs, "evaluations")
        if arr is None:
            return
        if vector_root(arr) != self.root_f:
            self._fail("commitment_mismatch", "the f-values do not match their root")
            return
        vals = arr.reshape(self.layout.n_rows, self.task.n_outputs)
        if np.any(np.abs(vals) > self.task.bound):
            self._fail("malformed", f"f-values outside [-b, b] with b = {self.task.bound}")
            return
        self.evaluations = vals

    def reject_stream(self, what: str, detail: str) -> None:
        """A Prover stream that broke its framing (wrong length, stray chunks) fixes the
        verdict to REJECT ``malformed``, like a malformed vector."""
        if self.phase < Phase.ATTRIBUTION or self.phase == Phase.DECIDED:
            raise LocalProtocolError("a stream can be rejected only after its commitment")
        self._fail("malformed", f"{what}: {detail}")

    def _vector(self, values: npt.ArrayLike, length: int, what: str) -> FloatArray | None:
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size != length:
            self._fail("malformed", f"{what}: {arr.size} values, expected {length}")
            return None
        if not np.all(np.isfinite(arr)):
            self._fail("malformed", f"{what}: non-finite values")
            return None
        return arr

    # -- 6 ---------------------------------------------------------------------------
    def spot_check_rows(self) -> list[int]:
        """The secret set C (all of E in non-interactive mode)."""
        if self.params.mode == "naive":
            return []
        if self.params.mode == "noninteractive":
            return list(range(self.layout.n_rows))
        return spot_check_rows(self.secrets.seed_c, self.bind, self.layout.n_rows, self.params.k)

    def mse_plan(self) -> MsePlan | None:
        if self.params.m == 0:
            return None
        return MsePlan(
            self.task.n_points,
            self.params.m,
            prob_to_u32(self.task.p),
            self.secrets.seed_m,
            self.bind,
        )

    def decide(
        self,
        spot_values: FloatArray,
        mse_values: FloatArray | None = None,
        claimed_mse: FloatArray | None = None,
    ) -> Outcome:
        """Decide from the local retrainings of C (and M); sign and reveal the secrets."""
        mode = self.params.mode
        needed = Phase.EVALUATIONS if mode == "interactive" else Phase.ATTRIBUTION
        early = self.failure is not None and Phase.ATTRIBUTION <= self.phase < Phase.DECIDED
        if not early and (self.phase not in (needed, Phase.CHALLENGE) or self.phase < needed):
            raise LocalProtocolError(f"decide: not allowed in phase {self.phase.name}")
        if self.planning is not None and values_digest(mse_values) != self._pilot_digest:
            raise LocalProtocolError("decide: the MSE values are not the pilot that sized E")
        evaluation = self.evaluate(spot_values, mse_values, claimed_mse)
        return self._finish(evaluation, spot_values, mse_values)

    def evaluate(
        self,
        spot_values: FloatArray,
        mse_values: FloatArray | None = None,
        claimed_mse: FloatArray | None = None,
    ) -> Evaluation:
        """The decision without signing (pure: also used to replay a report)."""
        mode = self.params.mode
        rows = self.spot_check_rows()
        outputs = self.params.outputs
        stats: list[dict[str, Any]] = []
        tau = self.task.tau
        failure = self.failure
        if failure is None and self.attribution is None:
            failure = ("malformed", "the attribution was never received")
        if failure is None and mode == "interactive" and self.evaluations is None:
            failure = ("malformed", "the f-values were never received")
        spot = np.asarray(spot_values, dtype=np.float64)
        if failure is not None and spot.size == 0:
            # decided before any local training (docs/protocol.md section 2): C untrained
            rows = []
        spot = spot.reshape(len(rows), self.task.n_outputs)
        spot_failures = 0
        if failure is None and mode == "interactive" and rows:
            committed = need(self.evaluations, "f-values")[rows]
            diff = np.abs(committed - spot)
            bad = np.any(diff > tau, axis=1) if tau > 0 else np.any(committed != spot, axis=1)
            spot_failures = int(bad.sum())
            if spot_failures:
                failure = (
                    "spot_check_failed",
                    f"{spot_failures} of {len(rows)} spot-checked challenges differ",
                )
        if failure is None:
            attribution = need(self.attribution, "attribution")
            for o in outputs:
                ok, eg2 = prescreen(
                    attribution[o], self.task.p, self.task.bound, self.params.epsilon
                )
                if not ok:
                    failure = (
                        "prescreen",
                        f"output {o}: E[g^2] = {eg2:.4g} exceeds (b + sqrt(eps))^2",
                    )
                    break
        if failure is not None:
            verdict, (reason, detail) = REJECT, failure
        else:
            verdict, reason, detail, stats = self._statistics(spot, mse_values, claimed_mse)
        return Evaluation(verdict, reason, detail, stats, len(rows), spot_failures)

    def _statistics(
        self, spot: FloatArray, mse_values: FloatArray | None, claimed: FloatArray | None
    ) -> tuple[str, str, str, list[dict[str, Any]]]:
        attribution = need(self.attribution, "attribution")
        mode = self.params.mode
        plan = self.mse_plan()
        mse_masks = self._masks_fn(plan) if plan is not None else None
        f_all = self.evaluations if mode == "interactive" else spot
        e_masks = None
        needs_g = self.params.estimator == "residual" or self.params.mse_source == "delegated"
        if needs_g and mode != "naive":
            e_masks = self._masks_fn(self.challenge_plan())
        stats: list[dict[str, Any]] = []
        verdicts = []
        # C, derived once for every output's clip statistics (committed band)
        spot_rows = self.spot_check_rows() if self.params.band == "committed" else []
        for j, o in enumerate(self.params.outputs):
            row = attribution[o]
            mse_terms = None
            if mse_masks is not None and mse_values is not None:
                mse_terms = (mse_values[:, o] - g_values(row, mse_masks)) ** 2
            if mode == "naive":
                mse_hat = float(need(mse_terms, "MSE samples").mean())
                claimed = need(claimed, "the Prover's claimed MSE")
                v = ACCEPT if mse_hat <= float(claimed[j]) + self.params.epsilon else REJECT
                verdicts.append(v)
                stats.append(
                    {
                        "output": o,
                        "verdict": v,
                        "mse_hat": mse_hat,
                        "claimed_mse": float(claimed[j]),
                    }
                )
                continue
            f_all = need(f_all, "f-values of E")
            g_e = g_values(row, e_masks) if e_masks is not None else np.zeros(len(f_all))
            band: tuple[FloatArray, FloatArray] | None = None
            clip: dict[str, Any] | None = None
            target: dict[str, Any] = {}
            if self.params.band == "committed":
                band, clip, target = self._band(o, row, g_e, spot, spot_rows, mse_values, mse_masks)
            dec = decide_output(
                self.params,
                self.layout,
                o,
                f_all[:, o],
                g_e,
                self.task.bound,
                self.task.tau,
                mse_terms,
                band,
                None if clip is None else clip["rate_upper"],
            )
            verdicts.append(dec.verdict)
            stats.append({**dec.to_dict(), **target})
        if REJECT in verdicts:
            return REJECT, "mse_gap", "the error bound excludes eps/2 for some output", stats
        if INCONCLUSIVE in verdicts:
            return INCONCLUSIVE, "budget", "the budget was too small to decide", stats
        return ACCEPT, "", "", stats

    def _band(
        self,
        output: int,
        row: FloatArray,
        g_e: FloatArray,
        spot: FloatArray,
        spot_rows: list[int],
        pilot: FloatArray | None,
        pilot_masks: npt.NDArray[np.bool_] | None,
    ) -> tuple[tuple[FloatArray, FloatArray], dict[str, Any], dict[str, Any]]:
        """The committed band of one output (docs/protocol.md section 6.13): its radius from
        the pilot M, its bounds on E, and how often it clips the spot-checked values."""
        b, tau = self.task.bound, self.task.tau
        pilot = need(pilot, "the pilot trainings M")
        residuals = pilot[:, output] - g_values(row, need(pilot_masks, "the pilot's masks"))
        radius = band_radius(residuals, self.params.radius_scale, tau, b)
        band = committed_band(g_e, radius, b)
        rows = self.spot_check_rows()
        clip = clip_statistics(spot[:, output], band[0][rows], band[1][rows], self.params.delta)
        target = {
            "target": {
                "band": "committed",
                "formula": "f_h(x) = clip(f(x), g(x) - R, g(x) + R), then clipped to [-b, b]",
                "radius": radius,
                "pilot_size": int(residuals.size),
                "pilot_rms_residual": float(np.sqrt(np.mean(residuals**2))),
                "clip": clip,
            }
        }
        return band, clip, target

    def _finish(
        self, ev: Evaluation, spot_values: FloatArray, mse_values: FloatArray | None
    ) -> Outcome:
        verdict, reason, detail, stats = ev.verdict, ev.reason, ev.detail, ev.stats
        n_spot, spot_failures = ev.n_spot, ev.spot_failures
        p = self.params
        s = self.secrets
        mode = p.mode
        verifier_trainings = n_spot + (0 if mse_values is None else len(mse_values))
        guarantee = (
            f"with probability >= {1 - p.delta:g} over the Verifier's randomness, every "
            f"verified output's attribution has err(a) = mse(a) - min affine mse <= "
            f"{p.epsilon:g} (an aggregate l2 bound on the degree<=1 part, not a per-point "
            "bound)"
            if verdict == ACCEPT
            else "none (the attribution was not accepted)"
        )
        if verdict == ACCEPT and p.band == "committed":
            guarantee += (
                "; the audited target is f_h = f clipped to the committed attribution "
                "+- R (R from the Verifier's pilot M), and each output's target.clip states "
                "how often f_h differs from f (upper confidence bound) and the mean of "
                "(f - f_h)^2 on the spot checks"
            )
        certificate: dict[str, Any] = {
            "verdict": verdict,
            "reason": reason,
            "detail": detail,
            "guarantee": guarantee,
            "task_digest": self.task_digest.hex(),
            "task": {
                "name": self.task_name,
                "n_points": self.task.n_points,
                "n_outputs": self.task.n_outputs,
                "bound": self.task.bound,
                "tau": self.task.tau,
                "p": self.task.p,
            },
            "params": p.to_dict(),
            "params_digest": p.digest().hex(),
            "session_id": self.session_id.hex(),
            "prover_key": self.prover_key.hex(),
            "verifier_key": self.key.public_key_raw.hex(),
            "attribution_root": self.root_a.hex(),
            "evaluations_root": self.root_f.hex(),
            "sizes": {
                "E": self.layout.n_rows,
                "k": n_spot if mode == "interactive" else 0,
                "M": p.m,
                "prover_trainings": self.layout.n_rows if mode == "interactive" else 0,
                "verifier_trainings": verifier_trainings,
            },
            "spot_check_failures": spot_failures,
            "outputs": stats,
            "seeds": {k: getattr(s, k).hex() for k in s.__dataclass_fields__},
            "transcript_head": self.head.hex(),
            "spot_values_sha256": values_digest(spot_values),
            "mse_values_sha256": values_digest(mse_values),
        }
        if p.planning == "pilot":
            # docs/protocol.md section 6.14: what was opened and what the pilot fixed
            certificate["planning"] = self.planning or {**self._opening_record(), "sized": False}
        hashes = field_hashes(certificate)
        digest = certificate_digest(hashes)
        signature = statements.sign(
            self.key, statements.verdict(self.session_id, self.head, verdict, reason, digest)
        )
        msg = VerdictMessage(
            verdict=verdict,
            reason=reason,
            certificate_digest=digest,
            seed_c=s.seed_c,
            salt_c=s.salt_c,
            seed_m=s.seed_m,
            salt_m=s.salt_m,
            signature=signature,
        )
        if self.transcript is not None:
            self._log(Direction.VERIFIER_TO_PROVER, "verdict", msg.to_bytes())
        self.phase = Phase.DECIDED
        return Outcome(verdict, reason, certificate, msg, hashes)

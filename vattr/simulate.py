"""In-process protocol runs: an honest or dishonest Prover against the Verifier engine.

Both roles run the same state machines that the gRPC service uses; messages pass as their
canonical bytes; training goes through ``Task.train_batch`` (instant for the synthetic
oracle). Each run derives the Verifier's secrets and the Prover's nonce from
``(seed, run)``, so a simulation is reproducible run by run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.commitments import SigningKey
from attribution.protocol import need
from attribution.protocol.challenges import ChallengePlan, MsePlan
from attribution.protocol.common import task_info
from attribution.protocol.decision import ACCEPT
from attribution.protocol.driver import LocalTrainer, run_verifier
from attribution.protocol.planner import Plan
from attribution.protocol.prover import ProverSession
from attribution.protocol.verifier import Outcome, VerifierSecrets, VerifierSession
from attribution.stats import clopper_pearson
from attribution.subsets import xof
from attribution.tasks.runtime import OracleTask, Task
from vattr.redteam.strategies import Strategy

FloatArray = npt.NDArray[np.float64]


@functools.lru_cache(maxsize=2)
def _plan_masks(plan: ChallengePlan | MsePlan) -> npt.NDArray[np.bool_]:
    """All masks of E (or M), derived once per plan and shared by the in-process roles and
    the local training of a run."""
    return plan.masks(range(plan.n_rows))


SIM_CHUNK = 4096  # models per train_batch call in simulations


@dataclass(frozen=True)
class RunKeys:
    """Everything random in one simulated run, derived from (seed, run): the Verifier's
    secrets come from ``master``, the Prover's nonce is ``nonce``."""

    master: bytes
    verifier_key: SigningKey
    prover_key: SigningKey
    nonce: bytes


def run_keys(seed: int, run: int) -> RunKeys:
    master = xof("simulate", seed.to_bytes(8, "big"), b"", [run], 32)
    return RunKeys(
        master,
        SigningKey.from_seed(xof("verifier-key", master, b"", [], 32)),
        SigningKey.from_seed(xof("prover-key", master, b"", [], 32)),
        xof("nonce", master, b"", [], 32),
    )


@dataclass
class RunResult:
    outcome: Outcome
    seconds: float
    true_err: list[float] | None = None


class InProcessProver:
    """A :class:`~attribution.protocol.driver.ProverPort` over the Prover's state machine
    in this process, following ``strategy``: messages pass as their canonical bytes, E is
    trained with ``Task.train_chunked`` (instant for the synthetic oracle)."""

    def __init__(
        self, task: Task, prover: ProverSession, strategy: Strategy, honest: FloatArray
    ) -> None:
        self.task = task
        self.prover = prover
        self.strategy = strategy
        self.attribution = strategy.attribution(honest, task.spec.p)
        self.evaluations: FloatArray | None = None

    def open_session(self, body: bytes) -> bytes:
        return self.prover.on_open(body).to_bytes()

    def commit_attribution(self) -> bytes:
        return self.prover.commit_attribution(self.attribution).to_bytes()

    def reveal_challenge(self, body: bytes) -> str:
        e_plan = self.prover.on_challenge(body)
        masks = _plan_masks(e_plan)
        F = self.task.train_chunked(masks, e_plan.seeds(range(e_plan.n_rows)), SIM_CHUNK)
        params = need(self.prover.params, "parameters")
        self.evaluations = self.strategy.committed(
            F, self.attribution, e_plan, params, self.task.bound, masks
        )
        return "in-process"

    def wait_trained(self, job: str, total: int) -> None:
        return None

    def commit_evaluations(self) -> bytes:
        return self.prover.commit_evaluations(need(self.evaluations, "f-values")).to_bytes()

    def stream_attribution(self, expected: int) -> FloatArray:
        return self.strategy.stream_attribution(self.attribution)

    def stream_evaluations(self, expected: int) -> FloatArray:
        return self.strategy.stream_evaluations(need(self.evaluations, "f-values"))

    def deliver_verdict(self, body: bytes) -> None:
        self.prover.on_verdict(body)


def local_trainer(task: Task) -> LocalTrainer:
    """The Verifier's trainings in this process (masks shared with the Prover's)."""

    def train(plan: ChallengePlan | MsePlan, rows: Sequence[int], label: str) -> FloatArray:
        rows = list(rows)
        return task.train_chunked(_plan_masks(plan)[rows], plan.seeds(rows), SIM_CHUNK)

    return train


def run_once(
    task: Task,
    plan: Plan,
    strategy: Strategy,
    honest: FloatArray,
    seed: int,
    run: int,
    claimed_mse: FloatArray | None = None,
) -> RunResult:
    """One complete protocol session through the audit's message loop
    (:func:`attribution.protocol.driver.run_verifier`); returns the Verifier's outcome."""
    start = time.perf_counter()
    info = task_info(task)
    keys = run_keys(seed, run)
    verifier = VerifierSession(
        info,
        task.digest,
        plan.params,
        keys.verifier_key,
        VerifierSecrets.derive(keys.master),
        masks_fn=_plan_masks,
        task_name=task.spec.name,
    )
    port = InProcessProver(
        task, ProverSession(info, task.digest, keys.prover_key, nonce=keys.nonce), strategy, honest
    )
    outcome = run_verifier(verifier, port, local_trainer(task), claimed_mse=claimed_mse).outcome
    true_err = None
    if isinstance(task, OracleTask):
        A = port.attribution
        true_err = [task.oracle.err(float(A[o, 0]), A[o, 1:]) for o in plan.params.outputs]
    return RunResult(outcome, time.perf_counter() - start, true_err)


@dataclass
class SimulationSummary:
    runs: int
    accepted: int
    verdicts: dict[str, int]
    reasons: dict[str, int]
    accept_rate: float
    accept_ci: tuple[float, float]
    prover_trainings: int
    verifier_trainings: int
    true_err_over_eps: float | None
    mean_statistic: float | None
    mean_upper: float | None
    seconds_per_run: float
    plan: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "accepted": self.accepted,
            "accept_rate": self.accept_rate,
            "accept_ci": list(self.accept_ci),
            "verdicts": self.verdicts,
            "reasons": self.reasons,
            "prover_trainings": self.prover_trainings,
            "verifier_trainings": self.verifier_trainings,
            "true_err_over_eps": self.true_err_over_eps,
            "mean_statistic": self.mean_statistic,
            "mean_upper_bound": self.mean_upper,
            "seconds_per_run": self.seconds_per_run,
            "plan": self.plan,
        }


def simulate(
    task: Task,
    plan: Plan,
    strategy: Strategy,
    honest: FloatArray,
    runs: int,
    seed: int = 0,
    claimed_mse: FloatArray | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """``runs`` independent sessions; acceptance rate with a 95 % Clopper-Pearson interval."""
    verdicts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    stats: list[float] = []
    uppers: list[float] = []
    errs: list[float] = []
    seconds = 0.0
    sizes: dict[str, int] = {}
    for run in range(runs):
        res = run_once(task, plan, strategy, honest, seed, run, claimed_mse)
        out = res.outcome
        verdicts[out.verdict] = verdicts.get(out.verdict, 0) + 1
        if out.reason:
            reasons[out.reason] = reasons.get(out.reason, 0) + 1
        for o in out.certificate["outputs"]:
            if "statistic" in o:
                stats.append(o["statistic"])
                uppers.append(o["upper_bound"])
        if res.true_err is not None:
            errs.append(max(res.true_err))
        seconds += res.seconds
        sizes = out.certificate["sizes"]
        if progress is not None:
            progress(1)
    accepted = verdicts.get(ACCEPT, 0)
    eps = plan.params.epsilon
    return SimulationSummary(
        runs=runs,
        accepted=accepted,
        verdicts=verdicts,
        reasons=reasons,
        accept_rate=accepted / runs,
        accept_ci=clopper_pearson(accepted, runs, 0.05),
        prover_trainings=int(sizes.get("prover_trainings", 0)),
        verifier_trainings=int(sizes.get("verifier_trainings", 0)),
        true_err_over_eps=float(np.mean(errs)) / eps if errs else None,
        mean_statistic=float(np.mean(stats)) if stats else None,
        mean_upper=float(np.mean(uppers)) if uppers else None,
        seconds_per_run=seconds / max(runs, 1),
        plan=plan.summary(),
    )

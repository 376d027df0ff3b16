"""In-process protocol runs: an honest or dishonest Prover against the Verifier engine.

Both roles run the same state machines that the gRPC service uses; messages pass as their
canonical bytes; training goes through ``Task.train_batch`` (instant for the synthetic
oracle). Each run derives the Verifier's secrets and the Prover's nonce from
``(seed, run)``, so a simulation is reproducible run by run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.commitments import SigningKey
from attribution.protocol.challenges import ChallengePlan, MsePlan
from attribution.protocol.common import g_values, task_info
from attribution.protocol.decision import ACCEPT
from attribution.protocol.planner import Plan
from attribution.protocol.prover import ProverSession
from attribution.protocol.verifier import Outcome, VerifierSecrets, VerifierSession
from attribution.stats import clopper_pearson
from attribution.subsets import xof
from attribution.tasks.runtime import OracleTask, Task
from vattr.redteam.strategies import EvalContext, Strategy

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


def run_once(
    task: Task,
    plan: Plan,
    strategy: Strategy,
    honest: FloatArray,
    seed: int,
    run: int,
    claimed_mse: FloatArray | None = None,
) -> RunResult:
    """One complete protocol session; returns the Verifier's outcome."""
    start = time.perf_counter()
    params = plan.params
    info = task_info(task)
    keys = run_keys(seed, run)
    master = keys.master
    verifier_key, prover_key = keys.verifier_key, keys.prover_key
    verifier = VerifierSession(
        info,
        task.digest,
        params,
        verifier_key,
        VerifierSecrets.derive(master),
        masks_fn=_plan_masks,
        task_name=task.spec.name,
    )
    prover = ProverSession(info, task.digest, prover_key, nonce=keys.nonce)
    verifier.on_opened(prover.on_open(verifier.open().to_bytes()).to_bytes())
    A = strategy.attribution(honest, info.p)
    verifier.on_attribution_commitment(prover.commit_attribution(A).to_bytes())
    mode = params.mode
    e_plan = None
    if mode == "interactive":
        e_plan = prover.on_challenge(verifier.reveal_challenge().to_bytes())
        masks = _plan_masks(e_plan)
        F = task.train_chunked(masks, e_plan.seeds(range(e_plan.n_rows)), SIM_CHUNK)
        if strategy.corrupts:
            g = np.column_stack([g_values(A[o], masks) for o in range(A.shape[0])])
            F = strategy.evaluations(F, EvalContext(params, e_plan.layout, info.bound, g))
        verifier.on_evaluation_commitment(prover.commit_evaluations(F).to_bytes())
        verifier.receive_attribution(strategy.stream_attribution(A))
        verifier.receive_evaluations(F.ravel())
    else:
        verifier.receive_attribution(strategy.stream_attribution(A))
    rows = verifier.spot_check_rows()
    spot = np.zeros((0, info.n_outputs))
    if rows:
        local_plan = verifier.challenge_plan()
        masks = _plan_masks(local_plan)
        spot = task.train_chunked(masks[rows], local_plan.seeds(rows), SIM_CHUNK)
    mse_values = None
    m_plan = verifier.mse_plan()
    if m_plan is not None:
        seeds = m_plan.seeds(range(m_plan.n_rows))
        mse_values = task.train_chunked(_plan_masks(m_plan), seeds, SIM_CHUNK)
    outcome = verifier.decide(spot, mse_values, claimed_mse)
    if mode == "interactive":
        prover.on_verdict(outcome.message.to_bytes())
    true_err = None
    if isinstance(task, OracleTask):
        true_err = [task.oracle.err(float(A[o, 0]), A[o, 1:]) for o in params.outputs]
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

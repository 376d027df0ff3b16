"""Protocol benchmarks recorded in docs/benchmarks.md (synthetic oracle, exact ground truth).

    python benchmarks/bench_protocol.py plan                 # sizes: N-independence, 1/eps slope
    python benchmarks/bench_protocol.py sim --runs 200       # acceptance table (slow)
    python benchmarks/bench_protocol.py estimators           # measured |E|: residual vs paper

Every line printed is one JSON object; ``sim`` rows carry accept_rate with its 95 %
Clopper-Pearson interval, Prover and Verifier trainings and the true err(a)/eps.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from attribution.estimators.sources import claimed_mse, honest_attribution
from attribution.protocol.common import TaskInfo, task_info
from attribution.protocol.planner import plan_run
from attribution.stats import log_log_slope
from attribution.tasks import load_task, resolve_spec
from vattr.redteam.strategies import parse_strategy
from vattr.simulate import simulate

EPS, DELTA = 0.05, 0.05


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def cmd_plan(_: argparse.Namespace) -> None:
    task = load_task(resolve_spec("synthetic"))
    hint = task.oracle.exact().B_ge2
    for n in (100, 1_000, 10_000, 100_000):
        p = plan_run(TaskInfo(n, 1, 1.0, 0.0, 0.5), EPS, DELTA, hint=hint, rho=0.3)
        emit(
            {
                "bench": "plan_vs_N",
                "N": n,
                **{
                    k: p.summary()[k]
                    for k in ("E", "k", "M", "verifier_trainings", "prover_trainings", "rho")
                },
            }
        )
    eps_list = [0.05, 0.025, 0.0125, 0.00625, 0.003125]
    ks, es = [], []
    for e in eps_list:
        p = plan_run(TaskInfo(1000, 1, 1.0, 0.0, 0.5), e, DELTA, hint=hint, rho=0.3)
        ks.append(p.params.k)
        es.append(p.params.n_challenges)
        emit(
            {
                "bench": "plan_vs_eps",
                "epsilon": e,
                "k": p.params.k,
                "E": p.params.n_challenges,
                "verifier_trainings": p.verifier_trainings,
            }
        )
    inv = [1 / e for e in eps_list]
    emit(
        {
            "bench": "slopes",
            "rho": 0.3,
            "k_vs_1_over_eps": log_log_slope(inv, ks),
            "E_vs_1_over_eps": log_log_slope(inv, es),
        }
    )
    for est in ("residual", "paper"):
        p = plan_run(
            task_info(task), EPS, DELTA, estimator=est, hint=hint if est == "residual" else None
        )
        emit({"bench": "plan_estimator", "estimator": est, **p.summary()})


def cmd_sim(args: argparse.Namespace) -> None:
    cases: list[tuple[int, str, str, int]] = [
        # N, strategy, honest attribution, runs
        (1000, "honest", "exact", args.runs),
        (100, "honest", "exact", args.runs),
        (10_000, "honest", "exact", max(1, args.runs // 10)),
        (1000, "honest", "datamodel:40000", args.runs),
        (1000, "scale:0.5", "exact", args.runs),
        (1000, "boost:0.05", "exact", args.runs // 4),
        (1000, "zero:0.5", "exact", args.runs // 4),
        (1000, "noise:0.015", "exact", args.runs // 4),
        (1000, "corrupt:0.01", "exact", args.runs // 4),
        (1000, "corrupt-targeted:0.002", "exact", args.runs // 4),
        (1000, "inflate-residual", "exact", args.runs // 4),
        (1000, "corrupt-targeted:0.0001", "exact", args.runs // 4),
        (1000, "plan-aware", "exact", args.runs // 4),
    ]
    if args.only:
        cases = [c for c in cases if c[1] in args.only]
    if args.same_runs:
        cases = [(n, st, how, args.runs) for n, st, how, _ in cases]
    for n, strategy, how, runs in cases:
        task = load_task(resolve_spec("synthetic", [f"data.synthetic.n={n}"]))
        hint = task.oracle.exact().B_ge2
        honest = honest_attribution(task, how)
        plan = plan_run(task_info(task), EPS, DELTA, hint=hint)
        t = time.perf_counter()
        s = simulate(task, plan, parse_strategy(strategy, 3), honest, max(1, runs), seed=10)
        row = s.to_dict()
        row.pop("plan")
        emit(
            {
                "bench": "sim",
                "N": n,
                "strategy": strategy,
                "honest": how,
                "epsilon": EPS,
                "seconds": round(time.perf_counter() - t, 1),
                **row,
            }
        )
    if not args.only or "naive" in args.only:
        task = load_task(resolve_spec("synthetic"))
        honest = honest_attribution(task, "exact")
        s_ = parse_strategy("scale:0.5")
        plan = plan_run(task_info(task), EPS, DELTA, hint=task.oracle.exact().B_ge2, mode="naive")
        claimed = claimed_mse(task, s_.attribution(honest, 0.5), plan.params.outputs)
        s = simulate(task, plan, s_, honest, args.runs, seed=11, claimed_mse=claimed)
        row = s.to_dict()
        row.pop("plan")
        emit({"bench": "sim", "N": 1000, "strategy": "scale:0.5", "baseline": "naive", **row})


def _accepts(
    task: Any, honest: Any, estimator: str, eps: float, n: int, m: int, runs: int
) -> tuple[float, int]:
    plan = plan_run(
        task_info(task),
        eps,
        DELTA,
        estimator=estimator,
        preset="explicit",
        rho=0.3 if estimator == "residual" else 0.1,
        explicit={"n": n, "k": 0, "m": m},
        mode="noninteractive",
    )
    s = simulate(task, plan, parse_strategy("honest"), honest, runs, seed=5)
    return s.accept_rate, plan.params.n_challenges


def cmd_estimators(args: argparse.Namespace) -> None:
    """Smallest |E| (doubling search) at which >= 90 % of honest runs are accepted, for
    both estimators on a near-linear oracle at the same eps and delta (non-interactive
    mode, so that only the estimator differs)."""
    near_linear = [
        "data.synthetic.linear_mass=0.3",
        "data.synthetic.intercept=0.0",
        "data.synthetic.pair_mass=0.004",
        "data.synthetic.triple_mass=0.001",
    ]
    task = load_task(resolve_spec("synthetic", near_linear))
    ex = task.oracle.exact()
    honest = honest_attribution(task, "exact")
    emit(
        {
            "bench": "near_linear_task",
            "B0": ex.B0,
            "B1": ex.B1,
            "B_ge2": ex.B_ge2,
            "B_ge3": ex.B_ge3,
            "clip_probability": ex.clip_probability,
        }
    )
    for estimator in args.estimators:
        n = args.start
        while n <= args.max_n:
            m = n if estimator == "paper" else 0
            rate, e_size = _accepts(task, honest, estimator, args.eps, n, m, args.runs)
            emit(
                {
                    "bench": "estimator_search",
                    "estimator": estimator,
                    "epsilon": args.eps,
                    "pairs_per_level": n,
                    "E": e_size,
                    "M": m,
                    "accept_rate": rate,
                }
            )
            if rate >= 0.9:
                break
            n *= 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("plan")
    p = sub.add_parser("sim")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--only", nargs="*")
    p.add_argument("--same-runs", action="store_true", help="--runs for every case")
    p = sub.add_parser("estimators")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--max-n", type=int, default=1 << 20)
    p.add_argument("--start", type=int, default=256, help="first pairs-per-level tried")
    p.add_argument("--estimators", nargs="+", default=["residual", "paper"])
    args = parser.parse_args()
    {"plan": cmd_plan, "sim": cmd_sim, "estimators": cmd_estimators}[args.cmd](args)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()

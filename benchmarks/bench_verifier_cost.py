"""What the Verifier costs, against what the Prover trains and against fitting it oneself.

For every task and three accuracies the plan of both bands (``band="task"``, today's bound,
and ``band="committed"``, docs/protocol.md section 6.13) is printed side by side; then the
acceptance of honest and dishonest Provers under the committed band, where a run is cheap.

    .venv/bin/python benchmarks/bench_verifier_cost.py                        # both tables
    .venv/bin/python benchmarks/bench_verifier_cost.py --tables sizes         # table 1 (3-6 min)
    .venv/bin/python benchmarks/bench_verifier_cost.py --tables acceptance --runs 20  # table 2
    .venv/bin/python benchmarks/bench_verifier_cost.py --tables sizes --tasks synthetic,digits-mlp

Hints (``B``). Each task's ``B`` stands in for B_>=2 of its audited output: the mean
output ``task.n_outputs - 1`` (``output_names[-1] == "mean"``) of the real tasks, output 0
of the synthetic oracle. It is the honest attribution's E[r^2] = E[(f - g_a)^2] on fresh
B_p runs (:func:`attribution.estimators.sources.residual_hint`'s runs, seed ``HINT_SEED``),
and E[r^2] = B_>=2 + err(a), so ``B ~ B_>=2`` only for a near-optimal affine attribution
(and it over-states B_>=2 by err(a) otherwise): exact on the synthetic oracle (its optimum
theta*, E[r^2] = B_>=2 exactly); ``datamodel:10000`` on breast_cancer-logreg (least
squares on R = 10,000 runs, err ~ N B_>=2 / R ~ 5 % of B_>=2); the calibrated influence
function ``if-exact`` on randhie-logreg (256 calibration runs) and, with 64, on
digits-logreg; ``if-ggn:16`` (Gauss-Newton influence, 16 calibration runs) on digits-mlp,
whose runs cost 0.25 .. 1.4 s each on 2 shared cores (a datamodel would need more than
N + 1 = 1,439 of them). The hint runs are capped per task (``HONEST``: 64 on digits-mlp,
128 on digits-logreg, 1,000 elsewhere); the tables print the standard error of each B.
The synthetic sizes N = 10^3 .. 10^6 are plan-only (the oracle for N = 10^6 loads in
about a second; nothing is trained).

Table 1 (sizes, from :func:`attribution.protocol.planner.plan_run` with ``outputs=(o,)``,
``hint=B``, delta = 0.05, eps in {2B, B, B/10}; one row per task, eps and band):

* ``|E|``: Prover trainings; ``k``: spot checks; ``|M|``: Verifier-local MSE samples
  (the committed band's pilot of 100 trainings);
* Verifier = ``k + |M|`` (the plan's ``verifier_trainings``, interactive mode);
* self-fit = ``ceil(2 N B / eps)``: runs of a least-squares datamodel with err <= eps/2
  (err ~ N B_>=2 / R, docs/protocol.md section 7.6; the plan's
  ``self_attribution_trainings``);
* ``k/|E|`` (the fraction of the Prover's work the Verifier redoes) and Verifier/self-fit
  (below 1: verifying is cheaper than fitting oneself);
* ``m_tol``: corrupted values of E that can go undetected (probability > delta_c), and rho.

Table 2 (acceptance, synthetic oracle at N = 1000, eps/b^2 = 0.05, delta = 0.05, band
committed): ``--runs`` runs of :func:`vattr.simulate.simulate` per strategy (honest
attribution = the exact optimum; default 50 runs, at most ~30 min on 2 cores, 100 runs
27 .. 58 min), accepted count, rate, its 95 % Clopper-Pearson interval, the verdicts, the true
err(a)/eps of the committed attribution, the Prover and Verifier trainings of the last
run's certificate (the committed band re-plans after its pilot, so they differ from the
forecast of table 1) and the seconds per run.

``--json`` prints one JSON object per row instead of the markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attribution.estimators.registry import fit_runs
from attribution.estimators.sources import HINT_SEED, compute_attribution, residual_hint
from attribution.protocol.common import TaskInfo, g_values, task_info
from attribution.protocol.planner import plan_run
from attribution.stats import clopper_pearson
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask, Task
from vattr.redteam.strategies import parse_strategy
from vattr.simulate import simulate

DELTA = 0.05
BANDS = ("task", "committed")
EPS_DIVISORS = (0.5, 1, 10)  # eps = B / divisor: 2B, B and B/10
TASKS = ("synthetic", "breast_cancer-logreg", "digits-logreg", "digits-mlp", "randhie-logreg")
SYNTHETIC_SIZES = (1_000, 10_000, 100_000, 1_000_000)
# task -> (honest attribution method, fresh runs of the hint measurement)
HONEST: dict[str, tuple[str, int]] = {
    "breast_cancer-logreg": ("datamodel:10000", 1000),
    "randhie-logreg": ("if-exact", 1000),
    "digits-logreg": ("if-exact:64", 128),
    "digits-mlp": ("if-ggn:16", 64),
}
ACCEPT_N, ACCEPT_EPS = 1000, 0.05  # table 2: synthetic N and eps / b^2
STRATEGIES = ("honest", "scale:0.5", "plan-aware", "corrupt-targeted:0.002", "inflate-residual")
STRATEGY_SEED, SIM_SEED = 3, 10  # as benchmarks/bench_protocol.py
# 2 .. 3 s per honest run, 3.5 .. 8 s per dishonest one on 2 shared cores (deriving the
# masks of E, which the pilot grows towards its cap for a scaled attribution): 100 runs of
# the five strategies take 27 .. 58 min depending on the load, 50 runs at most ~30 min.
DEFAULT_RUNS = 50


@dataclass(frozen=True)
class Hint:
    """A task's B (E[r^2] of the honest attribution on its audited output)."""

    task: str
    n_points: int
    output: int
    bound: float
    method: str
    runs: int  # fresh runs of the measurement (0: exact)
    value: float
    stderr: float
    seconds: float


def measure_hint(name: str) -> tuple[Hint, TaskInfo]:
    """Load the task, fit its honest attribution and measure E[r^2] on its audited output."""
    task: Task = load_task(resolve_spec(name))
    if isinstance(task, OracleTask):
        raise ValueError("the synthetic task is planned from its exact B_>=2 (synthetic_hints)")
    output = task.n_outputs - 1
    if task.output_names[-1] != "mean":
        raise ValueError(f"{name}: the last output is {task.output_names[-1]!r}, not 'mean'")
    method, runs = HONEST[name]
    start = time.perf_counter()
    A = compute_attribution(task, method)
    masks, f = fit_runs(task, runs, HINT_SEED)  # the runs of residual_hint(task, A, runs)
    r2 = (f[:, output] - g_values(A[output], masks)) ** 2
    hint = Hint(
        name,
        task.n_points,
        output,
        task.bound,
        method,
        runs,
        float(np.mean(r2)),
        float(np.std(r2, ddof=1) / math.sqrt(runs)),
        time.perf_counter() - start,
    )
    return hint, task_info(task)


def synthetic_hints() -> list[tuple[Hint, TaskInfo]]:
    """The synthetic oracle at each size: B = E[r^2] of its exact optimum = B_>=2 exactly."""
    out = []
    for n in SYNTHETIC_SIZES:
        start = time.perf_counter()
        task = load_task(resolve_spec("synthetic", [f"data.synthetic.n={n}"]))
        assert isinstance(task, OracleTask)
        A = compute_attribution(task, "exact")
        value = residual_hint(task, A)[0]  # B_>=2 + err(theta*) = B_>=2
        assert math.isclose(value, task.oracle.exact().B_ge2, rel_tol=1e-12)
        seconds = time.perf_counter() - start
        hint = Hint(f"synthetic N={n:,}", n, 0, task.bound, "exact", 0, value, 0.0, seconds)
        out.append((hint, task_info(task)))
    return out


def size_rows(hint: Hint, info: TaskInfo) -> list[dict[str, Any]]:
    rows = []
    B, b = hint.value, hint.bound
    for div in EPS_DIVISORS:
        eps = B / div
        for band in BANDS:
            s = plan_run(info, eps, DELTA, outputs=(hint.output,), hint=B, band=band).summary()
            verifier = int(s["verifier_trainings"])
            self_fit = math.ceil(2 * hint.n_points * B / eps)
            if verifier != s["k"] + s["M"]:
                raise RuntimeError(f"{hint.task}: verifier_trainings {verifier} != k + |M|")
            rows.append(
                {
                    "table": "sizes",
                    "task": hint.task,
                    "N": hint.n_points,
                    "B": B,
                    "eps": eps,
                    "eps_over_B": 1 / div,
                    "eps_over_b2": eps / (b * b),
                    "band": band,
                    "E": s["E"],
                    "k": s["k"],
                    "M": s["M"],
                    "verifier": verifier,
                    "self_fit": self_fit,
                    "planner_self_fit": s["self_attribution_trainings"],
                    "k_over_E": s["k"] / s["E"],
                    "verifier_over_self_fit": verifier / self_fit,
                    "m_tolerated": s["m_tolerated"],
                    "rho": s["rho"],
                    "notes": s["notes"],
                }
            )
    return rows


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def print_hints(hints: list[Hint]) -> None:
    print("### Hints: B = E[r^2] of the honest attribution on the audited output\n")
    rows = [
        [
            h.task,
            f"{h.n_points:,}",
            str(h.output),
            _g(h.bound),
            h.method,
            str(h.runs) if h.runs else "exact",
            _g(h.value, 4),
            _g(h.stderr, 2) if h.runs else "0",
            _g(h.value / h.bound**2, 3),
            f"{h.seconds:.1f}",
        ]
        for h in hints
    ]
    print(_md(["task", "N", "output", "b", "honest", "runs", "B", "se(B)", "B/b^2", "s"], rows))
    print()


def print_sizes(rows: list[dict[str, Any]]) -> None:
    print(f"### Table 1: sizes per task, eps and band (delta = {DELTA})\n")
    body = []
    for r in rows:
        body.append(
            [
                r["task"],
                f"{r['N']:,}",
                f"B/{round(1 / r['eps_over_B'])}"
                if r["eps_over_B"] < 1
                else (f"{r['eps_over_B']:g}B" if r["eps_over_B"] > 1 else "B"),
                _g(r["eps"]),
                _g(r["eps_over_b2"]),
                r["band"],
                f"{r['E']:,}",
                f"{r['k']:,}",
                f"{r['M']:,}",
                f"{r['verifier']:,}",
                f"{r['self_fit']:,}",
                f"{r['k_over_E']:.3f}",
                f"{r['verifier_over_self_fit']:.3g}",
                f"{r['m_tolerated']:,}",
                _g(r["rho"]),
            ]
        )
    header = [
        "task",
        "N",
        "eps",
        "eps (abs)",
        "eps/b^2",
        "band",
        "|E|",
        "k",
        "|M|",
        "Verifier k+|M|",
        "self-fit 2NB/eps",
        "k/|E|",
        "Verifier/self-fit",
        "m_tol",
        "rho",
    ]
    print(_md(header, body))
    mismatched = [r for r in rows if r["self_fit"] != r["planner_self_fit"]]
    for r in mismatched:
        print(
            f"\n* {r['task']} eps={_g(r['eps'])} {r['band']}: the plan's self-fit is "
            f"{r['planner_self_fit']:,}, not {r['self_fit']:,} (clamped hint)"
        )
    notes = sorted({(r["task"], n) for r in rows for n in r["notes"]})
    for task, note in notes:
        print(f"\n* planner note ({task}): {note}")
    print()


def acceptance_rows(runs: int) -> list[dict[str, Any]]:
    task = load_task(resolve_spec("synthetic", [f"data.synthetic.n={ACCEPT_N}"]))
    assert isinstance(task, OracleTask)
    B = task.oracle.exact().B_ge2
    eps = ACCEPT_EPS * task.bound**2
    plan = plan_run(task_info(task), eps, DELTA, outputs=(0,), hint=B, band="committed")
    honest = compute_attribution(task, "exact")
    rows = []
    for text in STRATEGIES:
        start = time.perf_counter()
        s = simulate(task, plan, parse_strategy(text, STRATEGY_SEED), honest, runs, SIM_SEED)
        wall = time.perf_counter() - start
        lo, hi = clopper_pearson(s.accepted, s.runs, 0.05)
        rows.append(
            {
                "table": "acceptance",
                "task": f"synthetic N={ACCEPT_N:,}",
                "eps": eps,
                "band": "committed",
                "strategy": text,
                "runs": s.runs,
                "accepted": s.accepted,
                "accept_rate": s.accepted / s.runs,
                "accept_ci": [lo, hi],
                "verdicts": s.verdicts,
                "reasons": s.reasons,
                "true_err_over_eps": s.true_err_over_eps,
                "prover_trainings": s.prover_trainings,
                "verifier_trainings": s.verifier_trainings,
                "seconds_per_run": s.seconds_per_run,
                "wall_seconds": wall,
                "plan": {
                    **{k: plan.summary()[k] for k in ("E", "k", "M", "m_tolerated", "rho")},
                    "planning": str(getattr(plan.params, "planning", "fixed")),
                },
            }
        )
    return rows


def print_acceptance(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    p = rows[0]["plan"]
    print(
        f"### Table 2: acceptance, {rows[0]['task']}, eps/b^2 = {ACCEPT_EPS}, "
        f"delta = {DELTA}, band committed (|E| = {p['E']:,}, k = {p['k']:,}, "
        f"|M| = {p['M']}, m_tol = {p['m_tolerated']}, rho = {p['rho']}, planning "
        f"{p['planning']}; Prover / Verifier: trainings in the last run's certificate)\n"
    )
    body = []
    for r in rows:
        lo, hi = r["accept_ci"]
        te = r["true_err_over_eps"]
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r["verdicts"].items()))
        body.append(
            [
                r["strategy"],
                str(r["runs"]),
                str(r["accepted"]),
                f"{r['accept_rate']:.3f}",
                f"[{lo:.3f}, {hi:.3f}]",
                verdicts,
                "-" if te is None else f"{te:.3f}",
                f"{r['prover_trainings']:,}",
                f"{r['verifier_trainings']:,}",
                f"{r['seconds_per_run']:.2f}",
            ]
        )
    header = [
        "strategy",
        "runs",
        "accepted",
        "rate",
        "95% CI",
        "verdicts",
        "err/eps",
        "Prover",
        "Verifier",
        "s/run",
    ]
    print(_md(header, body))
    reasons = sorted({(r["strategy"], k, v) for r in rows for k, v in r["reasons"].items()})
    for strategy, reason, count in reasons:
        print(f"\n* {strategy}: {count} x {reason}")
    total = sum(r["wall_seconds"] for r in rows)
    print(f"\nwall time {total:.0f} s for {sum(r['runs'] for r in rows)} runs")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", default="sizes,acceptance", help="comma list")
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="runs per strategy (table 2)"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list (table 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args()
    tables = {t.strip() for t in args.tables.split(",") if t.strip()}
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if unknown := tables - {"sizes", "acceptance"}:
        parser.error(f"unknown tables {sorted(unknown)}: use sizes, acceptance")
    if unknown_tasks := set(tasks) - set(TASKS):
        parser.error(f"unknown tasks {sorted(unknown_tasks)}: use {', '.join(TASKS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if "sizes" in tables:
        measured: list[tuple[Hint, TaskInfo]] = []
        for name in tasks:
            measured += synthetic_hints() if name == "synthetic" else [measure_hint(name)]
        rows = [row for hint, info in measured for row in size_rows(hint, info)]
        if args.json:
            for hint, _ in measured:
                print(json.dumps({"table": "hints", **asdict(hint)}), flush=True)
            for row in rows:
                print(json.dumps(row), flush=True)
        else:
            print_hints([h for h, _ in measured])
            print_sizes(rows)
    if "acceptance" in tables:
        acc = acceptance_rows(args.runs)
        if args.json:
            for row in acc:
                print(json.dumps(row), flush=True)
        else:
            print_acceptance(acc)


if __name__ == "__main__":
    main()

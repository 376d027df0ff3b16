"""LDS benchmark of the attribution methods on digits-logreg and digits-mlp.

For every (task, method) pair: the protocol attribution from
``attribution.estimators.registry.compute(task, method, budget, seed)``, its LDS
(Spearman over evaluation subsets, mean over outputs, docs/lds-benchmark.md) with a 95 %
percentile-bootstrap interval over subsets, and the method's wall time. One JSON object
per line on stdout.

Protocol (recorded in every line):

* fitting / calibration runs: rows ``0..budget-1`` of the fitting plan (``b"retrain"``
  domain, root seed ``--seed``), shared by all methods of a task: trained once and
  memoised, their time is reported once (``"kind": "shared"``) and not charged to the
  methods; the full-data MLP (seed ``full_data_seed(task, seed)``) likewise;
* evaluation: ``--eval-subsets`` S subsets x ~ B_p (p = 0.5) from
  ``evaluation_plan(task, S, p, --eval-seed)`` (``b"evaluate"`` domain, independent of the
  fitting runs and checked disjoint from them); R training seeds per subset (row s, seed
  r: ``XOF("seed", u64be(eval_seed), bind, [s])`` for r = 0 and ``[s, r]`` for r >= 1),
  outputs averaged over R;
* ``--damping-sweep``: for the MLP, LDS of the *uncalibrated* IF scores of the explicit,
  GGN, K-FAC and EK-FAC curvatures for several dampings, measured on the fitting runs
  (never on the evaluation subsets): this is how the default damping was chosen.

Usage (the run recorded in docs/lds-benchmark.md)::

    .venv/bin/python benchmarks/bench_lds.py --damping-sweep > lds.jsonl
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from attribution.estimators import gradient, registry
from attribution.estimators.gradient import DEFAULT_DAMPING, mlp_task_model
from attribution.metrics._corr import spearman_columns
from attribution.metrics.lds import evaluation_plan, lds
from attribution.subsets import training_seed
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import MLPTask, Task

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CONVEX_METHODS = (
    "if-exact",
    "newton-step",
    "rif",
    "if-ggn",
    "if-cg",
    "if-lissa",
    "if-arnoldi",
    "if-ekfac",
    "if-kfac",
    "grad-dot",
    "trak",
    "random",
)
MLP_METHODS = (
    "if-exact",
    "if-ggn",
    "if-cg",
    "if-lissa",
    "if-arnoldi",
    "if-ekfac",
    "if-kfac",
    "grad-dot",
    "trak",
    "random",
)
SWEEP = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, allow_nan=True), flush=True)


def memoise_shared(shared: dict[str, float]) -> None:
    """Train the fitting runs and the full-data MLP once per (task, count, seed)."""
    fit_cache: dict[tuple[bytes, int, int], tuple[BoolArray, FloatArray]] = {}
    orig_fit = registry.fit_runs

    def fit_runs(task: Task, count: int, seed: int) -> tuple[BoolArray, FloatArray]:
        key = (task.digest, count, seed)
        if key not in fit_cache:
            t0 = time.perf_counter()
            fit_cache[key] = orig_fit(task, count, seed)
            shared["fit_runs"] = shared.get("fit_runs", 0.0) + time.perf_counter() - t0
        return fit_cache[key]

    model_cache: dict[tuple[bytes, int], dict[str, torch.Tensor]] = {}
    orig_full = gradient.full_data_mlp

    def full_data_mlp(task: MLPTask, seed: int) -> dict[str, torch.Tensor]:
        key = (task.digest, seed)
        if key not in model_cache:
            t0 = time.perf_counter()
            model_cache[key] = orig_full(task, seed)
            shared["full_model"] = shared.get("full_model", 0.0) + time.perf_counter() - t0
        return model_cache[key]

    registry.fit_runs = fit_runs
    gradient.full_data_mlp = full_data_mlp


def evaluation_outputs(
    task: Task, subsets: int, repeats: int, eval_seed: int
) -> tuple[BoolArray, FloatArray]:
    """Masks (S, N) and outputs (S, R, T) of the evaluation subsets."""
    plan = evaluation_plan(task.digest, task.n_points, subsets, task.spec.p, eval_seed)
    rows = list(range(subsets))
    masks = plan.masks(rows)
    outs = []
    for r in range(repeats):
        seeds = (
            plan.seeds(rows)
            if r == 0
            else [training_seed(plan.seed, plan.bind, [s, r]) for s in rows]
        )
        parts = [
            task.train_batch(masks[i : i + 64], seeds[i : i + 64]) for i in range(0, subsets, 64)
        ]
        outs.append(np.concatenate(parts))
    return masks, np.stack(outs, axis=1)


def noise_ceiling(Y: FloatArray) -> float | None:
    """Mean over outputs of Spearman(seed 0, seed 1) across subsets (R >= 2), else None."""
    if Y.shape[1] < 2:
        return None
    rho = spearman_columns(Y[:, 0, :], Y[:, 1, :])
    return float(np.nanmean(rho))


def damping_sweep(task: MLPTask, budget: int, seed: int) -> None:
    """LDS of raw IF contributions on the fitting runs for several dampings."""
    from attribution.estimators.curvature import ggn_matrix, hessian_matrix

    masks, outputs = registry.fit_runs(task, budget, seed)
    model = mlp_task_model(task, gradient.full_data_mlp(task, seed))
    grads = model.loss_gradients()
    H = hessian_matrix(model.net, model.theta, model.objective)
    G = ggn_matrix(model.net, model.theta, model.objective)
    ev = torch.linalg.eigvalsh(H)
    emit(
        {
            "kind": "spectrum",
            "task": task.spec.name,
            "n_params": model.n_params,
            "hessian_min": float(ev[0]),
            "hessian_max": float(ev[-1]),
            "hessian_negative": int((ev < 0).sum()),
            "hessian_median": float(ev.median()),
            "ggn_max": float(torch.linalg.eigvalsh(G)[-1]),
        }
    )
    for lam in SWEEP:
        row: dict[str, Any] = {"kind": "damping-sweep", "task": task.spec.name, "damping": lam}
        for backend, opts in (
            ("explicit", {"matrix": H}),
            ("ggn", {"matrix": G}),
            ("ekfac", {}),
            ("kfac", {}),
        ):
            delta = model.removal_effects(model.ihvp(backend, lam, **opts), grads).numpy()
            res = lds(-delta, masks, outputs, n_boot=0)
            row[backend] = round(res.value, 4)
        emit(row)


def run_task(name: str, methods: tuple[str, ...], args: argparse.Namespace) -> None:
    task = load_task(resolve_spec(name))
    is_mlp = isinstance(task, MLPTask)
    subsets = args.eval_subsets_mlp if is_mlp else args.eval_subsets_convex
    repeats = args.mlp_repeats if is_mlp else 1
    shared: dict[str, float] = {}
    memoise_shared(shared)
    t0 = time.perf_counter()
    registry.fit_runs(task, args.budget, args.seed)
    if is_mlp:
        assert isinstance(task, MLPTask)
        gradient.full_data_mlp(task, args.seed)
    t1 = time.perf_counter()
    masks, Y = evaluation_outputs(task, subsets, repeats, args.eval_seed)
    t2 = time.perf_counter()
    fit_masks = registry.fit_runs(task, args.budget, args.seed)[0]
    emit(
        {
            "kind": "shared",
            "task": name,
            "n_points": task.n_points,
            "n_outputs": task.n_outputs,
            "budget": args.budget,
            "seed": args.seed,
            "eval_subsets": subsets,
            "eval_repeats": repeats,
            "eval_seed": args.eval_seed,
            "seconds_fit_runs_and_full_model": round(t1 - t0, 2),
            "seconds_eval_training": round(t2 - t1, 2),
            "noise_ceiling_split_seeds": noise_ceiling(Y),
            "damping_default": DEFAULT_DAMPING["mlp" if is_mlp else "convex"],
        }
    )
    if args.damping_sweep and is_mlp:
        assert isinstance(task, MLPTask)
        damping_sweep(task, args.budget, args.seed)
    for method in methods:
        if args.methods and method not in args.methods:
            continue
        start = time.perf_counter()
        A, meta = registry.compute(task, method, args.budget, args.seed)
        seconds = time.perf_counter() - start
        res = lds(A, masks, Y, fit_masks=fit_masks, n_boot=args.n_boot, seed=args.eval_seed)
        beta = np.asarray(meta.get("calibration_beta", []), dtype=np.float64)
        emit(
            {
                "kind": "lds",
                "task": name,
                "method": method,
                "lds": round(res.value, 4),
                "ci95": [round(res.ci[0], 4), round(res.ci[1], 4)],
                "median": round(res.median, 4),
                "n_nan": res.n_nan,
                "seconds": round(seconds, 2),
                "negative_beta_outputs": int((beta < 0).sum()),
                "backend_info": meta.get("backend_info"),
                "damping": meta.get("damping"),
            }
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="digits-logreg,digits-mlp")
    ap.add_argument("--methods", default="", help="comma-separated subset of methods")
    ap.add_argument("--budget", type=int, default=256, help="B_p calibration runs")
    ap.add_argument("--seed", type=int, default=0, help="fitting-plan root seed")
    ap.add_argument("--eval-seed", type=int, default=7_000_001)
    ap.add_argument("--eval-subsets-convex", type=int, default=100)
    ap.add_argument("--eval-subsets-mlp", type=int, default=50)
    ap.add_argument("--mlp-repeats", type=int, default=2, help="training seeds per MLP subset")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    ap.add_argument("--damping-sweep", action="store_true")
    args = ap.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    emit(
        {
            "kind": "environment",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "argv": sys.argv[1:] if argv is None else argv,
        }
    )
    table: dict[str, tuple[str, ...]] = {}
    for name in args.tasks.split(","):
        table[name] = MLP_METHODS if "mlp" in name else CONVEX_METHODS
    for name, methods in table.items():
        run_task(name, methods, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Estimator subcommands of ``vattr``: ``attribute`` and ``evaluate``.

``vattr attribute --task T --method M [--budget R] [--seed S] --out FILE.npz [--force]``
computes an attribution with :mod:`attribution.estimators.registry` and writes an npz
with two arrays: ``attribution`` (T, 1 + N) float64 in the protocol convention (affine
+-1 datamodel, orientation (outputs, 1 + N), positive = including the point raises the
output) and ``metadata``, a 0-d unicode array holding a JSON object (``format``,
``method``, ``parameters``, ``task``, ``task_digest``, ``convention``, ``n_points``,
``n_outputs``, ``output_names``, ``p``, ``fit_seed``, ``fit_runs``, ...). It refuses to
overwrite an existing file without ``--force`` and writes through a temporary file.

``vattr evaluate --task T --attributions FILE [--metric lds|loo|brittleness|auc] --json``
checks that FILE was computed for T (same task digest) and prints one JSON object:

* ``lds`` (default): trains ``--eval-subsets`` fresh subsets from
  :func:`attribution.metrics.lds.evaluation_plan` (derivation domain ``b"evaluate"``,
  seed ``--eval-seed``, which must differ from the file's fitting seed) and reports
  ``lds``, ``lds_ci`` (bootstrap over subsets), per-output values, and the held-out fit
  ``heldout_mse`` / ``heldout_r2`` on the same subsets (docs/lds-benchmark.md);
* ``loo``: exact leave-one-out on ``--points`` sampled points, correlated with the
  predicted removal effect ``-2 a_i``;
* ``brittleness``: top-k vs random-k removal for ``--output``;
* ``auc``: mislabel-detection AUC against ``--mislabeled`` (a .npy bool mask (N,) or
  index list) using the file's ``self_scores`` array if it has one, else the harm to
  the validation outputs ``-mean_t a_ti``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.estimators.files import (
    FORMAT,
    load_attribution_file,
    write_attribution_file,
)
from vattr.cli_args import add_task_args

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_EVAL_SEED = 7_000_001
"""Root seed of the evaluation subsets unless ``--eval-seed`` is given."""
METRICS = ("lds", "loo", "brittleness", "auc")


def register(sub: Any) -> None:
    """Add the estimator subcommands to the ``vattr`` parser."""
    # (the registry is not imported here: it pulls in torch, and every vattr call builds
    # this parser; unknown names are rejected by registry.get_method)
    p = sub.add_parser("attribute", help="compute an attribution and write it to an .npz file")
    add_task_args(p, with_p=True)
    p.add_argument(
        "--method",
        required=True,
        help="datamodel, empirical-influence, if-exact, if-ggn, if-cg, if-lissa, if-arnoldi, "
        "if-kfac, if-ekfac, trak, grad-dot, newton-step, rif (convex tasks), random, or exact "
        "(synthetic task)",
    )
    p.add_argument("--budget", type=int, default=None, help="B_p training runs (fit/calibration)")
    p.add_argument("--seed", type=int, default=0, help="root seed of the fitting runs (u64)")
    p.add_argument("--out", type=Path, required=True, help="output file (.npz)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_attribute)

    p = sub.add_parser("evaluate", help="evaluate an attribution file (LDS, LOO, ...)")
    add_task_args(p, with_p=True)
    p.add_argument("--attributions", type=Path, required=True, help=".npz from vattr attribute")
    p.add_argument("--metric", choices=METRICS, default="lds")
    p.add_argument("--eval-subsets", type=int, default=100, help="LDS: evaluation subsets S")
    p.add_argument(
        "--eval-seed",
        type=int,
        default=DEFAULT_EVAL_SEED,
        help=f"root seed of the evaluation subsets (default {DEFAULT_EVAL_SEED}); must "
        "differ from the fitting seed",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="LDS bootstrap resamples")
    p.add_argument("--points", type=int, default=100, help="loo: sampled points")
    p.add_argument("--output", type=int, default=0, help="brittleness: output index")
    p.add_argument("--ks", default=None, help="brittleness: comma-separated removal sizes")
    p.add_argument("--random-repeats", type=int, default=5, help="brittleness: random sets")
    p.add_argument("--mislabeled", type=Path, default=None, help="auc: .npy mask or indices")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_evaluate)


def _load_task(args: argparse.Namespace) -> Any:
    from attribution.tasks import load_task, resolve_spec

    return load_task(resolve_spec(args.task, args.overrides, args.p))


# ----------------------------------------------------------------------------- attribute


def cmd_attribute(args: argparse.Namespace) -> int:
    from attribution import __version__
    from attribution.estimators.registry import compute, get_method

    out: Path = args.out
    if out.suffix != ".npz":
        raise UsageError(f"--out must end in .npz, got {out}")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such directory")
    from attribution.subsets import int_seed

    int_seed(args.seed)  # the range check of every seed (UsageError)
    get_method(args.method)  # unknown / not yet available: fail before loading the task
    task = _load_task(args)
    start = time.perf_counter()
    A, params = compute(task, args.method, args.budget, args.seed)
    seconds = time.perf_counter() - start
    meta = {
        "format": FORMAT,
        "method": args.method,
        "parameters": params,
        "task": task.spec.name,
        "task_digest": task.digest.hex(),
        "convention": params["convention"],
        "encoding": "+-1",
        "orientation": "(outputs, 1 + N)",
        "n_points": task.n_points,
        "n_outputs": task.n_outputs,
        "output_names": list(task.output_names),
        "p": task.spec.p,
        "fit_seed": args.seed,
        "fit_runs": int(params.get("fit_runs", 0)),
        "fit_domain": "retrain",
        "seconds": round(seconds, 3),
        "vattr_version": __version__,
    }
    write_attribution_file(out, A, meta)
    summary = {
        "out": str(out),
        "method": args.method,
        "task": task.spec.name,
        "task_digest": task.digest.hex(),
        "shape": list(A.shape),
        "fit_runs": meta["fit_runs"],
        "seconds": meta["seconds"],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{args.method} on {task.spec.name}: attribution {A.shape[0]} x {A.shape[1]} "
            f"({meta['fit_runs']} runs, {seconds:.1f} s) -> {out}"
        )
    return 0


# ------------------------------------------------------------------------------ evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    from attribution.subsets import int_seed

    if args.metric == "auc" and args.mislabeled is None:
        raise UsageError("--metric auc needs --mislabeled FILE.npy")
    file = load_attribution_file(args.attributions)
    int_seed(args.eval_seed)  # range check
    task = _load_task(args)
    meta = file.metadata
    if meta is not None:
        if meta.get("task_digest") != task.digest.hex():
            raise UsageError(
                f"{args.attributions} was computed for task {meta.get('task')!r} (digest "
                f"{str(meta.get('task_digest'))[:16]}...), not for {task.spec.name!r} "
                f"(digest {task.digest.hex()[:16]}...)"
            )
        if meta["fit_runs"] > 0 and meta["fit_seed"] == args.eval_seed:
            raise UsageError(
                f"--eval-seed {args.eval_seed} equals the fitting seed of {args.attributions}: "
                "choose another seed"
            )
    A = file.attribution
    want = (task.n_outputs, task.n_points + 1)
    if A.shape != want:
        raise UsageError(f"{args.attributions}: attribution of shape {A.shape}, expected {want}")
    if not np.all(np.isfinite(A)):
        raise UsageError(f"{args.attributions}: attribution has non-finite values")

    start = time.perf_counter()
    if args.metric == "lds":
        result = _evaluate_lds(task, A, meta, args)
    elif args.metric == "loo":
        result = _evaluate_loo(task, A, args)
    elif args.metric == "brittleness":
        result = _evaluate_brittleness(task, A, args)
    else:
        result = _evaluate_auc(task, A, file.self_scores, args)
    report = {
        "metric": args.metric,
        "task": task.spec.name,
        "task_digest": task.digest.hex(),
        "attributions": str(args.attributions),
        "method": meta.get("method") if meta else None,
        "digest_checked": meta is not None,
        **result,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if args.json:
        print(json.dumps(_jsonable(report), allow_nan=False))
    else:
        for key, value in report.items():
            if not isinstance(value, list):
                print(f"{key:>20}: {value}")
    return 0


def _evaluate_lds(
    task: Any, A: FloatArray, meta: dict[str, Any] | None, args: argparse.Namespace
) -> dict[str, Any]:
    from attribution.execution.plan import retrain_plan
    from attribution.metrics import evaluation_plan, heldout_fit, lds

    S = args.eval_subsets
    if S < 3:
        raise UsageError("--eval-subsets must be at least 3")
    if args.n_boot < 0:
        raise UsageError("--n-boot must be >= 0")
    plan = evaluation_plan(task.digest, task.n_points, S, task.spec.p, args.eval_seed)
    masks = plan.masks(range(S))
    outputs = task.train_chunked(masks, plan.seeds(range(S)))
    fit_masks = None
    if meta is not None and meta["fit_runs"] > 0:
        fit_plan = retrain_plan(
            task.digest, task.n_points, meta["fit_runs"], task.spec.p, meta["fit_seed"]
        )
        fit_masks = fit_plan.masks(range(fit_plan.n_rows))
    try:
        res = lds(A, masks, outputs, fit_masks=fit_masks, n_boot=args.n_boot, seed=args.eval_seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    fit = heldout_fit(A, masks, outputs)
    return {
        "lds": res.value,
        "lds_ci": list(res.ci),
        "lds_confidence": res.confidence,
        "lds_median": res.median,
        "lds_n_nan": res.n_nan,
        "lds_n_constant_pred": res.n_constant_pred,
        "lds_per_output": res.per_output.tolist(),
        "heldout_mse": fit.mse,
        "heldout_mse_se": fit.mse_se,
        "heldout_r2": fit.r2,
        "eval_subsets": S,
        "eval_seed": args.eval_seed,
        "eval_domain": "evaluate",
        "n_boot": args.n_boot,
        "independence": "evaluation subsets from their own derivation domain; "
        "checked disjoint from the fitting subsets"
        if fit_masks is not None
        else "evaluation subsets from their own derivation domain",
    }


def _evaluate_loo(task: Any, A: FloatArray, args: argparse.Namespace) -> dict[str, Any]:
    from attribution.metrics import evaluation_plan, loo_correlation
    from attribution.tasks.runtime import ConvexTask, OracleTask

    N = task.n_points
    k = min(args.points, N)
    if k < 3:
        raise UsageError("--points must be at least 3")
    rng = np.random.default_rng(args.eval_seed)
    idx = np.sort(rng.choice(N, k, replace=False))
    masks = np.ones((k + 1, N), dtype=bool)
    masks[np.arange(1, k + 1), idx] = False
    plan = evaluation_plan(task.digest, N, k + 1, task.spec.p, args.eval_seed)
    f = task.train_chunked(masks, plan.seeds(range(k + 1)))
    true = (f[1:] - f[0]).T  # (T, k): Delta_i = f(D \ {i}) - f(D)
    pred = -2.0 * A[:, 1:][:, idx]  # removing i switches x_i from +1 to -1
    res = loo_correlation(pred, true)
    return {
        "loo_pearson": res.pearson,
        "loo_pearson_se": res.pearson_se,
        "loo_spearman": res.spearman,
        "loo_spearman_se": res.spearman_se,
        "loo_n_nan": res.n_nan,
        "points": k,
        "deterministic_training": isinstance(task, ConvexTask | OracleTask),
    }


def _evaluate_brittleness(task: Any, A: FloatArray, args: argparse.Namespace) -> dict[str, Any]:
    from attribution.metrics import brittleness, evaluation_plan

    N = task.n_points
    if not 0 <= args.output < task.n_outputs:
        raise UsageError(f"--output must lie in [0, {task.n_outputs})")
    if args.ks is None:
        ks = sorted({int(v) for v in np.linspace(0, max(1, round(0.05 * N)), 6)})
    else:
        try:
            ks = [int(v) for v in args.ks.split(",") if v.strip()]
        except ValueError as exc:
            raise UsageError(f"--ks must be comma-separated integers, got {args.ks!r}") from exc
    if args.random_repeats < 1:
        raise UsageError("--random-repeats must be at least 1")

    def retrain(masks: BoolArray) -> FloatArray:
        plan = evaluation_plan(task.digest, N, masks.shape[0], task.spec.p, args.eval_seed)
        out: FloatArray = task.train_chunked(masks, plan.seeds(range(masks.shape[0])))
        return out

    try:
        res = brittleness(
            A[args.output, 1:],
            retrain,
            ks,
            output=args.output,
            n_random=args.random_repeats,
            seed=args.eval_seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return {
        "output": args.output,
        "output_name": task.output_names[args.output],
        "ks": res.ks.tolist(),
        "base": res.base,
        "top_effect": res.top_effect.tolist(),
        "random_effect_mean": res.random_effect_mean.tolist(),
        "random_effect_se": res.random_effect_se.tolist(),
        "advantage": res.advantage.tolist(),
        "top_flipped": res.top_flipped.tolist(),
        "random_flip_rate": res.random_flip_rate.tolist(),
        "min_flip_k": res.min_flip_k,
    }


def _evaluate_auc(
    task: Any, A: FloatArray, self_scores: FloatArray | None, args: argparse.Namespace
) -> dict[str, Any]:
    from attribution.metrics import mislabel_auc

    N = task.n_points
    path: Path = args.mislabeled
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from exc
    if raw.dtype == np.bool_ and raw.shape == (N,):
        flipped = raw
    elif raw.ndim == 1 and np.issubdtype(raw.dtype, np.integer):
        if raw.size and (raw.min() < 0 or raw.max() >= N):
            raise UsageError(f"{path}: indices must lie in [0, {N})")
        flipped = np.zeros(N, dtype=bool)
        flipped[raw] = True
    else:
        raise UsageError(f"{path}: need a bool mask ({N},) or an integer index list")
    if self_scores is not None:
        if self_scores.shape != (N,):
            raise UsageError(f"self_scores of shape {self_scores.shape}, expected ({N},)")
        scores, kind = self_scores, "self_scores"
    else:
        scores, kind = -A[:, 1:].mean(axis=0), "validation harm -mean_t a_ti"
    try:
        res = mislabel_auc(scores, flipped)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return {
        "auc": res.value,
        "auc_se": res.stderr,
        "n_mislabeled": res.n_mislabeled,
        "n_clean": res.n_clean,
        "score": kind,
    }


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value

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
    from attribution.metrics.ground_truth import (
        evaluate_auc,
        evaluate_brittleness,
        evaluate_lds,
        evaluate_loo,
    )
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
        result = evaluate_lds(
            task, A, meta, subsets=args.eval_subsets, n_boot=args.n_boot, seed=args.eval_seed
        )
    elif args.metric == "loo":
        result = evaluate_loo(task, A, points=args.points, seed=args.eval_seed)
    elif args.metric == "brittleness":
        result = evaluate_brittleness(
            task,
            A,
            output=args.output,
            ks=args.ks,
            random_repeats=args.random_repeats,
            seed=args.eval_seed,
        )
    else:
        result = evaluate_auc(task, A, file.self_scores, args.mislabeled)
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


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value

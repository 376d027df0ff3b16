"""The retraining experiments that judge an attribution against ground truth (``vattr
evaluate``): LDS on fresh subsets, leave-one-out correlation, brittleness under removal
of the top-attributed points, mislabel-detection AUC. Each retrains the task on subsets
from its own derivation domain (:func:`attribution.metrics.evaluation_plan`) and returns
a JSON-able dict; the pure metrics themselves live in the sibling modules.

Orientation (docs/protocol.md section 1): ``A`` is the affine datamodel (outputs, 1 + N)
in the +-1 encoding, so removing point i changes an output by ``-2 a_i``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.execution.plan import retrain_plan
from attribution.metrics import (
    brittleness,
    evaluation_plan,
    heldout_fit,
    lds,
    loo_correlation,
    mislabel_auc,
)
from attribution.tasks.runtime import ConvexTask, OracleTask, Task

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def evaluate_lds(
    task: Task,
    A: FloatArray,
    meta: dict[str, Any] | None,
    *,
    subsets: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """LDS on ``subsets`` fresh B_p subsets (their own derivation domain, checked disjoint
    from the fitting subsets named in ``meta``), with a bootstrap interval, and the
    held-out fit."""
    S = subsets
    if S < 3:
        raise UsageError("--eval-subsets must be at least 3")
    if n_boot < 0:
        raise UsageError("--n-boot must be >= 0")
    plan = evaluation_plan(task.digest, task.n_points, S, task.spec.p, seed)
    masks = plan.masks(range(S))
    outputs = task.train_chunked(masks, plan.seeds(range(S)))
    fit_masks = None
    if meta is not None and meta["fit_runs"] > 0:
        fit_plan = retrain_plan(
            task.digest, task.n_points, meta["fit_runs"], task.spec.p, meta["fit_seed"]
        )
        fit_masks = fit_plan.masks(range(fit_plan.n_rows))
    try:
        res = lds(A, masks, outputs, fit_masks=fit_masks, n_boot=n_boot, seed=seed)
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
        "eval_seed": seed,
        "eval_domain": "evaluate",
        "n_boot": n_boot,
        "independence": "evaluation subsets from their own derivation domain; "
        "checked disjoint from the fitting subsets"
        if fit_masks is not None
        else "evaluation subsets from their own derivation domain",
    }


def evaluate_loo(task: Task, A: FloatArray, *, points: int, seed: int) -> dict[str, Any]:
    """Correlation of the predicted leave-one-out effects ``-2 a_i`` with retrained ones
    ``f(D without i) - f(D)`` on ``points`` random points."""

    N = task.n_points
    k = min(points, N)
    if k < 3:
        raise UsageError("--points must be at least 3")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(N, k, replace=False))
    masks = np.ones((k + 1, N), dtype=bool)
    masks[np.arange(1, k + 1), idx] = False
    plan = evaluation_plan(task.digest, N, k + 1, task.spec.p, seed)
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


def evaluate_brittleness(
    task: Task,
    A: FloatArray,
    *,
    output: int,
    ks: str | None,
    random_repeats: int,
    seed: int,
) -> dict[str, Any]:
    """Removing the top-k attributed points against k random ones (``ks``: comma-separated
    sizes, default six sizes up to 5 % of N)."""

    N = task.n_points
    if not 0 <= output < task.n_outputs:
        raise UsageError(f"--output must lie in [0, {task.n_outputs})")
    if ks is None:
        sizes = sorted({int(v) for v in np.linspace(0, max(1, round(0.05 * N)), 6)})
    else:
        try:
            sizes = [int(v) for v in ks.split(",") if v.strip()]
        except ValueError as exc:
            raise UsageError(f"--ks must be comma-separated integers, got {ks!r}") from exc
    if random_repeats < 1:
        raise UsageError("--random-repeats must be at least 1")

    def retrain(masks: BoolArray) -> FloatArray:
        plan = evaluation_plan(task.digest, N, masks.shape[0], task.spec.p, seed)
        out: FloatArray = task.train_chunked(masks, plan.seeds(range(masks.shape[0])))
        return out

    try:
        res = brittleness(
            A[output, 1:],
            retrain,
            sizes,
            output=output,
            n_random=random_repeats,
            seed=seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return {
        "output": output,
        "output_name": task.output_names[output],
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


def evaluate_auc(
    task: Task, A: FloatArray, self_scores: FloatArray | None, mislabeled: Path
) -> dict[str, Any]:
    """Mislabel detection AUC of the self-influence scores (or the validation harm
    ``-mean_t a_ti``) against the flipped points listed in ``mislabeled``."""

    N = task.n_points
    path = mislabeled
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

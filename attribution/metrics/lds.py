"""Linear Datamodeling Score (Park et al. 2023; docs/lds-benchmark.md).

Inputs (orientation (outputs, N) everywhere, positive = including the point raises the
output):

* ``attribution`` (T, 1 + N): the protocol's affine datamodel ``[a0 | a]`` in +-1
  encoding, predicting ``g_t(x) = a0_t + sum_i a_ti x_i`` with ``x_i = +1`` when point i
  is in the subset and ``-1`` otherwise; **or** ``scores`` (T, N) in contribution
  orientation, predicting ``g_t(S) = <s_t, 1_S> = sum_{i in S} s_ti``. (Which one is meant
  follows from the width: ``1 + N`` or ``N`` columns, N = ``eval_masks.shape[1]``.)
  Removal effects ``Delta`` (positive = removing raises the output) must be negated
  first: ``scores = -Delta``.
* ``eval_masks`` (S, N) bool, True = point included; ``eval_outputs`` (S, T) (or
  (S, R, T): R independent trainings per subset, averaged over R).

Definition::

    rho_t = Spearman( (g_t(x_s))_{s=1..S}, (f_t(x_s))_{s=1..S} )     average ranks for ties
    LDS   = mean_t rho_t

Because Spearman only sees ranks, the intercept and any positive scale of the
prediction do not matter (``a0 + <a, x>`` and ``<a, 1_S>`` give the same rho); a
negative scale flips the sign of the LDS.

Constant columns (Spearman undefined), our documented choice:

* actual outputs ``f_t`` constant over the S subsets (e.g. an output clipped at its
  bound on every subset): nothing to rank, ``rho_t = NaN``, counted in ``n_nan`` and
  left out of the mean, for every attribution alike (dattri's choice); if every output
  is NaN the LDS is NaN;
* predictions ``g_t`` constant while ``f_t`` varies (e.g. an all-zero score row):
  the attribution carries no ranking information, ``rho_t = 0`` (AirRep's choice),
  counted in ``n_constant_pred``. Mapping these to NaN instead would let an attribution
  raise its LDS by abstaining on the hard outputs.

Uncertainty: a percentile bootstrap over subsets -- resample the S rows of (masks,
outputs) jointly with replacement ``n_boot`` times from ``numpy.random.default_rng(seed)``
(``seed`` fixed, so the interval is reproducible), recompute the LDS (re-ranking each
resample) and take the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles.

Independence: the evaluation subsets must be independent of
every subset used to fit or calibrate the attribution; otherwise the score rewards
overfitting. This module enforces it in two ways:

1. :func:`evaluation_plan` derives the evaluation subsets from an explicit integer seed in
   their own SHAKE-256 domain, ``bind = bind_digest(task_digest, b"evaluate")``, while all
   fitting runs (:func:`attribution.execution.plan.retrain_plan`) use ``b"retrain"``;
   the two streams are therefore independent for every pair of seeds, and callers
   additionally refuse an evaluation seed equal to the fitting seed.
2. :func:`lds` takes the fitting masks (``fit_masks``) when the caller has them and
   raises ``ValueError`` if any evaluation subset equals a fitting subset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attribution.execution.plan import BernoulliPlan
from attribution.metrics._corr import (
    as_matrix,
    constant_columns,
    nanmean_or_nan,
    spearman_columns,
)
from attribution.subsets import bind_digest, int_seed, prob_to_u32

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EVALUATION_DOMAIN = b"evaluate"
"""``bind`` label of the evaluation subsets (fitting subsets use ``b"retrain"``)."""


@dataclass(frozen=True)
class LDSResult:
    """LDS ``value`` (mean over outputs), its bootstrap interval ``ci`` = (low, high) at
    ``confidence``, ``per_output`` rho_t (T,) (NaN for constant outputs, 0 for constant
    predictions), ``n_nan``, ``n_constant_pred``, ``median`` of the finite rho_t, and the
    sizes used (S subsets, ``n_boot`` resamples)."""

    value: float
    ci: tuple[float, float]
    per_output: FloatArray
    n_nan: int
    n_constant_pred: int
    median: float
    n_subsets: int
    n_boot: int
    confidence: float


def evaluation_plan(
    task_digest: bytes, n_points: int, count: int, p: float, seed: int
) -> BernoulliPlan:
    """``count`` evaluation subsets ``x ~ B_p`` in their own derivation domain.

    Row ``s`` has mask ``XOF("subset", u64be(seed), bind_digest(task_digest, b"evaluate"),
    [s])`` and training seed ``XOF("seed", ...)``: reproducible from (task, seed, row)
    and independent of every fitting plan (``retrain_plan`` binds ``b"retrain"``).
    """
    if count < 1:
        raise ValueError("need at least one evaluation subset")
    return BernoulliPlan(
        n_points=n_points,
        n_rows=count,
        p32=prob_to_u32(p),
        seed=int_seed(seed),
        bind=bind_digest(task_digest, EVALUATION_DOMAIN),
    )


def predict(attribution: npt.ArrayLike, masks: npt.ArrayLike) -> FloatArray:
    """Predictions (S, T) of an attribution (T, 1 + N) or scores (T, N) on masks (S, N).

    ``[a0 | a]``: ``g = a0 + sum_i a_i x_i`` (x = +-1); scores ``s``: ``g = <s, 1_S>``.
    """
    m = _masks(masks)
    n = m.shape[1]
    A = as_matrix(attribution, "attribution")
    if A.shape[1] not in (n, n + 1):
        hint = " (transposed? the orientation is (outputs, N))" if A.shape[0] in (n, n + 1) else ""
        raise ValueError(
            f"attribution must have shape (T, {n + 1}) or (T, {n}), got {A.shape}{hint}"
        )
    x01 = m.astype(np.float64)
    if A.shape[1] == n:
        return np.asarray(x01 @ A.T, dtype=np.float64)
    a0, a = A[:, 0], A[:, 1:]
    return np.asarray((a0 - a.sum(axis=1))[None, :] + 2.0 * (x01 @ a.T), dtype=np.float64)


def lds(
    attribution: npt.ArrayLike,
    eval_masks: npt.ArrayLike,
    eval_outputs: npt.ArrayLike,
    *,
    fit_masks: npt.ArrayLike | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> LDSResult:
    """LDS of ``attribution`` (T, 1 + N) or scores (T, N) on S evaluation subsets.

    ``eval_masks`` (S, N) bool; ``eval_outputs`` (S, T) or (S, R, T) (mean over R);
    ``fit_masks`` (M, N) bool, optional: the fitting subsets, which must not reappear
    among the evaluation subsets (``ValueError`` otherwise). ``n_boot = 0`` skips the
    bootstrap (``ci`` is then (NaN, NaN)). See the module docstring for the formulas.
    """
    m = _masks(eval_masks)
    y = np.asarray(eval_outputs, dtype=np.float64)
    if y.ndim == 3:
        y = y.mean(axis=1)
    y = as_matrix(y, "eval_outputs")
    S = m.shape[0]
    if y.shape[0] != S:
        raise ValueError(f"eval_outputs has {y.shape[0]} rows, eval_masks {S}")
    if S < 3:
        raise ValueError("LDS needs at least 3 evaluation subsets")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie in (0, 1)")
    if n_boot < 0:
        raise ValueError("n_boot must be >= 0")
    pred = predict(attribution, m)
    if pred.shape[1] != y.shape[1]:
        raise ValueError(f"attribution has {pred.shape[1]} outputs, eval_outputs {y.shape[1]}")
    if fit_masks is not None:
        _check_disjoint(m, _masks(fit_masks))

    rho = _rho(pred, y)
    value = nanmean_or_nan(rho)
    finite = rho[np.isfinite(rho)]
    ci = (float("nan"), float("nan"))
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        reps = np.empty(n_boot)
        for b in range(n_boot):
            idx = rng.integers(0, S, S)
            reps[b] = nanmean_or_nan(_rho(pred[idx], y[idx]))
        reps = reps[np.isfinite(reps)]
        if reps.size:
            lo, hi = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
            ci = (float(lo), float(hi))
    return LDSResult(
        value=value,
        ci=ci,
        per_output=rho,
        n_nan=int(np.isnan(rho).sum()),
        n_constant_pred=int((constant_columns(pred) & ~constant_columns(y)).sum()),
        median=float(np.median(finite)) if finite.size else float("nan"),
        n_subsets=S,
        n_boot=n_boot,
        confidence=confidence,
    )


def _rho(pred: FloatArray, y: FloatArray) -> FloatArray:
    """Spearman per output; NaN where ``y`` is constant, 0 where only ``pred`` is."""
    rho = spearman_columns(pred, y)
    rho[constant_columns(pred) & ~constant_columns(y)] = 0.0
    return rho


def _masks(masks: npt.ArrayLike) -> BoolArray:
    m = np.asarray(masks)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise ValueError(f"masks must be a bool array of shape (S, N), got {m.dtype} {m.shape}")
    return m


def _check_disjoint(eval_masks: BoolArray, fit_masks: BoolArray) -> None:
    if fit_masks.shape[1] != eval_masks.shape[1]:
        raise ValueError("fit_masks and eval_masks have different N")
    fit_rows = {row.tobytes() for row in np.packbits(fit_masks, axis=1)}
    shared = sum(row.tobytes() in fit_rows for row in np.packbits(eval_masks, axis=1))
    if shared:
        raise ValueError(
            f"{shared} evaluation subset(s) also occur among the fitting subsets: draw the "
            "evaluation subsets independently (evaluation_plan with a fresh seed)"
        )

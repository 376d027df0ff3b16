"""Leave-one-out correlation.

Inputs, orientation (outputs, N):

* ``removal_pred`` (T, N): predicted removal effects ``Delta_hat_ti`` (or any score in
  the *same* orientation as the truth);
* ``removal_true`` (T, N): exact ``Delta_ti = f_t(A(D \\ {i})) - f_t(A(D))`` by retraining
  (positive = removing point i raises output t). Restrict both to the sampled points.

For a protocol attribution ``[a0 | a]`` (+-1 encoding, positive = including raises f)
the predicted removal effect from the full set is ``Delta_hat_i = -2 a_i``: removing
point i switches ``x_i`` from +1 to -1. A contribution-oriented score must be negated
before it is passed here; with the wrong sign both correlations flip.

Per output t, across the N points::

    pearson_t  = Pearson(Delta_hat_t., Delta_t.)
    spearman_t = Spearman(Delta_hat_t., Delta_t.)        average ranks for ties

and the reported values are the means over outputs (NaN entries -- a constant row --
skipped and counted in ``n_nan``), with the standard error across outputs
``std(ddof=1) / sqrt(T')`` (NaN when fewer than two outputs are finite). Meaningful only
for deterministic (or well seed-averaged) retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attribution.metrics._corr import (
    as_matrix,
    nanmean_or_nan,
    pearson_columns,
    spearman_columns,
    stderr_of_mean,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LOOResult:
    """Mean ``pearson`` / ``spearman`` over outputs, their standard errors across outputs,
    the per-output coefficients (T,), and ``n_nan`` outputs without a correlation."""

    pearson: float
    spearman: float
    pearson_se: float
    spearman_se: float
    pearson_per_output: FloatArray
    spearman_per_output: FloatArray
    n_nan: int


def loo_correlation(removal_pred: npt.ArrayLike, removal_true: npt.ArrayLike) -> LOOResult:
    """Pearson and Spearman between predicted and exact LOO effects, both (T, N) (or (N,))."""
    pred = as_matrix(np.atleast_2d(np.asarray(removal_pred, dtype=np.float64)), "removal_pred")
    true = as_matrix(np.atleast_2d(np.asarray(removal_true, dtype=np.float64)), "removal_true")
    if pred.shape != true.shape:
        raise ValueError(f"removal_pred {pred.shape} and removal_true {true.shape} differ")
    if pred.shape[1] < 3:
        raise ValueError("LOO correlation needs at least 3 points")
    pr = pearson_columns(pred.T, true.T)
    sr = spearman_columns(pred.T, true.T)
    return LOOResult(
        pearson=nanmean_or_nan(pr),
        spearman=nanmean_or_nan(sr),
        pearson_se=stderr_of_mean(pr),
        spearman_se=stderr_of_mean(sr),
        pearson_per_output=pr,
        spearman_per_output=sr,
        n_nan=int((np.isnan(pr) | np.isnan(sr)).sum()),
    )

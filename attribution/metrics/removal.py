"""Group-removal errors: of the parameters and of the predictions.

Inputs ``pred`` and ``true``, both (G, K): one row per removed group T_g, columns either

* the D parameters: ``delta_g = theta_hat_{-T_g} - theta_hat`` estimated (IF,
  NS, ...) and exact (retrained), or
* the outputs: removal effects ``Delta_{T_g}(z) = f(z; A(D \\ T_g)) - f(z; A(D))``
  estimated and exact (positive = removing the group raises the output; both arrays
  must use this same orientation).

Per group g::

    abs_error_g = || pred_g - true_g ||_2                 (= ||theta^est_{-T} - theta_{-T}||)
    rel_error_g = abs_error_g / || true_g ||_2            (NaN when true_g = 0)

Summaries: ``mean_abs`` / ``mean_rel`` (means over groups, NaN relative errors skipped)
with standard errors ``std(ddof=1) / sqrt(G)``; ``mean_abs_entry`` = mean over all
entries of ``|pred - true|`` (the pointwise error); per column k the Pearson and
Spearman correlation across the G groups, averaged over columns (needs G >= 3, else NaN;
constant columns skipped); and ``slope = sum(pred * true) / sum(true^2)``, the
least-squares factor in ``pred ~ slope * true`` (``slope < 1``: the estimate
systematically underestimates the effect, as Koh et al. 2019 report for IF).
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
class GroupRemovalResult:
    """Per-group ``abs_error`` / ``rel_error`` (G,), their means and standard errors,
    ``mean_abs_entry``, mean column correlations ``pearson`` / ``spearman`` and ``slope``."""

    abs_error: FloatArray
    rel_error: FloatArray
    mean_abs: float
    mean_abs_se: float
    mean_rel: float
    mean_rel_se: float
    mean_abs_entry: float
    pearson: float
    spearman: float
    slope: float


def group_removal_error(pred: npt.ArrayLike, true: npt.ArrayLike) -> GroupRemovalResult:
    """Errors of estimated group-removal changes ``pred`` (G, K) against exact ``true`` (G, K)."""
    P = as_matrix(np.atleast_2d(np.asarray(pred, dtype=np.float64)), "pred")
    Y = as_matrix(np.atleast_2d(np.asarray(true, dtype=np.float64)), "true")
    if P.shape != Y.shape:
        raise ValueError(f"pred {P.shape} and true {Y.shape} differ")
    if P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError("need at least one group and one column")
    abs_error = np.linalg.norm(P - Y, axis=1)
    norm_true = np.linalg.norm(Y, axis=1)
    rel_error = np.full_like(abs_error, np.nan)
    nz = norm_true > 0
    rel_error[nz] = abs_error[nz] / norm_true[nz]
    G = P.shape[0]
    if G >= 3:
        pearson = nanmean_or_nan(pearson_columns(P, Y))
        spearman = nanmean_or_nan(spearman_columns(P, Y))
    else:
        pearson = spearman = float("nan")
    tt = float((Y * Y).sum())
    return GroupRemovalResult(
        abs_error=abs_error,
        rel_error=rel_error,
        mean_abs=float(abs_error.mean()),
        mean_abs_se=stderr_of_mean(abs_error),
        mean_rel=nanmean_or_nan(rel_error),
        mean_rel_se=stderr_of_mean(rel_error),
        mean_abs_entry=float(np.abs(P - Y).mean()),
        pearson=pearson,
        spearman=spearman,
        slope=float((P * Y).sum()) / tt if tt > 0 else float("nan"),
    )

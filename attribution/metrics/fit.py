"""Held-out fit of an affine datamodel.

Inputs: ``attribution`` (T, 1 + N) = ``[a0 | a]`` in +-1 encoding (positive a_i =
including point i raises output t); ``masks`` (S, N) bool, True = included, drawn fresh
(never used for fitting, see :func:`attribution.metrics.lds.evaluation_plan`);
``outputs`` (S, T) the trained models' outputs. With ``g_st = a0_t + sum_i a_ti x_si``
(x = +-1) and ``r_st = f_st - g_st``::

    mse_t   = (1/S) sum_s r_st^2                       (the protocol's err(a) under B_p)
    mse_se_t = std_s(r_st^2, ddof=1) / sqrt(S)
    r2_t    = 1 - sum_s r_st^2 / sum_s (f_st - mean_s f_st)^2     (NaN for a constant f_t)
    slope_t = Cov(g_t, f_t) / Var(g_t)     calibration slope of f on g (1 = calibrated;
                                           NaN for a constant g_t)

plus Pearson and Spearman of (g_t, f_t) over the S subsets (NaN where g_t or f_t is
constant). ``mse`` and ``r2`` are the
means over outputs (NaN entries skipped); ``mse_se`` is the standard error of that mean
from the per-output ones, ``sqrt(sum_t mse_se_t^2) / T`` (outputs treated as independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attribution.metrics._corr import (
    as_matrix,
    constant_columns,
    nanmean_or_nan,
    pearson_columns,
    spearman_columns,
)
from attribution.metrics.lds import predict

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FitResult:
    """Mean ``mse`` (with ``mse_se``) and ``r2`` over outputs, and per-output arrays (T,)."""

    mse: float
    mse_se: float
    r2: float
    mse_per_output: FloatArray
    mse_se_per_output: FloatArray
    r2_per_output: FloatArray
    pearson_per_output: FloatArray
    spearman_per_output: FloatArray
    slope_per_output: FloatArray
    n_subsets: int


def heldout_fit(
    attribution: npt.ArrayLike, masks: npt.ArrayLike, outputs: npt.ArrayLike
) -> FitResult:
    """MSE and R^2 of the datamodel ``attribution`` (T, 1 + N) on held-out subsets."""
    m = np.asarray(masks)
    A = as_matrix(np.atleast_2d(np.asarray(attribution, dtype=np.float64)), "attribution")
    if m.ndim != 2 or A.shape[1] != m.shape[1] + 1:
        raise ValueError(
            f"need attribution (T, 1 + N) and masks (S, N), got {A.shape} and {m.shape}"
        )
    f = as_matrix(outputs, "outputs")
    g = predict(A, m)
    S = m.shape[0]
    if f.shape != g.shape:
        raise ValueError(f"outputs must have shape {g.shape}, got {f.shape}")
    if S < 2:
        raise ValueError("held-out fit needs at least 2 subsets")
    sq = (f - g) ** 2
    mse_t = sq.mean(axis=0)
    mse_se_t = sq.std(axis=0, ddof=1) / np.sqrt(S)
    fc = f - f.mean(axis=0)
    sst = (fc * fc).sum(axis=0)
    const_f = constant_columns(f)
    r2 = np.full(f.shape[1], np.nan)
    r2[~const_f] = 1.0 - sq.sum(axis=0)[~const_f] / sst[~const_f]
    gc = g - g.mean(axis=0)
    sgg = (gc * gc).sum(axis=0)
    const_g = constant_columns(g)
    slope = np.full(f.shape[1], np.nan)
    slope[~const_g] = (gc * fc).sum(axis=0)[~const_g] / sgg[~const_g]
    T = f.shape[1]
    return FitResult(
        mse=float(mse_t.mean()),
        mse_se=float(np.sqrt((mse_se_t**2).sum()) / T),
        r2=nanmean_or_nan(r2),
        mse_per_output=mse_t,
        mse_se_per_output=mse_se_t,
        r2_per_output=r2,
        pearson_per_output=pearson_columns(g, f),
        spearman_per_output=spearman_columns(g, f),
        slope_per_output=slope,
        n_subsets=S,
    )

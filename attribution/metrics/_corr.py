"""Column-wise Pearson and Spearman correlations shared by the metrics.

Both work on two arrays of shape (S, T) and return one coefficient per column (T,):

    pearson_t  = sum_s (u_st - mean u_t)(v_st - mean v_t)
                 / sqrt(sum_s (u_st - mean u_t)^2 * sum_s (v_st - mean v_t)^2)
    spearman_t = pearson_t of the column ranks (average ranks for ties, as
                 ``scipy.stats.spearmanr``)

A column in which either input is constant (all S values exactly equal) has no
correlation: its coefficient is NaN, and callers decide (and document) what to do with
it; :func:`constant_columns` tells which input was constant.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]


def as_matrix(values: npt.ArrayLike, name: str) -> FloatArray:
    """``values`` as a finite float64 matrix; a 1-D input becomes one column."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


def constant_columns(u: FloatArray) -> npt.NDArray[np.bool_]:
    """True for each column of ``u`` (S, T) whose S values are all exactly equal."""
    return np.asarray(np.ptp(u, axis=0) == 0, dtype=np.bool_)


def pearson_columns(u: FloatArray, v: FloatArray) -> FloatArray:
    """Pearson correlation of each column of ``u`` (S, T) with that of ``v`` (S, T)."""
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"need two (S, T) arrays of one shape, got {u.shape} and {v.shape}")
    constant = constant_columns(u) | constant_columns(v)
    uc = u - u.mean(axis=0)
    vc = v - v.mean(axis=0)
    den = np.sqrt((uc * uc).sum(axis=0) * (vc * vc).sum(axis=0))
    ok = ~constant & (den > 0)
    r = np.full(u.shape[1], np.nan)
    r[ok] = (uc * vc).sum(axis=0)[ok] / den[ok]
    return np.asarray(np.clip(r, -1.0, 1.0), dtype=np.float64)


def spearman_columns(u: FloatArray, v: FloatArray) -> FloatArray:
    """Spearman correlation per column: Pearson on average ranks (ties share a rank)."""
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"need two (S, T) arrays of one shape, got {u.shape} and {v.shape}")
    ru = np.asarray(rankdata(u, method="average", axis=0), dtype=np.float64)
    rv = np.asarray(rankdata(v, method="average", axis=0), dtype=np.float64)
    return pearson_columns(ru, rv)


def nanmean_or_nan(values: FloatArray) -> float:
    """Mean of the finite entries; NaN (no warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def stderr_of_mean(values: FloatArray) -> float:
    """Standard error ``std(ddof=1) / sqrt(n)`` of the finite entries; NaN when n < 2."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan")
    return float(finite.std(ddof=1) / np.sqrt(finite.size))

"""Subsampled empirical influence (Feldman & Zhang 2020), converted to the +-1 datamodel.

From R training runs on subsets ``x_r ~ B_p`` with outputs ``f_r`` (R, T)::

    infl_i  = mean{f_r : x_ri = +1} - mean{f_r : x_ri = -1}     (difference of means)
    a_i     = infl_i / 2                                         (docs/protocol.md section 1.2)
    a0      = mean_r f_r - mu * sum_i a_i,   mu = 2p - 1

``a_i`` is the +-1 coefficient: positive means including point i raises the output. Its
standard error is ``sqrt(s_in^2/n_in + s_out^2/n_out) / 2`` (Welch), reported per entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Attribution:
    """Intercepts ``a0`` (T,), coefficients ``a`` (T, N), standard errors ``stderr`` (T, N)."""

    a0: FloatArray
    a: FloatArray
    stderr: FloatArray


def empirical_influence(masks: npt.NDArray[np.bool_], outputs: FloatArray, p: float) -> Attribution:
    """Estimate the +-1 datamodel from ``masks`` (R, N) and ``outputs`` (R, T)."""
    x = np.asarray(masks, dtype=np.float64)
    f = np.asarray(outputs, dtype=np.float64)
    if x.ndim != 2 or f.ndim != 2 or x.shape[0] != f.shape[0]:
        raise ValueError("need masks (R, N) and outputs (R, T) with the same R")
    n_in = x.sum(axis=0)
    n_out = x.shape[0] - n_in
    if np.any(n_in < 2) or np.any(n_out < 2):
        raise ValueError("every point must be included and excluded at least twice")
    sum_in = f.T @ x  # (T, N)
    sq_in = (f * f).T @ x
    total, total_sq = f.sum(axis=0)[:, None], (f * f).sum(axis=0)[:, None]
    mean_in, mean_out = sum_in / n_in, (total - sum_in) / n_out
    var_in = (sq_in - n_in * mean_in**2) / (n_in - 1)
    var_out = (total_sq - sq_in - n_out * mean_out**2) / (n_out - 1)
    a = (mean_in - mean_out) / 2.0
    stderr = np.sqrt(np.maximum(var_in, 0) / n_in + np.maximum(var_out, 0) / n_out) / 2.0
    a0 = f.mean(axis=0) - (2 * p - 1) * a.sum(axis=1)
    return Attribution(a0=a0, a=a, stderr=stderr)

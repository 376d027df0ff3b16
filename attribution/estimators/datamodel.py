"""Datamodel regression (Ilyas et al. 2022) on B_p runs, in the protocol convention.

Least squares of the outputs on the +-1 design with an intercept::

    (a0, a) = argmin sum_r (f_r - a0 - sum_i a_i x_ri)^2 + lam * ||a||^2

(``lam = 0``: ordinary least squares, the empirical version of the optimal affine
datamodel theta* under B_p). All outputs share one design matrix, so the normal
equations are factored once. Positive ``a_i``: including point i raises the output.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.linalg

FloatArray = npt.NDArray[np.float64]


def fit_datamodel(
    masks: npt.NDArray[np.bool_], outputs: FloatArray, lam: float = 0.0
) -> FloatArray:
    """Attribution matrix (T, 1 + N) = [a0 | a] fitted on R runs (masks (R, N), outputs (R, T))."""
    x = np.where(masks, 1.0, -1.0)
    f = np.asarray(outputs, dtype=np.float64)
    R, N = x.shape
    if f.shape[0] != R:
        raise ValueError("need one output row per mask")
    if R <= N and lam == 0.0:
        raise ValueError(f"ordinary least squares needs more runs ({R}) than points ({N})")
    xm, fm = x.mean(axis=0), f.mean(axis=0)
    xc, fc = x - xm, f - fm
    gram = xc.T @ xc + lam * np.eye(N)
    coef = scipy.linalg.solve(gram, xc.T @ fc, assume_a="pos")  # (N, T)
    a0 = fm - xm @ coef
    return np.ascontiguousarray(np.column_stack([a0, coef.T]))

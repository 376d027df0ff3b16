"""Datamodel regression (Ilyas et al. 2022) on B_p runs, in the protocol convention.

Least squares of the outputs on the +-1 design with an intercept::

    (a0, a) = argmin sum_r (f_r - a0 - sum_i a_i x_ri)^2 + penalty(a)

* ``ols``: no penalty -- the empirical version of the optimal affine datamodel theta*
  under B_p (needs more runs than points);
* ``ridge``: ``lam * ||a||_2^2``;
* ``lasso``: ``lam * ||a||_1`` with lam chosen per output by K-fold cross-validation
  (scikit-learn's ``LassoCV`` on the centred design; Ilyas et al.'s estimator), useful
  when R < N.

OLS and ridge share one design matrix across all outputs (the normal equations are
factored once) and run in torch on ``device`` -- a GPU when one is given -- in float64.
Positive ``a_i``: including point i raises the output. Orientation: (outputs, 1 + N).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

FloatArray = npt.NDArray[np.float64]
METHODS = ("ols", "ridge", "lasso")


def fit_datamodel(
    masks: npt.NDArray[np.bool_],
    outputs: FloatArray,
    lam: float = 0.0,
    *,
    method: str | None = None,
    device: torch.device | str = "cpu",
    cv: int = 5,
) -> FloatArray:
    """Attribution matrix (T, 1 + N) = [a0 | a] fitted on R runs (masks (R, N), outputs (R, T)).

    ``method`` defaults to ``ols`` when ``lam == 0`` and ``ridge`` otherwise.
    """
    method = method or ("ols" if lam == 0.0 else "ridge")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    x = np.where(masks, 1.0, -1.0)
    f = np.asarray(outputs, dtype=np.float64)
    R, N = x.shape
    if f.ndim != 2 or f.shape[0] != R:
        raise ValueError("need one output row per mask")
    if method == "ols" and R <= N:
        raise ValueError(f"ordinary least squares needs more runs ({R}) than points ({N})")
    if method == "ridge" and lam <= 0:
        raise ValueError("ridge needs lam > 0")
    xm, fm = x.mean(axis=0), f.mean(axis=0)
    if method == "lasso":
        coef = _lasso(x - xm, f - fm, cv)
    else:
        dev = torch.device(device)
        xc = torch.as_tensor(x - xm, dtype=torch.float64, device=dev)
        fc = torch.as_tensor(f - fm, dtype=torch.float64, device=dev)
        gram = xc.T @ xc + lam * torch.eye(N, dtype=torch.float64, device=dev)
        chol = torch.linalg.cholesky(gram)
        coef = torch.cholesky_solve(xc.T @ fc, chol).cpu().numpy()  # (N, T)
    a0 = fm - xm @ coef
    return np.ascontiguousarray(np.column_stack([a0, coef.T]))


def _lasso(xc: FloatArray, fc: FloatArray, cv: int) -> FloatArray:
    from sklearn.linear_model import LassoCV

    coef = np.empty((xc.shape[1], fc.shape[1]))
    for t in range(fc.shape[1]):
        model = LassoCV(cv=cv, fit_intercept=False, alphas=30, max_iter=5000, random_state=0)
        coef[:, t] = model.fit(xc, fc[:, t]).coef_
    return coef

"""Calibrating a raw attribution score into the protocol's affine datamodel.

Why
---
Estimators such as IF, NS, RIF or TRAK produce *full-data removal effects*
``Delta_i = f(A(D \\ {i})) - f(A(D))`` (or a score proportional to them), while the
protocol's attribution is the affine datamodel ``g(x) = a0 + sum_i a_i x_i`` of the
outputs of models trained on random subsets ``x ~ B_p`` in +-1 encoding
(``x_i = +1`` <=> point ``i`` included). The two live on different scales:

* subset models see about ``p N`` points, so one point moves them more (roughly ``1/p``
  for convex models with a fixed ridge);
* in +-1 encoding switching point ``i`` from out to in changes ``g`` by ``2 a_i``, so
  ``a_i`` is about half the in-minus-out effect;
* the removal effects carry no intercept at all.

So for a score matrix ``s`` (T, N) in contribution orientation (positive = including the
point raises the output; for removal effects ``s = -Delta``) we fit, per output ``t``, the
two-parameter model ::

    f_t(x) ~ alpha_t + beta_t * z_t(x),    z_t(x) = <s_t, x> = sum_i s_ti x_i

by ordinary least squares on ``R`` training runs ``(x_r, f_r)`` with ``x_r ~ B_p``, and
report the datamodel ``a0_t = alpha_t``, ``a_ti = beta_t s_ti``. Under B_p this is the
best affine datamodel within the span of ``{1, <s_t, x>}`` (docs/protocol.md section 1.3): the error
left is ``sigma^2 sum_i (beta_t s_ti - theta*_ti)^2``, which calibration cannot fix. When
the score is exactly proportional to the optimal datamodel, ``s = kappa theta*``, the
population fit gives ``beta = 1 / kappa`` and ``alpha = theta*_0`` exactly (the
non-linear part of ``f`` is orthogonal to ``1`` and to every ``x_i`` under B_p).

``beta_t`` is the calibration scale kappa and must be recorded in a
claim. It is returned as fitted; a negative value means the score is anti-correlated with
the outputs on these runs (a sign bug or a useless score), and it is *not* clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    """A calibrated score: ``a0 = alpha`` (T,), ``a = beta[:, None] * scores`` (T, N).

    ``alpha_stderr`` / ``beta_stderr`` are the usual OLS standard errors (homoscedastic
    residuals; the residual variance is pooled over outputs when ``shared_scale``);
    ``r2`` is the fraction of each output's variance on the runs explained by the fit
    (NaN for a constant output); ``runs`` is R.
    """

    alpha: FloatArray
    beta: FloatArray
    scores: FloatArray
    alpha_stderr: FloatArray
    beta_stderr: FloatArray
    r2: FloatArray
    runs: int
    shared_scale: bool

    @property
    def a0(self) -> FloatArray:
        """Intercepts (T,)."""
        return self.alpha

    @property
    def a(self) -> FloatArray:
        """Coefficients (T, N) in +-1 encoding, positive = including the point raises f."""
        return np.asarray(self.beta[:, None] * self.scores, dtype=np.float64)

    @property
    def attribution(self) -> FloatArray:
        """The protocol attribution (T, 1 + N) = ``[a0 | a]``."""
        return np.ascontiguousarray(np.column_stack([self.alpha, self.a]))


def calibrate(
    scores: FloatArray,
    masks: npt.NDArray[np.bool_],
    outputs: FloatArray,
    *,
    shared_scale: bool = False,
) -> Calibration:
    """Fit ``f_t ~ alpha_t + beta_t <s_t, x>`` on R B_p runs (see the module docstring).

    ``scores`` (T, N) in contribution orientation, ``masks`` (R, N) bool (True =
    included, i.e. ``x = +1``), ``outputs`` (R, T). With ``shared_scale`` one ``beta``
    is fitted for all outputs (intercepts stay per output). An output whose score gives
    a constant ``z`` on the runs (e.g. an all-zero score) gets ``beta = 0``,
    ``alpha = mean f`` and a NaN ``beta_stderr``.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    f = np.asarray(outputs, dtype=np.float64)
    if f.ndim == 1:
        f = f[:, None]
    m = np.asarray(masks)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise ValueError("masks must be a bool array of shape (R, N)")
    R, N = m.shape
    T = s.shape[0]
    if s.shape != (T, N):
        raise ValueError(f"scores must have shape (T, {N}), got {s.shape}")
    if f.shape != (R, T):
        raise ValueError(f"outputs must have shape ({R}, {T}), got {f.shape}")
    if R < 3:
        raise ValueError("calibration needs at least 3 runs")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(f))):
        raise ValueError("scores and outputs must be finite")

    x = np.where(m, 1.0, -1.0)
    z = x @ s.T  # (R, T)
    zm, fm = z.mean(axis=0), f.mean(axis=0)
    zc, fc = z - zm, f - fm
    szz = (zc * zc).sum(axis=0)
    szf = (zc * fc).sum(axis=0)
    sff = (fc * fc).sum(axis=0)
    tiny = 1e-300
    if shared_scale:
        total = float(szz.sum())
        b = float(szf.sum()) / total if total > tiny else 0.0
        beta = np.full(T, b)
    else:
        ok = szz > tiny
        beta = np.where(ok, szf / np.where(ok, szz, 1.0), 0.0)
    alpha = fm - beta * zm
    resid = fc - zc * beta
    sse = (resid * resid).sum(axis=0)
    if shared_scale:
        dof = max(R * T - T - 1, 1)
        sigma2 = np.full(T, float(sse.sum()) / dof)
        total = float(szz.sum())
        beta_se = np.full(T, np.sqrt(sigma2[0] / total) if total > tiny else np.nan)
    else:
        sigma2 = sse / max(R - 2, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta_se = np.where(szz > tiny, np.sqrt(sigma2 / szz), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        lever = np.where(szz > tiny, zm * zm / np.where(szz > tiny, szz, 1.0), 0.0)
        alpha_se = np.sqrt(sigma2 * (1.0 / R + lever))
        r2 = np.where(sff > tiny, 1.0 - sse / np.where(sff > tiny, sff, 1.0), np.nan)
    return Calibration(
        alpha=np.asarray(alpha, dtype=np.float64),
        beta=np.asarray(beta, dtype=np.float64),
        scores=s,
        alpha_stderr=np.asarray(alpha_se, dtype=np.float64),
        beta_stderr=np.asarray(beta_se, dtype=np.float64),
        r2=np.asarray(r2, dtype=np.float64),
        runs=R,
        shared_scale=shared_scale,
    )

"""From received values to a verdict: estimates, confidence bounds, decision rule.

For each verified output the Verifier computes an estimate ``D`` of the sub-optimality
error ``err(a) = mse_p(f, g_a) - min_affine mse_p`` and bounds around it:

* ``residual`` estimator: ``D = z0 + z1`` of the degree-2 fit of the noise stability of
  ``r = f - g_a`` on E (no local MSE step).
* ``paper`` estimator: ``D = mse_hat - B_hat_>=2`` with ``mse_hat`` from the Verifier's
  own fresh trainings M and ``B_hat_>=2`` from E (Algorithm 1).

Bounds (all per output; Z outputs share delta by a union bound):

* ``w``: sampling half-width -- CLT ``z * std_error`` (practical / explicit presets) or
  Hoeffding with worst-case product ranges (theory preset); two-sided at level
  ``split.noise * delta / Z``.
* ``bias``: the degree->=3 bias of the interpolation fit lowers ``D`` by at most
  ``kappa(rho) * B_>=3``, and ``B_>=3 <= E[r^2]`` (residual) or ``<= E[f^2]`` (paper) is
  bounded by a one-sided upper confidence bound from the same run.
* ``corruption``: the Prover may have altered values the spot checks missed; with k
  checks among |E| values, more than ``m*`` corruptions are caught with probability
  ``>= 1 - split.corruption * delta`` and ``m*`` corruptions move ``D`` by at most the
  sum of the ``m*`` largest per-value charges.
* ``tolerance``: spot checks accept ``|f - f'| <= tau``, so every value may be shifted
  by tau undetected: ``sum_t |c_t| (2 R tau + tau^2)`` with R the largest |r| or |f|.

Decision: ``ACCEPT`` iff ``D + w + bias + corruption + tolerance <= eps`` (then
``err <= eps`` with probability ``>= 1 - delta``); ``REJECT`` (mse_gap) iff ``D - w >
max(eps / 2, eta)`` (an honest Prover with ``err <= eta`` is rejected with probability
``<= delta``); otherwise ``INCONCLUSIVE`` with the sizes that would decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.fourier.estimation import (
    LevelSample,
    banded_corruption_charges,
    bias_coefficient,
    corruption_charges,
    corruption_shift_bound,
    estimate,
)
from attribution.protocol.challenges import LEVELS, ChallengeLayout
from attribution.protocol.params import ProtocolParams
from attribution.stats import clopper_pearson, max_undetected, normal_quantile

FloatArray = npt.NDArray[np.float64]

ACCEPT, REJECT, INCONCLUSIVE = "ACCEPT", "REJECT", "INCONCLUSIVE"


@dataclass(frozen=True)
class OutputDecision:
    """Statistics and verdict of one output."""

    output: int
    verdict: str
    statistic: float
    halfwidth: float
    bias_bound: float
    corruption_bound: float
    tolerance_bound: float
    upper: float
    lower: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "verdict": self.verdict,
            "statistic": self.statistic,
            "ci": [self.statistic - self.halfwidth, self.statistic + self.halfwidth],
            "halfwidth": self.halfwidth,
            "bias_bound": self.bias_bound,
            "corruption_bound": self.corruption_bound,
            "tolerance_bound": self.tolerance_bound,
            "upper_bound": self.upper,
            "lower_bound": self.lower,
            **self.details,
        }


def prescreen(
    attribution_row: FloatArray, p: float, b: float, epsilon: float
) -> tuple[bool, float]:
    """``E[g^2] = (a0 + mu sum a)^2 + sigma^2 sum a^2 <= (b + sqrt(eps))^2``.

    The prescreen of docs/protocol.md section 6.3.
    """
    mu, sigma2 = 2 * p - 1, 4 * p * (1 - p)
    a0, a = attribution_row[0], attribution_row[1:]
    eg2 = float((a0 + mu * a.sum()) ** 2 + sigma2 * float(a @ a))
    return eg2 <= (b + math.sqrt(epsilon)) ** 2, eg2


def _split_levels(
    values: FloatArray, layout: ChallengeLayout
) -> dict[str, tuple[FloatArray, FloatArray]]:
    out = {}
    for i, key in enumerate(LEVELS):
        xs, xps = layout.level_rows(i)
        out[key] = (values[xs], values[xps])
    return out


def _ucb_mean(values: FloatArray, z: float) -> float:
    return float(values.mean() + z * values.std(ddof=1) / math.sqrt(values.size))


def decide_output(
    params: ProtocolParams,
    layout: ChallengeLayout,
    output: int,
    f_e: FloatArray,
    g_e: FloatArray,
    b: float,
    tau: float,
    mse_terms: FloatArray | None,
    band: tuple[FloatArray, FloatArray] | None = None,
    clip_upper: float | None = None,
) -> OutputDecision:
    """Verdict of one output from its f-values on E (and the local MSE terms, paper).

    ``band = (lower, upper)``: per-row bounds on E of the audited target (band
    ``committed``, docs/protocol.md section 6.13); the observed values are clipped into it
    and the corruption charges use its widths instead of ``[-b, b]``. ``clip_upper``: the
    upper confidence bound on how often the band clips an honest value (from the spot
    checks); above ``params.clip_level`` the run cannot ACCEPT.
    """
    Z = len(params.outputs)
    delta, eps = params.delta, params.epsilon
    rho = params.rho
    z_noise = normal_quantile(1 - params.split.noise * delta / (2 * Z))
    z_bias = normal_quantile(1 - params.split.bias * delta / Z)
    target = "residual" if params.estimator == "residual" else "paper"
    fl = _split_levels(f_e, layout)
    details: dict[str, Any] = {}
    if target == "residual":
        if band is not None:
            band_lo, band_hi = band
            f_e = np.clip(f_e, band_lo, band_hi)
            fl = _split_levels(f_e, layout)
        gl = _split_levels(g_e, layout)
        u = {k: (fl[k][0] - gl[k][0], fl[k][1] - gl[k][1]) for k in LEVELS}
        sample = LevelSample(*(u[k][0] * u[k][1] for k in LEVELS))
        if band is not None:
            lo_l, hi_l = _split_levels(band_lo, layout), _split_levels(band_hi, layout)
            charges = banded_corruption_charges(fl, gl, lo_l, hi_l, rho)
            # the largest honest |r| a hidden value can have, for the B_>=3 term below
            r_hidden = float(np.max(np.maximum(band_hi - g_e, g_e - band_lo)))
        else:
            charges = corruption_charges(fl, gl, None, rho, target, b)
        anchors = np.concatenate([u[k][0] for k in LEVELS])
        r_max = float(np.max(np.abs(f_e - g_e))) + tau
        b3_values = anchors * anchors
    else:
        singles = f_e[layout.single_rows()]
        sample = LevelSample(*(fl[k][0] * fl[k][1] for k in LEVELS), s1=singles * singles)
        charges = corruption_charges(fl, None, singles, rho, target, b)
        if params.mse_source == "delegated":
            # the MSE comes from the Prover's singleton values (B_p subsets with fresh
            # seeds, spot-checked like every value of E); a corrupted singleton also
            # moves the MSE by at most (b + |g|)^2 / N_1
            g_single = g_e[layout.single_rows()]
            mse_terms = (singles - g_single) ** 2
            n1 = singles.size
            extra = np.concatenate([np.zeros(charges.size - n1), (b + np.abs(g_single)) ** 2 / n1])
            charges = charges + extra
        r_max = b + tau
        b3_values = singles * singles
    est = estimate(sample, rho, target, params.fit)
    coefs = est.coefficients
    g_abs = float(np.max(np.abs(g_e))) if target == "residual" else 0.0
    if band is None:
        r_hidden = b + g_abs
    d_noise = params.split.noise * delta / Z
    # sampling half-width
    if params.preset == "theory":
        ranges = {k: 2 * (b + g_abs) ** 2 for k in LEVELS}
        ranges["single"] = b * b
        var_term = sum(coefs[k] ** 2 * ranges[k] ** 2 / est.counts[k] for k in coefs)
        w_b = math.sqrt(var_term * math.log(2 / d_noise) / 2)
    else:
        w_b = z_noise * est.std_error
    statistic = est.value
    w = w_b
    if target == "paper":
        if mse_terms is None or mse_terms.size < 2:
            raise ValueError("the paper estimator needs the local MSE samples")
        mse_hat = float(mse_terms.mean())
        if params.preset == "theory":
            rng = float(np.max(mse_terms)) + 1e-300
            w_m = math.sqrt(rng**2 * math.log(2 / d_noise) / (2 * mse_terms.size))
            w = w_b + w_m
        else:
            var_m = float(mse_terms.var(ddof=1)) / mse_terms.size
            w = z_noise * math.sqrt(est.variance + var_m)
        details["mse_hat"] = mse_hat
        details["b_ge2_hat"] = est.value
        statistic = mse_hat - est.value
    # corruption the spot checks may have missed
    n_e = layout.n_rows
    if params.mode == "interactive":
        m_tol = max_undetected(n_e, params.k, params.split.corruption * delta)
        corr = corruption_shift_bound(charges, m_tol)
    else:
        m_tol, corr = 0, 0.0
    # degree >= 3 bias (lowers D), from an upper confidence bound on B_>=3; m_tol
    # undetected corruptions can lower that mean by at most m_tol * max square / n
    b3_ucb = max(0.0, _ucb_mean(b3_values, z_bias))
    b3_ucb += m_tol * r_hidden**2 / b3_values.size
    bias = bias_coefficient(rho) * b3_ucb
    tol = sum(abs(c) for c in coefs.values()) * (2 * r_max * tau + tau * tau)
    upper = statistic + w + bias + corr + tol
    lower = statistic - w
    # a band that clips honest values too often audits a target too far from f: neither
    # verdict on it would say much about f, so the run is INCONCLUSIVE
    clipped_too_often = clip_upper is not None and clip_upper > params.clip_level
    if clipped_too_often:
        verdict = INCONCLUSIVE
    elif upper <= eps:
        verdict = ACCEPT
    elif lower > max(eps / 2, params.eta):
        verdict = REJECT
    else:
        verdict = INCONCLUSIVE
    if clipped_too_often:
        details["clipped_too_often"] = True
    details.update(
        {
            "estimate": est.value,
            "std_error": est.std_error,
            "level_means": est.level_means,
            "coefficients": coefs,
            "nnls_active": est.nnls_active,
            "fit": est.fit,
            "b_ge3_ucb": b3_ucb,
            "m_tolerated": m_tol,
        }
    )
    if clipped_too_often:
        details["budget_to_decide"] = {
            "decidable": False,
            "advice": f"the band clipped honest values too often (upper bound {clip_upper:.3g} "
            f"> clip_level {params.clip_level:g}): use a larger radius_scale",
        }
    elif verdict == INCONCLUSIVE:
        details["budget_to_decide"] = _budget(statistic, w, bias, corr, tol, eps, params)
    return OutputDecision(output, verdict, statistic, w, bias, corr, tol, upper, lower, details)


def band_radius(pilot_residuals: FloatArray, scale: float, tau: float, b: float) -> float:
    """Radius ``R`` of the committed band from the pilot residuals ``r = f - g`` on the
    Verifier's own fresh ``B_p`` trainings M (docs/protocol.md section 6.13)::

        R = max(scale * sqrt(mean r^2), 1e-6 b) + tau

    A residual with a heavier tail than ``scale`` root-mean-squares is clipped, and the
    clip rate measured on the spot checks (:func:`clip_statistics`) keeps such a run from
    being accepted. ``R`` depends only on the Verifier's secret pilot and the committed
    ``g``, never on a value the Prover sends for E, so the band is fixed before E's values
    are read.
    """
    r = np.asarray(pilot_residuals, dtype=np.float64)
    if r.size < 2 or not np.all(np.isfinite(r)):
        raise ValueError("the band radius needs at least two finite pilot residuals")
    rms = math.sqrt(float(np.mean(r * r)))
    return max(scale * rms, 1e-6 * b) + tau


def committed_band(g: FloatArray, radius: float, b: float) -> tuple[FloatArray, FloatArray]:
    """``(lower, upper) = (clip(g - R, -b, b), clip(g + R, -b, b))``: where the target
    ``f_h = clip(f, lower, upper)`` lives (docs/protocol.md section 6.13)."""
    return np.clip(g - radius, -b, b), np.clip(g + radius, -b, b)


def clip_statistics(
    true_values: FloatArray, lower: FloatArray, upper: FloatArray, delta: float
) -> dict[str, Any]:
    """How often the band clips the Verifier's own retrained values (spot checks): the
    count, a one-sided ``1 - delta`` Clopper-Pearson upper bound on the rate, and the mean
    of ``(f - f_h)^2`` (an estimate of ``||f - f_h||^2``)."""
    clipped = np.clip(true_values, lower, upper)
    n = int(true_values.size)
    hits = int(np.count_nonzero(clipped != true_values))
    upper_rate = clopper_pearson(hits, n, min(2 * delta, 0.5))[1]
    gap = float(np.mean((true_values - clipped) ** 2)) if n else 0.0
    return {"checked": n, "clipped": hits, "rate_upper": upper_rate, "gap_sq_mean": gap}


def _budget(
    d: float, w: float, bias: float, corr: float, tol: float, eps: float, params: ProtocolParams
) -> dict[str, Any]:
    """Sizes that would have decided with the same observed statistic and variances.

    Scaling the pairs per level and k together by ``s``: the half-width shrinks to
    ``w / sqrt(s)``; every per-value corruption charge shrinks by ``1/s`` while the number
    of tolerated corruptions grows by about ``s``, so the corruption bound stays about the
    same; the bias and tolerance terms do not depend on the sizes. The run decides once
    ``w / sqrt(s)`` fits the room left on the accept side (``eps - d - bias - tol - corr``)
    or on the reject side (``d - max(eps/2, eta)``).
    """
    room_accept = eps - d - bias - tol - corr
    room_reject = d - max(eps / 2, params.eta)
    room = max(room_accept, room_reject)
    if room <= 0 or w <= 0:
        return {
            "decidable": False,
            "advice": "the bias, corruption and tolerance terms alone exceed the budget: use "
            "a smaller rho, or a larger epsilon",
        }
    scale = max(1.0, (w / room) ** 2)
    return {
        "decidable": True,
        "scale": scale,
        "pairs_per_level": math.ceil(params.n_pairs[0] * scale),
        "k": math.ceil(params.k * scale),
        "M": math.ceil(params.m * scale),
    }

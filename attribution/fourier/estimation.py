"""Residual estimation from noise-stability samples (docs/protocol.md sections 5, 6.4).

Pure numerics (NumPy / SciPy), one model output at a time, float64 throughout.

Levels and samples
------------------
The noise-stability levels are ``t in {0, rho, 2 rho}`` with ``0 < rho <= 1/2`` (so
``2 rho <= 1``). Level ``t`` holds ``n_t`` pairs ``(x, x')`` with ``x ~ B_p`` and ``x'``
t-correlated to ``x`` (docs/protocol.md section 4.5), each member trained with its own independent
seed. The level mean of the products is ::

    y_t = (1/n_t) sum_i u(x_i) u(x'_i),      E[y_t] = h_u(t) = sum_k t^k B_k(u)

where ``u = f`` (target ``"paper"`` / ``"b_ge2_fbar"``) or ``u = r = f - g`` for a known
affine ``g`` (target ``"residual"``). With independent seeds and ``t < 1`` this is the
noise stability of the seed-averaged function ``fbar`` (docs/protocol.md section 5.1).
The ``"paper"`` target also uses ``N_1`` singletons ``x ~ B_p`` ("level 1") with mean square
``B̂ = (1/N_1) sum_j f(x_j)^2``, ``E[B̂] = E[f^2]``.

Degree-2 fit (docs/protocol.md section 5.3)
-------------------------------------------
``h(t) ~ z0 + z1 t + z2 t^2`` through ``(0, y0), (rho, y_rho), (2 rho, y_2rho)``;
``A = [[1, 0, 0], [1, rho, rho^2], [1, 2 rho, 4 rho^2]]``.

* ``"interp"`` (:func:`degree2_interp`), the exact solution of ``A z = y``::

      z0 = y0
      z1 = (-3 y0 + 4 y_rho - y_2rho) / (2 rho)
      z2 = (y0 - 2 y_rho + y_2rho) / (2 rho^2)

* ``"nnls"`` (:func:`degree2_nnls`): ``argmin_{z >= 0} ||A z - y||`` (Saunshi et al.).
  ``A`` is invertible, so when the interpolant is feasible (all ``z >= 0``) NNLS returns
  it (zero residual); a constraint is *active* exactly when some interpolated ``z_j < 0``.

Targets and their linear forms (:func:`fit_coefficients`)
---------------------------------------------------------
Every target is a fixed linear combination ``sum_t c_t y_t (+ c_single B̂)`` when the fit
is ``"interp"``:

* ``"paper"``: ``B̂_>=2 = B̂ - z0 - z1
  = 1 B̂ + (3/(2 rho) - 1) y0 - (2/rho) y_rho + (1/(2 rho)) y_2rho``
  (keys ``"single", "0", "rho", "2rho"``; ``sum |c| = 4/rho``).
* ``"residual"``: ``err^ = z0 + z1 = (1 - 3/(2 rho)) y0 + (2/rho) y_rho - (1/(2 rho)) y_2rho``
  of ``r = f - g`` (docs/protocol.md section 5.4: ``B0(r) + B1(r) = err(a)``,
  ``B_>=2(r) = B_>=2(f)``).
* ``"b_ge2_fbar"`` (only ``2 rho = 1``): ``y_1 - z0 - z1
  = (3/(2 rho) - 1) y0 - (2/rho) y_rho + (1 + 1/(2 rho)) y_2rho`` = ``2 y0 - 4 y_1/2 + 2 y_1``.
  Pairs at level ``t = 1`` are the same subset trained twice with independent seeds, so
  ``E[y_1] = E[fbar^2]`` and the target estimates ``B_>=2(fbar)`` (no seed variance),
  from pairs only. Equals ``z2`` of the interpolant.

Bias from degrees >= 3 (:func:`bias_coefficient`), with exact level means
-------------------------------------------------------------------------
Let ``R(t) = sum_{k>=3} B_k t^k``. The interpolant reproduces the degree <= 2 part of
``h`` exactly, so (checked by exact enumeration in ``tests/test_estimation.py``)::

    E[z0] = B0                                        (unbiased)
    E[z1] - B1 = (4 R(rho) - R(2 rho)) / (2 rho)
               = -sum_{k>=3} a_k(rho) B_k   <= 0,    a_k(rho) = ((2 rho)^k - 4 rho^k) / (2 rho)
                                                              = (2 rho)^(k-1) - 2 rho^(k-1)
    kappa(rho) = sup_{k>=3} a_k(rho),   2 rho^2 = a_3 <= kappa(rho) <= 4 rho^2

Sign conventions (verified by exact enumeration):

* ``"residual"``: ``0 <= (B0(r) + B1(r)) - E[z0 + z1] <= kappa(rho) B_>=3(r)``: the
  estimate of ``err(a)`` is biased **downwards** (it must be budgeted for soundness);
  equality holds when ``f`` has degree <= 2.
* ``"paper"`` and ``"b_ge2_fbar"``: ``0 <= E[est] - B_>=2 <= kappa(rho) B_>=3``: biased
  **upwards**.

``a_k`` is unimodal in ``k`` (``a_{k+1}/a_k = 2 rho (1 - 2^(1-k)) / (1 - 2^(2-k))``
decreases in ``k``), so the supremum is the first local maximum; for ``2 rho = 1``
the sequence ``1 - 2^(2-k)`` increases to its supremum 1 (not attained).

Sampling variance (:func:`estimate`)
------------------------------------
The levels (and the singletons) are independent samples (disjoint draws, independent
seeds, no subset reuse) and within a level the ``n_t`` products are i.i.d., so the
variance of the linear form adds over levels. CLT plug-in::

    Var^ = sum_t c_t^2 s_t^2 / n_t,     s_t^2 = unbiased (ddof = 1) sample variance

For ``fit = "nnls"`` with an active constraint the estimator is not linear and this
plug-in (of the interpolation form) is only indicative.

Adversarial corruption (:func:`corruption_charges`, docs/protocol.md sections 5.9, 6.7)
---------------------------------------------------------------------------------------
Up to ``m`` evaluated values ``f`` (anywhere, chosen adversarially) are replaced by
other values in ``[-b, b]``. With ``r = f - g`` (``g = 0`` for ``"paper"`` and
``"b_ge2_fbar"`` without ``g``), a pair ``(v, w)`` at level ``t`` contributes
``c_t r(v) r(w) / n_t`` to the linear form. The Verifier knows only the observed values
``r_obs``; the honest ones satisfy ``|r_hon(v)| <= b + |g(v)|``. Each value ``v`` gets the
charge ::

    charge_v = |c_t| / n_t * max( 2 b |r_obs(w)|,
                                  ((b + |g(v)|)(b + |g(w)|) + |r_obs(v) r_obs(w)|) / 2 )

* only ``v`` corrupted (``w`` honest, ``r_obs(w) = r_hon(w)``): the shift is
  ``|c_t|/n_t |r_obs(w)| |f_obs(v) - f_hon(v)| <= |c_t|/n_t 2 b |r_obs(w)|``;
* both corrupted: the shift is ``<= |c_t|/n_t (|r_obs(v) r_obs(w)| + |r_hon(v) r_hon(w)|)``
  ``<= |c_t|/n_t (|r_obs(v) r_obs(w)| + (b + |g(v)|)(b + |g(w)|)) = charge_v + charge_w``
  at least (each charge is at least half of it).

A singleton square moves within ``[0, b^2]``: ``charge = |c_single| b^2 / N_1``. Hence for
any corrupted set ``C`` with ``|C| <= m`` the linear-form estimate moves by at most
``sum_{v in C} charge_v <= sum of the m largest charges`` (:func:`corruption_shift_bound`).
The bound is for the ``"interp"`` linear form (the fit the error accounting uses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

FloatArray = npt.NDArray[np.float64]

LEVELS: tuple[str, str, str] = ("0", "rho", "2rho")
"""Keys of the three noise-stability levels ``t = 0, rho, 2 rho``."""
SINGLE = "single"
"""Key of the singleton (level 1) mean square ``B̂`` (target ``"paper"`` only)."""
TARGETS: tuple[str, ...] = ("paper", "residual", "b_ge2_fbar")
FITS: tuple[str, ...] = ("interp", "nnls")

_KAPPA_MAX_K = 100_000
_VALUE_TOL = 1e-12  # relative slack when checking observed values against [-b, b]


# --------------------------------------------------------------------------- checks


def _check_rho(rho: float) -> float:
    r = float(rho)
    if not (math.isfinite(r) and 0.0 < r <= 0.5):
        raise ValueError(f"rho must lie in (0, 1/2] (so that 2 rho <= 1), got {rho!r}")
    return r


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return target


def _is_half(rho: float) -> bool:
    return math.isclose(2.0 * rho, 1.0, rel_tol=0.0, abs_tol=1e-12)


def _as_vector(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.array(values, dtype=np.float64, copy=True)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- fit


def fit_coefficients(rho: float, target: str) -> dict[str, float]:
    """Coefficients ``c`` of the linear form of ``target`` on the level means (``"interp"``).

    * ``"paper"``: ``{"single": 1, "0": 3/(2 rho) - 1, "rho": -2/rho, "2rho": 1/(2 rho)}``
      (``B̂_>=2 = B̂ - z0 - z1``).
    * ``"residual"``: ``{"0": 1 - 3/(2 rho), "rho": 2/rho, "2rho": -1/(2 rho)}``
      (``z0 + z1``).
    * ``"b_ge2_fbar"``: ``{"0": 3/(2 rho) - 1, "rho": -2/rho, "2rho": 1 + 1/(2 rho)}``
      (``y_2rho - z0 - z1``); requires ``2 rho = 1`` (``ValueError`` otherwise).
    """
    r = _check_rho(rho)
    _check_target(target)
    zsum = {"0": 1.0 - 3.0 / (2.0 * r), "rho": 2.0 / r, "2rho": -1.0 / (2.0 * r)}
    if target == "residual":
        return zsum
    minus = {k: -v for k, v in zsum.items()}
    if target == "paper":
        return {SINGLE: 1.0, **minus}
    if not _is_half(r):
        raise ValueError(f"target 'b_ge2_fbar' needs 2 rho = 1, got rho = {rho!r}")
    minus["2rho"] += 1.0
    return minus


def design_matrix(rho: float) -> FloatArray:
    """``A = [[1, 0, 0], [1, rho, rho^2], [1, 2 rho, 4 rho^2]]`` (rows: levels 0, rho, 2 rho)."""
    r = _check_rho(rho)
    t = np.array([0.0, r, 2.0 * r])
    return np.asarray(np.stack([np.ones(3), t, t * t], axis=1), dtype=np.float64)


def degree2_interp(y0: float, yr: float, y2r: float, rho: float) -> tuple[float, float, float]:
    """Exact interpolation ``A z = (y0, yr, y2r)``.

    ``z0 = y0``, ``z1 = (-3 y0 + 4 yr - y2r) / (2 rho)``,
    ``z2 = (y0 - 2 yr + y2r) / (2 rho^2)``.
    """
    r = _check_rho(rho)
    y0, yr, y2r = float(y0), float(yr), float(y2r)
    z1 = (-3.0 * y0 + 4.0 * yr - y2r) / (2.0 * r)
    z2 = (y0 - 2.0 * yr + y2r) / (2.0 * r * r)
    return y0, z1, z2


def degree2_nnls(y0: float, yr: float, y2r: float, rho: float) -> tuple[float, float, float, bool]:
    """``argmin_{z >= 0} ||A z - y||_2`` (``scipy.optimize.nnls``) and whether it binds.

    ``active`` is True exactly when the interpolant (:func:`degree2_interp`) has a negative
    component; otherwise the NNLS solution equals the interpolant up to rounding (``A`` is
    invertible, so the unconstrained minimiser is unique with zero residual).
    """
    interp = degree2_interp(y0, yr, y2r, rho)
    active = min(interp) < 0.0
    a = design_matrix(rho)
    y = np.array([y0, yr, y2r], dtype=np.float64)
    z, _ = nnls(a, y)
    return float(z[0]), float(z[1]), float(z[2]), bool(active)


def bias_coefficient(rho: float) -> float:
    """``kappa(rho) = sup_{k>=3} ((2 rho)^k - 4 rho^k) / (2 rho)``, for ``0 < rho <= 1/2``.

    With exact level means, ``0 <= (B0 + B1) - E[z0 + z1] <= kappa(rho) B_>=3`` (the
    ``"residual"`` estimate is biased down) and ``0 <= E[B̂_>=2] - B_>=2 <=
    kappa(rho) B_>=3`` (``"paper"`` / ``"b_ge2_fbar"`` biased up). The terms
    ``a_k = (2 rho)^(k-1) - 2 rho^(k-1)`` are unimodal in ``k``; the loop stops at the
    first decrease. ``kappa = 2 rho^2`` for ``rho <= 1/3``, ``kappa <= 4 rho^2`` always, and
    ``kappa(1/2) = 1`` (the limit of the increasing sequence ``1 - 2^(2-k)``).
    """
    r = _check_rho(rho)
    if _is_half(r):
        return 1.0
    best = 2.0 * r * r  # a_3
    for k in range(4, _KAPPA_MAX_K):
        a_k = (2.0 * r) ** (k - 1) - 2.0 * r ** (k - 1)
        if a_k <= best:
            return best
        best = a_k
    return best  # pragma: no cover - unreachable for 2 rho < 1 - 1e-12


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True, eq=False)
class LevelSample:
    """The per-output samples of one residual estimation.

    ``p0``, ``p_rho``, ``p_2rho`` hold the products ``u(x) u(x')`` of the pairs at levels
    ``0, rho, 2 rho`` (``u = f`` or ``u = r = f - g``); ``s1`` the singleton squares
    ``f(x)^2`` (target ``"paper"`` only; keyword-only). Arrays are copied to read-only
    float64.
    """

    p0: FloatArray
    p_rho: FloatArray
    p_2rho: FloatArray
    s1: FloatArray | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("p0", "p_rho", "p_2rho"):
            object.__setattr__(self, name, _as_vector(getattr(self, name), name))
        if self.s1 is not None:
            object.__setattr__(self, "s1", _as_vector(self.s1, "s1"))

    def level(self, key: str) -> FloatArray:
        """The sample for ``key`` in ``("0", "rho", "2rho", "single")``."""
        arrays: dict[str, FloatArray | None] = {
            "0": self.p0,
            "rho": self.p_rho,
            "2rho": self.p_2rho,
            SINGLE: self.s1,
        }
        if key not in arrays:
            raise KeyError(key)
        arr = arrays[key]
        if arr is None:
            raise ValueError("this target needs singleton squares s1, got None")
        return arr


@dataclass(frozen=True)
class Estimate:
    """Result of :func:`estimate`.

    ``value``: the estimate (from the chosen fit). ``variance``: CLT plug-in
    ``sum_t c_t^2 s_t^2 / n_t`` of the linear form; ``std_error = sqrt(variance)``.
    ``coefficients``: ``c_t`` (:func:`fit_coefficients`). ``level_means``: ``y_t`` (and
    ``B̂`` under ``"single"``); ``counts``: ``n_t``. ``z0, z1, z2``: the fitted polynomial;
    ``nnls_active``: whether the interpolant had a negative component (logged for both
    fits; only ``"nnls"`` changes the value then).
    """

    value: float
    variance: float
    std_error: float
    coefficients: dict[str, float]
    level_means: dict[str, float]
    nnls_active: bool
    z0: float
    z1: float
    z2: float
    target: str
    fit: str
    counts: dict[str, int] = field(default_factory=dict)


def estimate(sample: LevelSample, rho: float, target: str, fit: str = "interp") -> Estimate:
    """Estimate ``target`` from ``sample`` with the degree-2 fit ``fit`` (module docstring).

    ``value = B̂ - z0 - z1`` (``"paper"``), ``z0 + z1`` (``"residual"``) or
    ``y_2rho - z0 - z1`` (``"b_ge2_fbar"``) with ``z`` from ``"interp"`` or ``"nnls"``; for
    ``"interp"`` it equals the linear form ``sum c_t y_t``. ``s1`` is ignored by the
    pair-only targets. Every used level needs at least 2 samples (for ``s_t^2``).
    """
    r = _check_rho(rho)
    coefs = fit_coefficients(r, target)
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    means: dict[str, float] = {}
    counts: dict[str, int] = {}
    variance = 0.0
    for key, c in coefs.items():
        arr = sample.level(key)
        if arr.size < 2:
            raise ValueError(f"level {key!r} needs at least 2 samples, got {arr.size}")
        means[key] = float(np.mean(arr))
        counts[key] = int(arr.size)
        variance += c * c * float(np.var(arr, ddof=1)) / arr.size
    y0, yr, y2r = means["0"], means["rho"], means["2rho"]
    interp = degree2_interp(y0, yr, y2r, r)
    active = min(interp) < 0.0
    if fit == "interp":
        z0, z1, z2 = interp
    else:
        z0, z1, z2, active = degree2_nnls(y0, yr, y2r, r)
    if target == "residual":
        value = z0 + z1
    elif target == "paper":
        value = means[SINGLE] - z0 - z1
    else:
        value = y2r - z0 - z1
    return Estimate(
        value=float(value),
        variance=float(variance),
        std_error=math.sqrt(variance),
        coefficients=coefs,
        level_means=means,
        nnls_active=bool(active),
        z0=float(z0),
        z1=float(z1),
        z2=float(z2),
        target=target,
        fit=fit,
        counts=counts,
    )


# --------------------------------------------------------------------------- corruption

PairArrays = tuple[npt.ArrayLike, npt.ArrayLike]


def _pair(arrays: Mapping[str, PairArrays], key: str, name: str) -> tuple[FloatArray, FloatArray]:
    if key not in arrays:
        raise ValueError(f"{name} is missing level {key!r}")
    first, second = arrays[key]
    a = _as_vector(first, f"{name}[{key!r}][0]")
    b = _as_vector(second, f"{name}[{key!r}][1]")
    if a.shape != b.shape:
        raise ValueError(f"{name}[{key!r}]: members have shapes {a.shape} and {b.shape}")
    return a, b


def _check_bounded(values: FloatArray, b: float, name: str) -> None:
    if values.size and float(np.max(np.abs(values))) > b * (1.0 + _VALUE_TOL):
        raise ValueError(f"{name}: observed values must lie in [-b, b] = [-{b}, {b}]")


def corruption_charges(
    levels: Mapping[str, PairArrays],
    g: Mapping[str, PairArrays] | None,
    singles: npt.ArrayLike | None,
    rho: float,
    target: str,
    b: float,
) -> FloatArray:
    """Per-value worst-case shift charges of the ``"interp"`` linear form (module docstring).

    ``levels[key] = (f(x), f(x'))``: the **observed** f-values of the pair members at level
    ``key in ("0", "rho", "2rho")`` (all three required; each in ``[-b, b]``).
    ``g[key] = (g(x), g(x'))``: the Verifier's exact affine prediction for the same subsets
    (``"residual"``/``"b_ge2_fbar"``; ``None`` means ``g = 0``; must be ``None`` for
    ``"paper"``). ``singles``: the observed singleton values ``f(x)`` (not squares), required
    for ``"paper"`` and rejected otherwise. For a pair ``(v, w)`` at level ``t``::

        charge_v = |c_t|/n_t * max(2 b |r(w)|, ((b + |g(v)|)(b + |g(w)|) + |r(v) r(w)|) / 2)

    with ``r = f_obs - g``; a singleton's charge is ``|c_single| b^2 / N_1``. Returns one
    charge per value: for each level in order ``"0", "rho", "2rho"`` the first members then
    the second members, then the singletons.
    """
    r = _check_rho(rho)
    coefs = fit_coefficients(r, target)
    bound = float(b)
    if not (math.isfinite(bound) and bound > 0.0):
        raise ValueError(f"b must be a positive finite number, got {b!r}")
    if target == "paper" and g is not None:
        raise ValueError("target 'paper' uses products of f: g must be None")
    out: list[FloatArray] = []
    for key in LEVELS:
        fa, fb = _pair(levels, key, "levels")
        _check_bounded(fa, bound, f"levels[{key!r}]")
        _check_bounded(fb, bound, f"levels[{key!r}]")
        if g is None:
            ga, gb = np.zeros_like(fa), np.zeros_like(fb)
        else:
            ga, gb = _pair(g, key, "g")
            if ga.shape != fa.shape:
                raise ValueError(f"g[{key!r}] has shape {ga.shape}, levels has {fa.shape}")
        n_t = fa.size
        if n_t == 0:
            raise ValueError(f"level {key!r} has no pairs")
        ra, rb = fa - ga, fb - gb
        scale = abs(coefs[key]) / n_t
        double = 0.5 * ((bound + np.abs(ga)) * (bound + np.abs(gb)) + np.abs(ra * rb))
        out.append(scale * np.maximum(2.0 * bound * np.abs(rb), double))
        out.append(scale * np.maximum(2.0 * bound * np.abs(ra), double))
    if SINGLE in coefs:
        if singles is None:
            raise ValueError("target 'paper' needs the singleton values")
        s = _as_vector(singles, "singles")
        if s.size == 0:
            raise ValueError("singles is empty")
        _check_bounded(s, bound, "singles")
        out.append(np.full(s.size, abs(coefs[SINGLE]) * bound * bound / s.size))
    elif singles is not None:
        raise ValueError(f"target {target!r} uses no singletons: singles must be None")
    return np.asarray(np.concatenate(out), dtype=np.float64)


def banded_corruption_charges(
    levels: Mapping[str, PairArrays],
    g: Mapping[str, PairArrays],
    lower: Mapping[str, PairArrays],
    upper: Mapping[str, PairArrays],
    rho: float,
) -> FloatArray:
    """Per-value worst-case shift charges of the ``"residual"`` form when every honest value
    lies in a known band (docs/protocol.md section 6.13).

    ``levels[key] = (f(x), f(x'))`` are the **observed** values, already clipped into the
    band ``[lower, upper]`` that the Verifier fixed for each value before seeing any of them
    (``lower <= upper`` elementwise; checked); ``g`` the Verifier's affine prediction. The
    honest value of the same challenge lies in the same band, so with ``r = f_obs - g``:

    * ``W_v = max(f_obs(v) - lower_v, upper_v - f_obs(v))`` bounds ``|r_true(v) - r(v)|``;
    * ``B_v = max(upper_v - g_v, g_v - lower_v)`` bounds ``|r_true(v)|``.

    For a pair ``(v, w)`` at level ``t``::

        charge_v = |c_t|/n_t * max(W_v |r(w)|, (B_v B_w + |r(v) r(w)|) / 2)

    If only ``v`` is corrupted the product moves by ``|r_true(v) - r(v)| |r(w)| <= W_v
    |r(w)|``; if both are, by at most ``|r_true(v) r_true(w)| + |r(v) r(w)|``, which the two
    halves cover. With the band ``[-b, b]`` this is never larger than
    :func:`corruption_charges` (``W_v <= 2 b``, ``B_v = b + |g_v|`` there too). Returns one
    charge per value in the order of :func:`corruption_charges`.
    """
    coefs = fit_coefficients(_check_rho(rho), "residual")
    out: list[FloatArray] = []
    for key in LEVELS:
        fa, fb = _pair(levels, key, "levels")
        ga, gb = _pair(g, key, "g")
        la, lb = _pair(lower, key, "lower")
        ua, ub = _pair(upper, key, "upper")
        for arr, name in ((ga, "g"), (la, "lower"), (ua, "upper")):
            if arr.shape != fa.shape:
                raise ValueError(f"{name}[{key!r}] has shape {arr.shape}, levels {fa.shape}")
        if fa.size == 0:
            raise ValueError(f"level {key!r} has no pairs")
        for f_, lo, hi in ((fa, la, ua), (fb, lb, ub)):
            slack = _VALUE_TOL * (1.0 + np.abs(hi) + np.abs(lo))
            if np.any(lo > hi) or np.any(f_ < lo - slack) or np.any(f_ > hi + slack):
                raise ValueError(f"level {key!r}: observed values must lie in their bands")
        ra, rb = fa - ga, fb - gb
        wa, wb = np.maximum(fa - la, ua - fa), np.maximum(fb - lb, ub - fb)
        ba, bb = np.maximum(ua - ga, ga - la), np.maximum(ub - gb, gb - lb)
        scale = abs(coefs[key]) / fa.size
        double = 0.5 * (ba * bb + np.abs(ra * rb))
        out.append(scale * np.maximum(wa * np.abs(rb), double))
        out.append(scale * np.maximum(wb * np.abs(ra), double))
    return np.asarray(np.concatenate(out), dtype=np.float64)


def _check_charges(charges: npt.ArrayLike) -> FloatArray:
    arr = _as_vector(charges, "charges")
    if arr.size and float(np.min(arr)) < 0.0:
        raise ValueError("charges must be non-negative")
    return arr


def corruption_shift_bound(charges: npt.ArrayLike, m: int) -> float:
    """Sum of the ``m`` largest charges: the worst-case shift from ``m`` corrupted values."""
    arr = _check_charges(charges)
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 0:
        raise ValueError(f"m must be a non-negative integer, got {m!r}")
    if m == 0 or arr.size == 0:
        return 0.0
    top = np.sort(arr)[::-1][: int(m)]
    return float(np.sum(top))


def max_tolerated_corruptions(charges: npt.ArrayLike, budget: float) -> int:
    """Largest ``m`` with :func:`corruption_shift_bound` ``(charges, m) <= budget``."""
    arr = _check_charges(charges)
    if not (math.isfinite(budget) and budget >= 0.0):
        raise ValueError(f"budget must be a non-negative finite number, got {budget!r}")
    cumulative = np.cumsum(np.sort(arr)[::-1])
    return int(np.searchsorted(cumulative, float(budget), side="right"))


__all__ = [
    "FITS",
    "LEVELS",
    "SINGLE",
    "TARGETS",
    "Estimate",
    "LevelSample",
    "banded_corruption_charges",
    "bias_coefficient",
    "corruption_charges",
    "corruption_shift_bound",
    "degree2_interp",
    "degree2_nnls",
    "design_matrix",
    "estimate",
    "fit_coefficients",
    "max_tolerated_corruptions",
]

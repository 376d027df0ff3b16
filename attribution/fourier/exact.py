"""Exact Fourier analysis under B_p by enumerating all of ``{-1, +1}^N`` (small N).

Conventions (docs/protocol.md sections 1.1-1.2):

* **Encoding.** A subset is ``x`` in ``{-1, +1}^N`` with ``x_i = +1`` <=> point ``i`` is
  included. Arrays hold it as a boolean mask (True = included).
* **Enumeration order.** :func:`all_subsets` lists the ``2**N`` masks so that row ``t``
  includes point ``i`` exactly when bit ``i`` of ``t`` is set (``(t >> i) & 1``). Row 0 is
  the empty subset, row ``2**N - 1`` the full set. A function ``f`` is given as the vector
  ``values[t] = f(mask_t)``.
* **Spectra** use the same indexing: ``spectrum[T]`` is ``f̂_T`` for the set ``T`` whose
  members are the set bits of the integer ``T`` (so ``spectrum[0] = f̂_∅`` and
  ``spectrum[1 << i] = f̂_{i}``).
* **Basis.** ``mu = 2p - 1``, ``sigma = sqrt(4p(1-p))``, ``phi_i(x) = (x_i - mu) / sigma``,
  ``phi_T = prod_{i in T} phi_i``; orthonormal under ``B_p``. ``f̂_T = E_{B_p}[f phi_T]``.
* **Affine datamodel.** ``g(x) = a0 + sum_i a_i x_i`` in the ±1 encoding; a positive
  ``a_i`` means that including point ``i`` raises ``g`` (``g(x_i=+1) - g(x_i=-1) = 2 a_i``).

All functions work in ``O(N 2**N)`` time via per-coordinate butterflies (except
:func:`correlated_kernel`, which builds the dense ``4**N`` kernel for checks). They are
meant for ground truth and tests with ``N <= 16``; ``N`` is capped at :data:`MAX_N`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MAX_N = 20
"""Largest N the enumeration helpers accept (2**20 points)."""


def _check_p(p: float) -> float:
    p = float(p)
    if not (math.isfinite(p) and 0.0 < p < 1.0):
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return p


def _check_rho(rho: float) -> float:
    rho = float(rho)
    if not (math.isfinite(rho) and 0.0 <= rho <= 1.0):
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return rho


def _n_of(length: int) -> int:
    n = length.bit_length() - 1
    if length < 1 or (1 << n) != length:
        raise ValueError(f"expected 2**N values, got {length}")
    if n > MAX_N:
        raise ValueError(f"N = {n} exceeds MAX_N = {MAX_N}")
    return n


def _as_values(values: npt.ArrayLike) -> tuple[FloatArray, int]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim < 1:
        raise ValueError("values must have a leading axis of length 2**N")
    return arr, _n_of(arr.shape[0])


def basis_values(p: float) -> tuple[float, float]:
    """``(phi(-1), phi(+1)) = (-(1 + mu)/sigma, (1 - mu)/sigma)`` for one coordinate.

    Equivalently ``(-sqrt(p/(1-p)), sqrt((1-p)/p))``.
    """
    p = _check_p(p)
    mu = 2.0 * p - 1.0
    sigma = math.sqrt(4.0 * p * (1.0 - p))
    return (-(1.0 + mu) / sigma, (1.0 - mu) / sigma)


def all_subsets(n: int) -> BoolArray:
    """All ``2**n`` masks, shape ``(2**n, n)``: ``out[t, i] = bool((t >> i) & 1)``."""
    if not (0 <= n <= MAX_N):
        raise ValueError(f"n must lie in [0, {MAX_N}], got {n}")
    t = np.arange(1 << n, dtype=np.int64)[:, None]
    return ((t >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(np.bool_)


def bp_probabilities(masks: npt.ArrayLike, p: float) -> FloatArray:
    """``Pr_{B_p}[x]`` for each row of ``masks`` (M, n): ``p**|x| (1-p)**(n-|x|)``."""
    p = _check_p(p)
    m = np.asarray(masks, dtype=np.bool_)
    if m.ndim != 2:
        raise ValueError("masks must be a 2-D boolean array (M, n)")
    k = m.sum(axis=1)
    return np.asarray(p**k * (1.0 - p) ** (m.shape[1] - k), dtype=np.float64)


def popcounts(n: int) -> npt.NDArray[np.int64]:
    """``|T|`` for every bitmask ``T`` in ``0 .. 2**n - 1``."""
    return np.asarray(all_subsets(n).sum(axis=1), dtype=np.int64)


def _butterfly(
    arr: FloatArray, n: int, m00: float, m01: float, m10: float, m11: float
) -> FloatArray:
    """Apply the 2x2 matrix ``[[m00, m01], [m10, m11]]`` along every bit of axis 0.

    ``new[bit=0] = m00 * old[bit=0] + m01 * old[bit=1]`` and
    ``new[bit=1] = m10 * old[bit=0] + m11 * old[bit=1]``.
    """
    rest = arr.shape[1:]
    out = np.array(arr, dtype=np.float64, copy=True)
    for i in range(n):
        # index t = high * 2^(i+1) + bit * 2^i + low
        view = out.reshape((1 << (n - i - 1), 2, 1 << i, *rest))
        v0 = view[:, 0].copy()
        v1 = view[:, 1].copy()
        view[:, 0] = m00 * v0 + m01 * v1
        view[:, 1] = m10 * v0 + m11 * v1
    return out


def fourier_spectrum(values: npt.ArrayLike, p: float) -> FloatArray:
    """All coefficients ``f̂_T = E_{B_p}[f phi_T]``, indexed by the bitmask of ``T``.

    ``values`` has shape ``(2**N,)`` (or ``(2**N, ...)``: trailing axes are transformed
    independently). Per coordinate the transform maps ``(v(-1), v(+1))`` to
    ``((1-p) v(-1) + p v(+1),  (1-p) phi(-1) v(-1) + p phi(+1) v(+1))``.
    """
    p = _check_p(p)
    arr, n = _as_values(values)
    lo, hi = basis_values(p)
    return _butterfly(arr, n, 1.0 - p, p, (1.0 - p) * lo, p * hi)


def inverse_fourier(spectrum: npt.ArrayLike, p: float) -> FloatArray:
    """Values ``f(x) = sum_T f̂_T phi_T(x)`` from a spectrum (inverts :func:`fourier_spectrum`)."""
    p = _check_p(p)
    arr, n = _as_values(spectrum)
    lo, hi = basis_values(p)
    return _butterfly(arr, n, 1.0, lo, 1.0, hi)


def degree_weights(spectrum: npt.ArrayLike) -> FloatArray:
    """``B_k = sum_{|T| = k} f̂_T**2`` for ``k = 0..N`` (length ``N + 1``)."""
    arr, n = _as_values(spectrum)
    if arr.ndim != 1:
        raise ValueError("spectrum must be one-dimensional")
    return np.bincount(popcounts(n), weights=arr * arr, minlength=n + 1).astype(np.float64)


def optimal_affine(values: npt.ArrayLike, p: float) -> tuple[float, FloatArray]:
    """The MSE-optimal affine datamodel under ``B_p`` (±1 encoding).

    ``theta*_i = f̂_{i} / sigma`` and ``theta*_0 = f̂_∅ - mu * sum_i theta*_i``
    (docs/protocol.md section 1.2); its MSE equals ``B_{>=2}``.
    """
    p = _check_p(p)
    spec = fourier_spectrum(values, p)
    n = _n_of(spec.shape[0])
    mu = 2.0 * p - 1.0
    sigma = math.sqrt(4.0 * p * (1.0 - p))
    theta = spec[1 << np.arange(n, dtype=np.int64)] / sigma
    return float(spec[0] - mu * theta.sum()), np.asarray(theta, dtype=np.float64)


def _check_affine(a: npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"a must have shape ({n},), got {arr.shape}")
    return arr


def err_closed_form(values: npt.ArrayLike, p: float, a0: float, a: npt.ArrayLike) -> float:
    """``err(a0, a) = (a0 + mu sum_i a_i - f̂_∅)**2 + sigma**2 sum_i (a_i - theta*_i)**2``.

    This is ``mse(a0, a) - min_affine_mse`` by Parseval (docs/protocol.md section 1.3).
    """
    p = _check_p(p)
    theta0, theta = optimal_affine(values, p)
    vec = _check_affine(a, theta.shape[0])
    mu = 2.0 * p - 1.0
    f0 = theta0 + mu * float(theta.sum())
    sigma2 = 4.0 * p * (1.0 - p)
    return float((a0 + mu * vec.sum() - f0) ** 2 + sigma2 * np.sum((vec - theta) ** 2))


def mse(values: npt.ArrayLike, p: float, a0: float, a: npt.ArrayLike) -> float:
    """``E_{x~B_p}[(f(x) - a0 - <a, x>)**2]`` computed directly by enumeration."""
    p = _check_p(p)
    arr, n = _as_values(values)
    if arr.ndim != 1:
        raise ValueError("values must be one-dimensional")
    vec = _check_affine(a, n)
    masks = all_subsets(n)
    x = np.where(masks, 1.0, -1.0)
    resid = arr - (a0 + x @ vec)
    return float(np.dot(bp_probabilities(masks, p), resid * resid))


def noise_operator(values: npt.ArrayLike, p: float, rho: float) -> FloatArray:
    """``(T_rho f)(x) = E[f(x') | x]`` for ``x'`` rho-correlated to ``x``.

    Per coordinate ``x'_i = x_i`` with probability ``rho``, otherwise a fresh draw from
    ``B_p``; the transition matrix on ``(-1, +1)`` is
    ``[[rho + (1-rho)(1-p), (1-rho) p], [(1-rho)(1-p), rho + (1-rho) p]]``.
    Trailing axes of ``values`` are carried along.
    """
    p = _check_p(p)
    rho = _check_rho(rho)
    arr, n = _as_values(values)
    q = 1.0 - rho
    return _butterfly(arr, n, rho + q * (1.0 - p), q * p, q * (1.0 - p), rho + q * p)


def correlated_kernel(n: int, p: float, rho: float) -> FloatArray:
    """Dense joint law ``K[s, t] = Pr[x = mask_s, x' = mask_t]`` of a rho-correlated pair.

    ``x ~ B_p`` and ``x'`` as in :func:`noise_operator`; shape ``(2**n, 2**n)``, so only
    for small ``n`` (at most 12).
    """
    if not (0 <= n <= 12):
        raise ValueError(f"n must lie in [0, 12] for the dense kernel, got {n}")
    p = _check_p(p)
    rho = _check_rho(rho)
    masks = all_subsets(n)
    q = 1.0 - rho
    x = masks[:, None, :]
    y = masks[None, :, :]
    same = x == y
    # Pr[x'_i = y | x_i] = rho * 1[x = y] + (1 - rho) * Pr_{B_p}[y]
    trans = rho * same + q * np.where(y, p, 1.0 - p)
    return np.asarray(bp_probabilities(masks, p)[:, None] * trans.prod(axis=2), dtype=np.float64)


def noise_stability(values: npt.ArrayLike, p: float, rho: float) -> float:
    """``h_f(rho) = E[f(x) f(x')]``, ``x ~ B_p``, ``x'`` rho-correlated to ``x``.

    Evaluates the double sum ``sum_{x, x'} Pr[x] Pr[x' | x] f(x) f(x')`` with the kernel
    applied coordinate by coordinate (:func:`noise_operator`); no Fourier transform is
    involved, so it independently checks ``h_f(rho) = sum_k rho**k B_k``.
    """
    arr, n = _as_values(values)
    if arr.ndim != 1:
        raise ValueError("values must be one-dimensional")
    w = bp_probabilities(all_subsets(n), p)
    return float(np.dot(w, arr * noise_operator(arr, p, rho)))


__all__ = [
    "MAX_N",
    "all_subsets",
    "basis_values",
    "bp_probabilities",
    "correlated_kernel",
    "degree_weights",
    "err_closed_form",
    "fourier_spectrum",
    "inverse_fourier",
    "mse",
    "noise_operator",
    "noise_stability",
    "optimal_affine",
    "popcounts",
]

"""Small statistical helpers for the protocol engine (SciPy / NumPy only).

Formulas
--------
* **Clopper–Pearson** (exact binomial interval, two-sided level ``1 - alpha``) for ``k``
  successes out of ``n``::

      lower = Beta.ppf(alpha/2, k, n - k + 1)        (lower = 0 when k = 0)
      upper = Beta.ppf(1 - alpha/2, k + 1, n - k)    (upper = 1 when k = n)

  Closed forms at the ends: ``0/n -> (0, 1 - (alpha/2)^(1/n))``,
  ``n/n -> ((alpha/2)^(1/n), 1)``.
* **Normal quantile** ``Phi^{-1}(q)``.
* **Hoeffding** for the mean of ``n`` independent values in an interval of length
  ``range_``: ``Pr[|mean - E| >= h] <= 2 exp(-2 n h^2 / range_^2)``, so the two-sided
  half-width at failure probability ``delta`` is ``range_ sqrt(ln(2/delta) / (2 n))``
  (one-sided: ``ln(1/delta)``).
* **Spot checks without replacement** (docs/protocol.md section 6.7). ``k`` distinct items drawn
  uniformly from ``n`` items of which ``m`` are corrupted miss all of them with the
  hypergeometric probability ::

      miss(n, k, m) = C(n - m, k) / C(n, k) = prod_{i<m} (1 - k/(n - i))
                    = prod_{j<k} (1 - m/(n - j))   <= (1 - m/n)^k <= exp(-k m / n)

  (symmetric in ``k`` and ``m``; ``0`` when ``k + m > n``). It is non-increasing in ``m``
  and in ``k``. It is evaluated exactly (integer products, one correctly rounded division)
  when ``min(k, m) <= 256``, as a ``log1p`` sum over the shorter product when
  ``min(k, m) <= 10^6``, and through log-gamma otherwise. Ties count as detected:
  ``miss == delta`` satisfies ``detection >= 1 - delta``.
  ``max_undetected(n, k, delta)`` is the largest ``m`` with ``miss > delta``: an adversary
  corrupting more than that many items is caught with probability ``>= 1 - delta``.
  ``spot_checks_needed(n, m_tol, delta)`` is the smallest ``k`` with
  ``miss(n, k, m_tol + 1) <= delta``.
* **Log-log slope**: least-squares slope of ``log y`` on ``log x``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln
from scipy.stats import beta, norm

_EXACT_MAX_TERMS = 256
_PRODUCT_MAX_TERMS = 1_000_000


def _check_int(value: int, name: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def _check_prob(value: float, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0.0 < v < 1.0):
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return v


def clopper_pearson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided ``1 - alpha`` Clopper–Pearson interval for a binomial proportion.

    ``(Beta.ppf(alpha/2, k, n-k+1), Beta.ppf(1-alpha/2, k+1, n-k))`` with the conventions
    ``lower = 0`` at ``k = 0`` and ``upper = 1`` at ``k = n``; ``n = 0`` gives ``(0, 1)``.
    """
    n_ = _check_int(n, "n")
    k = _check_int(successes, "successes")
    if k > n_:
        raise ValueError(f"successes must be <= n = {n_}, got {k}")
    a = _check_prob(alpha, "alpha")
    if n_ == 0:
        return 0.0, 1.0
    lower = 0.0 if k == 0 else float(beta.ppf(a / 2.0, k, n_ - k + 1))
    upper = 1.0 if k == n_ else float(beta.ppf(1.0 - a / 2.0, k + 1, n_ - k))
    return lower, upper


def normal_quantile(q: float) -> float:
    """``Phi^{-1}(q)`` for ``0 < q < 1`` (e.g. ``normal_quantile(0.975) = 1.95996...``)."""
    return float(norm.ppf(_check_prob(q, "q")))


def hoeffding_halfwidth(range_: float, n: int, delta: float, *, two_sided: bool = True) -> float:
    """Hoeffding half-width ``range_ * sqrt(ln(2/delta) / (2 n))`` (``ln(1/delta)`` one-sided).

    With probability ``>= 1 - delta`` the mean of ``n`` independent values, each in an
    interval of length ``range_``, is within this distance of its expectation.
    """
    r = float(range_)
    if not (math.isfinite(r) and r >= 0.0):
        raise ValueError(f"range_ must be a non-negative finite number, got {range_!r}")
    n_ = _check_int(n, "n", lo=1)
    d = _check_prob(delta, "delta")
    log_term = math.log((2.0 if two_sided else 1.0) / d)
    return r * math.sqrt(log_term / (2.0 * n_))


def _log_miss(n: int, k: int, m: int) -> float:
    """``log C(n-m, k)/C(n, k)`` for ``k + m <= n`` and ``min(k, m) > _EXACT_MAX_TERMS``."""
    short, other = (m, k) if m <= k else (k, m)
    if short <= _PRODUCT_MAX_TERMS:
        i = np.arange(short, dtype=np.float64)
        return float(np.sum(np.log1p(-other / (n - i))))
    return float(gammaln(n - m + 1) - gammaln(n - m - k + 1) - gammaln(n + 1) + gammaln(n - k + 1))


def miss_probability(n_total: int, k: int, m: int) -> float:
    """``C(n-m, k) / C(n, k)``: a uniform ``k``-subset of ``n`` items avoids ``m`` given ones."""
    n = _check_int(n_total, "n_total")
    k_ = _check_int(k, "k")
    m_ = _check_int(m, "m")
    if k_ > n or m_ > n:
        raise ValueError(f"k = {k_} and m = {m_} must be <= n_total = {n}")
    if k_ + m_ > n:
        return 0.0
    short, other = (m_, k_) if m_ <= k_ else (k_, m_)
    if short <= _EXACT_MAX_TERMS:
        # prod_{i<short} (n - other - i) / (n - i) in integers; int / int is correctly rounded
        num = math.prod(range(n - other - short + 1, n - other + 1))
        den = math.prod(range(n - short + 1, n + 1))
        return num / den
    return min(1.0, math.exp(_log_miss(n, k_, m_)))


def detection_probability(n_total: int, k: int, m: int) -> float:
    """``1 - miss_probability(n_total, k, m)``: at least one of ``m`` corrupted items is checked."""
    return 1.0 - miss_probability(n_total, k, m)


def max_undetected(n_total: int, k: int, delta: float) -> int:
    """Largest ``m`` in ``[0, n_total]`` with ``miss_probability(n_total, k, m) > delta``.

    Any adversary corrupting more than this many items is caught with probability
    ``>= 1 - delta``. ``k = 0`` gives ``n_total``; ``k = n_total`` gives 0. Binary search
    (the miss probability is non-increasing in ``m``; ``m = 0`` always qualifies).
    """
    n = _check_int(n_total, "n_total")
    k_ = _check_int(k, "k")
    if k_ > n:
        raise ValueError(f"k must be <= n_total = {n}, got {k_}")
    d = _check_prob(delta, "delta")
    lo, hi = 0, n + 1  # miss(lo) > d; hi is the first m known to fail (sentinel n + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if miss_probability(n, k_, mid) > d:
            lo = mid
        else:
            hi = mid
    return lo


def spot_checks_needed(n_total: int, m_tolerated: int, delta: float) -> int:
    """Smallest ``k`` in ``[0, n_total]`` with ``miss_probability(n_total, k, m_tolerated + 1)
    <= delta``.

    Checking all ``n_total`` items always detects, so the result is at most ``n_total``;
    when ``m_tolerated >= n_total`` no excess corruption is possible and the result is 0.
    Binary search (non-increasing in ``k``).
    """
    n = _check_int(n_total, "n_total")
    m_tol = _check_int(m_tolerated, "m_tolerated")
    d = _check_prob(delta, "delta")
    m = m_tol + 1
    if m > n:
        return 0
    lo, hi = -1, n  # miss(hi) <= d (miss(n) = 0); lo = -1 is a sentinel "fails"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if miss_probability(n, mid, m) <= d:
            hi = mid
        else:
            lo = mid
    return hi


def log_log_slope(xs: npt.ArrayLike, ys: npt.ArrayLike) -> float:
    """Least-squares slope of ``log y`` on ``log x`` (all values positive and finite)."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError("xs and ys must be 1-D of equal length >= 2")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("xs and ys must be finite")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("xs and ys must be positive")
    lx, ly = np.log(x), np.log(y)
    dx = lx - lx.mean()
    sxx = float(np.dot(dx, dx))
    if sxx == 0.0:
        raise ValueError("xs must not all be equal")
    return float(np.dot(dx, ly - ly.mean()) / sxx)


__all__ = [
    "clopper_pearson",
    "detection_probability",
    "hoeffding_halfwidth",
    "log_log_slope",
    "max_undetected",
    "miss_probability",
    "normal_quantile",
    "spot_checks_needed",
]

"""Statistical helpers (attribution.stats) against closed forms and direct enumeration."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom

from attribution import stats

# --------------------------------------------------------------------------- Clopper–Pearson

# (successes, n, lower, upper) at alpha = 0.05.
# * 0/10 and 10/10: closed forms 1 - 0.025**(1/10) = 0.30849710781876083 and
#   0.025**(1/10) = 0.6915028921812392 (the k = 0 / k = n Clopper–Pearson endpoints).
# * 5/10 and 1/10: computed with scipy.stats.beta.ppf (SciPy 1.17.1); they agree with the
#   values printed by R's binom.test(5, 10) (0.1870860 0.8129140) and binom.test(1, 10)
#   (0.002528579 0.445016117) to the printed digits. Also checked below against the
#   defining binomial tail equations.
CP_GOLDEN = [
    (0, 10, 0.0, 0.30849710781876083),
    (10, 10, 0.6915028921812392, 1.0),
    (5, 10, 0.18708602844739855, 0.8129139715526015),
    (1, 10, 0.0025285785444617848, 0.4450161170281954),
]


@pytest.mark.parametrize(("k", "n", "lower", "upper"), CP_GOLDEN)
def test_clopper_pearson_golden(k: int, n: int, lower: float, upper: float) -> None:
    lo, hi = stats.clopper_pearson(k, n, 0.05)
    assert lo == pytest.approx(lower, rel=1e-12, abs=1e-15)
    assert hi == pytest.approx(upper, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("n", [1, 7, 30])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_clopper_pearson_defining_equations(n: int, alpha: float) -> None:
    """``Pr[X >= k | lower] = alpha/2`` and ``Pr[X <= k | upper] = alpha/2``."""
    for k in range(n + 1):
        lo, hi = stats.clopper_pearson(k, n, alpha)
        assert 0.0 <= lo < k / n + 1e-15 or k == 0
        assert k / n - 1e-15 < hi <= 1.0 or k == n
        if k == 0:
            assert lo == 0.0
            assert hi == pytest.approx(1 - (alpha / 2) ** (1 / n), rel=1e-12)
        else:
            assert binom.sf(k - 1, n, lo) == pytest.approx(alpha / 2, rel=1e-8)
        if k == n:
            assert hi == 1.0
            assert lo == pytest.approx((alpha / 2) ** (1 / n), rel=1e-12)
        else:
            assert binom.cdf(k, n, hi) == pytest.approx(alpha / 2, rel=1e-8)
    # intervals shrink with larger alpha
    a = stats.clopper_pearson(3, 10, 0.01)
    b = stats.clopper_pearson(3, 10, 0.2)
    assert a[0] < b[0] < b[1] < a[1]


def test_clopper_pearson_bad_arguments() -> None:
    assert stats.clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        stats.clopper_pearson(11, 10)
    with pytest.raises(ValueError, match="alpha"):
        stats.clopper_pearson(1, 10, 1.0)
    with pytest.raises(ValueError, match="integer"):
        stats.clopper_pearson(1.5, 10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- normal, Hoeffding


def test_normal_quantile_and_hoeffding() -> None:
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963984540054, rel=1e-14)
    assert stats.normal_quantile(0.5) == 0.0
    assert stats.normal_quantile(0.05) == pytest.approx(-1.6448536269514722, rel=1e-14)
    with pytest.raises(ValueError, match="q"):
        stats.normal_quantile(0.0)
    # two-sided: 2 exp(-2 n h^2 / R^2) = delta
    h = stats.hoeffding_halfwidth(2.0, 100, 0.05)
    assert h == pytest.approx(2.0 * math.sqrt(math.log(40.0) / 200.0), rel=1e-15)
    assert 2 * math.exp(-2 * 100 * h**2 / 4.0) == pytest.approx(0.05, rel=1e-12)
    one = stats.hoeffding_halfwidth(2.0, 100, 0.05, two_sided=False)
    assert math.exp(-2 * 100 * one**2 / 4.0) == pytest.approx(0.05, rel=1e-12)
    assert stats.hoeffding_halfwidth(0.0, 5, 0.1) == 0.0
    with pytest.raises(ValueError, match="n must be"):
        stats.hoeffding_halfwidth(1.0, 0, 0.1)


# --------------------------------------------------------------------------- spot checks


def _enumerated_miss(n: int, k: int, m: int) -> Fraction:
    """Fraction of k-subsets of range(n) that avoid the corrupted items 0..m-1."""
    subsets = list(itertools.combinations(range(n), k))
    missing = sum(1 for s in subsets if all(i >= m for i in s))
    return Fraction(missing, len(subsets))


@pytest.mark.parametrize("n", [1, 5, 9, 12])
def test_miss_probability_matches_enumeration(n: int) -> None:
    for k in range(n + 1):
        for m in range(n + 1):
            exact = _enumerated_miss(n, k, m)
            assert exact == Fraction(math.comb(n - m, k), math.comb(n, k))
            got = stats.miss_probability(n, k, m)
            assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-300)
            assert stats.detection_probability(n, k, m) == pytest.approx(1 - float(exact))
            assert got <= (1 - m / n) ** k + 1e-15  # without replacement is at least as good


@pytest.mark.parametrize("n", [6, 10, 12])
@pytest.mark.parametrize("delta", [0.01, 0.1, 0.3, 0.5])
def test_max_undetected_and_spot_checks_match_enumeration(n: int, delta: float) -> None:
    miss = {(k, m): _enumerated_miss(n, k, m) for k in range(n + 1) for m in range(n + 1)}
    d = Fraction(str(delta))  # the decimal delta: ties such as miss = 3/10 = delta are exact
    for k in range(n + 1):
        brute = max(m for m in range(n + 1) if miss[k, m] > d)
        assert stats.max_undetected(n, k, delta) == brute
    for m_tol in range(n + 2):
        feasible = [k for k in range(n + 1) if m_tol + 1 > n or miss[k, m_tol + 1] <= d]
        brute = min(feasible)
        got = stats.spot_checks_needed(n, m_tol, delta)
        assert got == brute
        # consistency: with that many checks, more than m_tol corruptions are caught
        assert stats.max_undetected(n, got, delta) <= m_tol


def test_monotonicity_and_edges() -> None:
    n, delta = 1000, 0.05
    ks = [stats.spot_checks_needed(n, m, delta) for m in range(0, 200, 7)]
    assert all(a >= b for a, b in itertools.pairwise(ks))  # more tolerance, fewer checks
    ms = [stats.max_undetected(n, k, delta) for k in range(0, n + 1, 25)]
    assert all(a >= b for a, b in itertools.pairwise(ms))  # more checks, fewer undetected
    misses = [stats.miss_probability(n, 50, m) for m in range(0, 200)]
    assert all(a >= b for a, b in itertools.pairwise(misses))
    assert stats.max_undetected(n, 0, delta) == n
    assert stats.max_undetected(n, n, delta) == 0
    # m = 1: miss = (n - k)/n; the tie at k = 950 (miss = 0.05 exactly) counts as detected
    assert stats.miss_probability(n, 950, 1) == 0.05
    assert stats.spot_checks_needed(n, 0, delta) == 950
    assert stats.spot_checks_needed(n, n, delta) == 0
    assert stats.miss_probability(n, 600, 401) == 0.0
    with pytest.raises(ValueError, match="delta"):
        stats.max_undetected(n, 5, 0.0)
    with pytest.raises(ValueError, match="k must be"):
        stats.max_undetected(n, n + 1, 0.1)


def test_large_n_paths_agree() -> None:
    """log1p product (min(k, m) <= 1e6) vs log-gamma, and the exp(-k m / n) bound."""
    n = 10**10
    for k, m in [(10**5, 3 * 10**5), (2 * 10**6, 2 * 10**6), (10**4, 10**7)]:
        p = stats.miss_probability(n, k, m)
        log_gamma = (
            math.lgamma(n - m + 1)
            - math.lgamma(n - m - k + 1)
            - math.lgamma(n + 1)
            + math.lgamma(n - k + 1)
        )
        assert math.log(p) == pytest.approx(log_gamma, rel=1e-5)
        assert p <= math.exp(-k * m / n)
        assert p == pytest.approx(math.exp(-k * m / n), rel=0.05)
    # the exact integer path (min(k, m) <= 256) agrees with the log1p path
    for k, m in [(300, 256), (10**5, 200), (3, 10**6)]:
        exact = stats.miss_probability(10**7, k, m)
        assert math.log(exact) == pytest.approx(stats._log_miss(10**7, k, m), rel=1e-12)
    # binary searches at scale: m* = ln(1/delta) n / k approximately
    k = stats.spot_checks_needed(n, 10**6, 0.05)
    assert k == pytest.approx(math.log(20) * n / (10**6 + 1), rel=1e-3)
    assert (
        stats.miss_probability(n, k, 10**6 + 1)
        <= 0.05
        < stats.miss_probability(n, k - 1, 10**6 + 1)
    )
    m = stats.max_undetected(n, 10**5, 0.05)
    assert stats.miss_probability(n, 10**5, m) > 0.05 >= stats.miss_probability(n, 10**5, m + 1)


# --------------------------------------------------------------------------- slope


def test_log_log_slope() -> None:
    xs = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert stats.log_log_slope(xs, 3.0 * xs**-1.5) == pytest.approx(-1.5, rel=1e-13)
    assert stats.log_log_slope(xs, xs**2) == pytest.approx(2.0, rel=1e-13)
    rng = np.random.default_rng(0)
    ys = xs**0.5 * np.exp(rng.normal(scale=1e-3, size=xs.size))
    assert stats.log_log_slope(xs, ys) == pytest.approx(0.5, abs=5e-3)
    with pytest.raises(ValueError, match="positive"):
        stats.log_log_slope([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="equal"):
        stats.log_log_slope([2.0, 2.0], [1.0, 3.0])

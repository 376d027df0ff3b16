"""Residual estimation (docs/protocol.md sections 5, 6.4) checked by exact enumeration.

Exact expectations of every level mean come from the exact joint law of a t-correlated
pair (:func:`attribution.fourier.exact.correlated_kernel`): ``E[y_t] = f^T K_t f``. The
estimators are linear in the level means (``"interp"``), so plugging exact expectations in
gives their exact expectations.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest
from scipy.stats import binom

from attribution.data.synthetic import SyntheticConfig, SyntheticOracle
from attribution.fourier import estimation as est
from attribution.fourier import exact as fx

CASES = [(6, 0.3), (6, 0.5), (8, 0.3), (8, 0.5)]
RHOS = [0.1, 0.25, 0.4, 0.5]


# --------------------------------------------------------------------------- helpers


@cache
def _kernel(n: int, p: float, t: float) -> np.ndarray:
    return fx.correlated_kernel(n, p, t)


def _random_function(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=1 << n)


def _low_degree_function(n: int, p: float, seed: int, max_degree: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = rng.normal(size=1 << n) * (fx.popcounts(n) <= max_degree)
    return fx.inverse_fourier(spec, p)


def _pure_degree_function(n: int, p: float, seed: int, degree: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = rng.normal(size=1 << n) * (fx.popcounts(n) == degree)
    return fx.inverse_fourier(spec, p)


def _exact_level_means(values: np.ndarray, n: int, p: float, rho: float) -> dict[str, float]:
    """``E[y_t] = sum_{x, x'} Pr[x, x'] u(x) u(x')`` and ``E[u^2]`` under ``"single"``."""
    w = fx.bp_probabilities(fx.all_subsets(n), p)
    out = {key: float(values @ _kernel(n, p, t) @ values) for key, t in _levels(rho).items()}
    out[est.SINGLE] = float(np.dot(w, values**2))
    return out


def _levels(rho: float) -> dict[str, float]:
    return {"0": 0.0, "rho": rho, "2rho": 2.0 * rho}


def _linear_form(coefs: dict[str, float], means: dict[str, float]) -> float:
    return sum(c * means[key] for key, c in coefs.items())


def _weights(values: np.ndarray, p: float) -> np.ndarray:
    return fx.degree_weights(fx.fourier_spectrum(values, p))


def _r_of_t(weights: np.ndarray, t: float) -> float:
    """``R(t) = sum_{k>=3} B_k t^k``."""
    return float(sum(weights[k] * t**k for k in range(3, weights.size)))


# --------------------------------------------------------------------------- fit


@pytest.mark.parametrize("rho", RHOS)
def test_fit_coefficients_match_protocol(rho: float) -> None:
    paper = est.fit_coefficients(rho, "paper")
    assert paper == pytest.approx(
        {"single": 1.0, "0": 3 / (2 * rho) - 1, "rho": -2 / rho, "2rho": 1 / (2 * rho)}, rel=1e-15
    )
    assert sum(abs(c) for c in paper.values()) == pytest.approx(4 / rho, rel=1e-14)
    resid = est.fit_coefficients(rho, "residual")
    assert resid == pytest.approx(
        {"0": 1 - 3 / (2 * rho), "rho": 2 / rho, "2rho": -1 / (2 * rho)}, rel=1e-15
    )
    # the linear forms reproduce the interpolation formulas on arbitrary level means
    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.normal(size=4)
        means = {"single": y[0], "0": y[1], "rho": y[2], "2rho": y[3]}
        z0, z1, _ = est.degree2_interp(y[1], y[2], y[3], rho)
        assert _linear_form(paper, means) == pytest.approx(y[0] - z0 - z1, abs=1e-12)
        assert _linear_form(resid, means) == pytest.approx(z0 + z1, abs=1e-12)
    if rho == 0.5:
        fbar = est.fit_coefficients(rho, "b_ge2_fbar")
        assert fbar == pytest.approx({"0": 2.0, "rho": -4.0, "2rho": 2.0})
    else:
        with pytest.raises(ValueError, match="2 rho = 1"):
            est.fit_coefficients(rho, "b_ge2_fbar")


@pytest.mark.parametrize("rho", RHOS)
def test_interp_solves_the_system_and_nnls_agrees_when_inactive(rho: float) -> None:
    a = est.design_matrix(rho)
    rng = np.random.default_rng(11)
    checked_inactive = checked_active = 0
    for i in range(200):
        # half the draws come from a feasible polynomial (z >= 0), half are arbitrary
        y = a @ rng.exponential(size=3) if i % 2 else rng.normal(size=3)
        z = np.array(est.degree2_interp(y[0], y[1], y[2], rho))
        np.testing.assert_allclose(a @ z, y, atol=1e-12)
        *zn, active = est.degree2_nnls(y[0], y[1], y[2], rho)
        zn_arr = np.array(zn)
        assert np.all(zn_arr >= 0)
        assert active == bool(np.any(z < 0))
        if not active:
            checked_inactive += 1
            np.testing.assert_allclose(zn_arr, z, rtol=1e-9, atol=1e-9)
        else:
            checked_active += 1
            # KKT: gradient A^T (A z - y) is 0 on free and >= 0 on bound coordinates
            grad = a.T @ (a @ zn_arr - y)
            free = zn_arr > 0
            np.testing.assert_allclose(grad[free], 0.0, atol=1e-9)
            assert np.all(grad[~free] >= -1e-9)
            assert np.any(zn_arr == 0)
    assert checked_inactive > 10
    assert checked_active > 10


def test_estimate_nnls_matches_interp_when_inactive() -> None:
    rng = np.random.default_rng(5)
    rho = 0.25
    # level means with positive z (0.2 + 0.5 t + 0.3 t^2) plus small noise
    h = [0.2, 0.2 + 0.5 * rho + 0.3 * rho**2, 0.2 + 1.0 * rho + 1.2 * rho**2]
    sample = est.LevelSample(
        p0=h[0] + 0.01 * rng.normal(size=50),
        p_rho=h[1] + 0.01 * rng.normal(size=60),
        p_2rho=h[2] + 0.01 * rng.normal(size=70),
        s1=1.0 + 0.01 * rng.normal(size=40),
    )
    for target in ("paper", "residual"):
        e_i = est.estimate(sample, rho, target, fit="interp")
        e_n = est.estimate(sample, rho, target, fit="nnls")
        assert not e_i.nnls_active
        assert not e_n.nnls_active
        assert e_n.value == pytest.approx(e_i.value, abs=1e-9)
        assert (e_n.z0, e_n.z1, e_n.z2) == pytest.approx((e_i.z0, e_i.z1, e_i.z2), abs=1e-9)
        assert e_i.value == pytest.approx(_linear_form(e_i.coefficients, e_i.level_means))
        assert e_i.counts == {
            k: v
            for k, v in {"single": 40, "0": 50, "rho": 60, "2rho": 70}.items()
            if k in e_i.coefficients
        }


# --------------------------------------------------------------------------- bias


def test_bias_coefficient_values() -> None:
    for rho in (0.01, 0.1, 0.2, 0.3, 1 / 3):
        assert est.bias_coefficient(rho) == pytest.approx(2 * rho**2, rel=1e-14)
    assert est.bias_coefficient(0.5) == 1.0
    for rho in np.linspace(0.01, 0.5, 50):
        brute = max((2 * rho) ** (k - 1) - 2 * rho ** (k - 1) for k in range(3, 3000))
        kappa = est.bias_coefficient(float(rho))
        assert kappa == pytest.approx(brute, rel=1e-12, abs=1e-15)
        assert 2 * rho**2 * (1 - 1e-12) <= kappa <= 4 * rho**2 * (1 + 1e-12)
        # the definition as written: sup ((2 rho)^k - 4 rho^k) / (2 rho)
        direct = max(((2 * rho) ** k - 4 * rho**k) / (2 * rho) for k in range(3, 3000))
        assert kappa == pytest.approx(direct, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="rho"):
        est.bias_coefficient(0.6)
    with pytest.raises(ValueError, match="rho"):
        est.bias_coefficient(0.0)


@pytest.mark.parametrize(("n", "p"), CASES)
def test_level_means_equal_noise_stability_polynomial(n: int, p: float) -> None:
    values = _random_function(n, 100 + n)
    b = _weights(values, p)
    for rho in (0.25, 0.5):
        means = _exact_level_means(values, n, p, rho)
        for key, t in _levels(rho).items():
            poly = float(sum(t**k * b[k] for k in range(n + 1)))
            assert means[key] == pytest.approx(poly, rel=1e-11, abs=1e-12)
        assert means[est.SINGLE] == pytest.approx(b.sum(), rel=1e-12)


@pytest.mark.parametrize(("n", "p"), CASES)
@pytest.mark.parametrize("rho", RHOS)
def test_interp_bias_identities_paper_target(n: int, p: float, rho: float) -> None:
    kappa = est.bias_coefficient(rho)
    for seed, values in enumerate(
        [_random_function(n, 7 * n + 1), _pure_degree_function(n, p, n, 3) + 0.3]
    ):
        b = _weights(values, p)
        b_ge2, b_ge3 = float(b[2:].sum()), float(b[3:].sum())
        means = _exact_level_means(values, n, p, rho)
        z0, z1, z2 = est.degree2_interp(means["0"], means["rho"], means["2rho"], rho)
        assert z0 == pytest.approx(b[0], rel=1e-11, abs=1e-12), seed
        r1, r2 = _r_of_t(b, rho), _r_of_t(b, 2 * rho)
        assert z1 - b[1] == pytest.approx((4 * r1 - r2) / (2 * rho), rel=1e-9, abs=1e-11)
        assert z2 - b[2] == pytest.approx((r2 - 2 * r1) / (2 * rho**2), rel=1e-9, abs=1e-11)
        e_b_ge2 = _linear_form(est.fit_coefficients(rho, "paper"), means)
        bias = e_b_ge2 - b_ge2
        assert bias == pytest.approx((r2 - 4 * r1) / (2 * rho), rel=1e-9, abs=1e-11)
        assert -1e-11 <= bias <= kappa * b_ge3 + 1e-11  # over-estimates B_>=2
        if rho == 0.5:
            fbar = _linear_form(est.fit_coefficients(rho, "b_ge2_fbar"), means)
            assert fbar == pytest.approx(e_b_ge2, rel=1e-10)  # deterministic f: E[y_1] = E f^2


@pytest.mark.parametrize(("n", "p"), [(6, 0.3), (8, 0.5)])
@pytest.mark.parametrize("rho", [0.1, 0.25])
def test_bias_bound_is_attained_by_pure_degree_three(n: int, p: float, rho: float) -> None:
    values = _pure_degree_function(n, p, 3 * n, 3)
    b = _weights(values, p)
    means = _exact_level_means(values, n, p, rho)
    bias = _linear_form(est.fit_coefficients(rho, "paper"), means) - float(b[2:].sum())
    assert bias == pytest.approx(est.bias_coefficient(rho) * b[3], rel=1e-9)
    # B1 = 0 here, so the interpolated z1 is negative and NNLS binds
    *_, active = est.degree2_nnls(means["0"], means["rho"], means["2rho"], rho)
    assert active


@pytest.mark.parametrize(("n", "p"), CASES)
@pytest.mark.parametrize("rho", RHOS)
def test_residual_target_underestimates_err(n: int, p: float, rho: float) -> None:
    kappa = est.bias_coefficient(rho)
    rng = np.random.default_rng(1000 + n)
    x = np.where(fx.all_subsets(n), 1.0, -1.0)
    coefs = est.fit_coefficients(rho, "residual")
    for f in (_random_function(n, 13 * n), _low_degree_function(n, p, 17 * n, 2)):
        theta0, theta = fx.optimal_affine(f, p)
        b_ge3 = float(_weights(f, p)[3:].sum())
        for scale in (0.0, 0.3, 1.0):
            a0 = theta0 + scale * float(rng.normal())
            a = theta + scale * rng.normal(size=n)
            r = f - (a0 + x @ a)
            err = fx.err_closed_form(f, p, a0, a)
            b_r = _weights(r, p)
            assert b_r[0] + b_r[1] == pytest.approx(err, rel=1e-10, abs=1e-12)
            assert float(b_r[3:].sum()) == pytest.approx(b_ge3, rel=1e-10, abs=1e-12)
            e_err = _linear_form(coefs, _exact_level_means(r, n, p, rho))
            gap = err - e_err
            assert -1e-10 <= gap <= kappa * b_ge3 + 1e-10
            if b_ge3 < 1e-20:  # degree <= 2: exact
                assert e_err == pytest.approx(err, rel=1e-9, abs=1e-11)


# --------------------------------------------------------------------------- variance


def _sample_pairs(
    rng: np.random.Generator, n: int, p: float, t: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the ``all_subsets`` table) of ``x ~ B_p`` and a t-correlated ``x'``."""
    x = rng.random((*shape, n)) < p
    keep = rng.random((*shape, n)) < t
    fresh = rng.random((*shape, n)) < p
    xp = np.where(keep, x, fresh)
    bits = 1 << np.arange(n, dtype=np.int64)
    return x.astype(np.int64) @ bits, xp.astype(np.int64) @ bits


def _small_oracle_table() -> tuple[np.ndarray, float, SyntheticOracle]:
    cfg = SyntheticConfig(
        n=8,
        p=0.3,
        heavy=8,
        heavy_share=1.0,
        linear_mass=0.4,
        pair_mass=0.1,
        triple_mass=0.05,
        n_pairs=4,
        n_triples=3,
        intercept=0.2,
        seed=3,
    )
    oracle = SyntheticOracle(cfg)
    masks = fx.all_subsets(8)
    table = oracle.evaluate(masks, [bytes(32)] * masks.shape[0])[:, 0]
    return table, oracle.p, oracle


_CLT_SEED = 2024


def test_clt_interval_coverage_and_variance() -> None:
    """95 % CLT intervals cover the exact expectation of the estimator.

    ``R = 1000`` repetitions. If the true coverage is ``c`` in ``[0.93, 0.96]`` the
    empirical coverage is ``Binomial(1000, c)/1000``; ``Pr[< 0.9] < 2e-4`` and
    ``Pr[> 0.99] < 1e-8`` there (asserted below), so the fixed-seed check is not fragile.
    The mean reported variance must match the empirical variance of the estimates (ratio
    within ``±0.2``; the sample variance of 1000 draws has relative sd
    ``~ sqrt(2/999) = 0.045`` for light tails).
    """
    reps, n_pairs = 1000, 150
    assert binom.cdf(899, reps, 0.93) < 2e-4  # Pr[covered <= 899] = Pr[coverage < 0.9]
    assert binom.sf(990, reps, 0.96) < 1e-8  # Pr[covered >= 991] = Pr[coverage > 0.99]
    z = 1.959963984540054  # Phi^{-1}(0.975)
    rng = np.random.default_rng(_CLT_SEED)

    table, p, oracle = _small_oracle_table()
    n = 8
    rho = 0.25
    spectrum = oracle.exact()
    for t in (0.0, rho, 2 * rho):
        assert oracle.noise_stability(t) == pytest.approx(
            fx.noise_stability(table, p, t), rel=1e-9, abs=1e-12
        )
    assert spectrum.E_f2 == pytest.approx(
        float(np.dot(fx.bp_probabilities(fx.all_subsets(n), p), table**2)), rel=1e-10
    )

    targets: dict[str, tuple[np.ndarray, float]] = {}
    exact_paper = spectrum.E_f2 + sum(
        c * oracle.noise_stability(t)
        for c, t in zip(
            [est.fit_coefficients(rho, "paper")[k] for k in est.LEVELS],
            [0.0, rho, 2 * rho],
            strict=True,
        )
    )
    targets["paper"] = (table, exact_paper)
    theta0, theta = fx.optimal_affine(table, p)
    x = np.where(fx.all_subsets(n), 1.0, -1.0)
    a0, a = theta0 + 0.05, 0.7 * theta
    resid = table - (a0 + x @ a)
    exact_resid = _linear_form(
        est.fit_coefficients(rho, "residual"), _exact_level_means(resid, n, p, rho)
    )
    targets["residual"] = (resid, exact_resid)

    for target, (u, truth) in targets.items():
        products = {}
        for key, t in _levels(rho).items():
            i, j = _sample_pairs(rng, n, p, t, (reps, n_pairs))
            products[key] = u[i] * u[j]
        singles = u[_sample_pairs(rng, n, p, 0.0, (reps, n_pairs))[0]] ** 2
        values, variances, covered = [], [], 0
        for rep in range(reps):
            sample = est.LevelSample(
                p0=products["0"][rep],
                p_rho=products["rho"][rep],
                p_2rho=products["2rho"][rep],
                s1=singles[rep] if target == "paper" else None,
            )
            e = est.estimate(sample, rho, target)
            assert e.std_error == pytest.approx(math.sqrt(e.variance))
            values.append(e.value)
            variances.append(e.variance)
            covered += abs(e.value - truth) <= z * e.std_error
        coverage = covered / reps
        assert 0.9 <= coverage <= 0.99, (target, coverage)
        ratio = float(np.var(values, ddof=1) / np.mean(variances))
        assert 0.8 <= ratio <= 1.2, (target, ratio)


def test_variance_formula_on_fixed_sample() -> None:
    rng = np.random.default_rng(9)
    rho = 0.2
    arrays = {key: rng.normal(size=size) for key, size in zip(est.LEVELS, (5, 7, 9), strict=True)}
    s1 = rng.normal(size=6) ** 2
    sample = est.LevelSample(p0=arrays["0"], p_rho=arrays["rho"], p_2rho=arrays["2rho"], s1=s1)
    e = est.estimate(sample, rho, "paper")
    coefs = est.fit_coefficients(rho, "paper")
    expected = coefs["single"] ** 2 * np.var(s1, ddof=1) / 6 + sum(
        coefs[k] ** 2 * np.var(arrays[k], ddof=1) / arrays[k].size for k in est.LEVELS
    )
    assert e.variance == pytest.approx(expected, rel=1e-13)
    assert e.level_means["rho"] == pytest.approx(arrays["rho"].mean())
    with pytest.raises(ValueError, match="singleton"):
        est.estimate(
            est.LevelSample(p0=arrays["0"], p_rho=arrays["rho"], p_2rho=arrays["2rho"]),
            rho,
            "paper",
        )
    with pytest.raises(ValueError, match="at least 2"):
        est.estimate(
            est.LevelSample(p0=np.ones(1), p_rho=np.ones(2), p_2rho=np.ones(2)), rho, "residual"
        )
    with pytest.raises(ValueError, match="fit"):
        est.estimate(sample, rho, "paper", fit="lasso")
    with pytest.raises(ValueError, match="target"):
        est.estimate(sample, rho, "median")
    assert not sample.p0.flags.writeable


# --------------------------------------------------------------------------- corruption


def _layout(n_per_level: tuple[int, int, int], n_single: int) -> list[tuple[str, int, int]]:
    """Flat value layout matching :func:`corruption_charges`: (level, member, index)."""
    out: list[tuple[str, int, int]] = []
    for key, n_t in zip(est.LEVELS, n_per_level, strict=True):
        for member in (0, 1):
            out.extend((key, member, i) for i in range(n_t))
    out.extend((est.SINGLE, 0, i) for i in range(n_single))
    return out


class _Instance:
    """A small instance: flat honest values, known g, and the linear-form estimate."""

    def __init__(self, rng: np.random.Generator, target: str, rho: float, b: float) -> None:
        self.target, self.rho, self.b = target, rho, b
        n_t = rng.integers(1, 4, size=3)
        self.n_t = (int(n_t[0]), int(n_t[1]), int(n_t[2]))
        self.n1 = int(rng.integers(1, 4)) if target == "paper" else 0
        self.layout = _layout(self.n_t, self.n1)
        size = len(self.layout)
        honest = rng.uniform(-b, b, size=size)
        extreme = rng.random(size) < 0.3
        honest[extreme] = b * rng.choice([-1.0, 1.0], size=int(extreme.sum()))
        self.honest = honest
        self.g = np.zeros(size) if target == "paper" else rng.normal(scale=0.7 * b, size=size)
        self.coefs = est.fit_coefficients(rho, target)
        # index arrays for vectorised evaluation
        self.pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        pos = 0
        for key, count in zip(est.LEVELS, self.n_t, strict=True):
            first = np.arange(pos, pos + count)
            self.pairs.append((key, first, first + count))
            pos += 2 * count
        self.singles = np.arange(pos, pos + self.n1)

    def value(self, vals: np.ndarray) -> np.ndarray:
        """Linear-form estimate for a batch ``vals`` (B, size)."""
        r = vals - self.g
        total = np.zeros(vals.shape[0])
        for key, i, j in self.pairs:
            total += self.coefs[key] * np.mean(r[:, i] * r[:, j], axis=1)
        if self.n1:
            total += self.coefs[est.SINGLE] * np.mean(vals[:, self.singles] ** 2, axis=1)
        return total

    def charges(self, vals: np.ndarray) -> np.ndarray:
        levels = {key: (vals[i], vals[j]) for key, i, j in self.pairs}
        g = (
            None
            if self.target == "paper"
            else {key: (self.g[i], self.g[j]) for key, i, j in self.pairs}
        )
        singles = vals[self.singles] if self.n1 else None
        return est.corruption_charges(levels, g, singles, self.rho, self.target, self.b)


def _check_batch(inst: _Instance, observed: np.ndarray, m: int) -> float:
    """Assert the bound for every row of ``observed``; return the largest shift / bound."""
    shifts = np.abs(inst.value(observed) - inst.value(inst.honest[None, :]))
    worst = 0.0
    for row, shift in zip(observed, shifts, strict=True):
        bound = est.corruption_shift_bound(inst.charges(row), m)
        assert shift <= bound * (1 + 1e-12) + 1e-12, (shift, bound)
        if bound > 0:
            worst = max(worst, float(shift / bound))
    return worst


CORRUPTION_CASES = [
    ("paper", 0.25, 1),
    ("residual", 0.1, 2),
    ("residual", 0.5, 3),
    ("b_ge2_fbar", 0.5, 4),
]


@pytest.mark.parametrize(("target", "rho", "seed"), CORRUPTION_CASES)
def test_corruption_bound_exhaustive_small_adversaries(target: str, rho: float, seed: int) -> None:
    """Every corrupted set of size 1 or 2, with values on a grid of [-b, b].

    Also shows the charges are not vacuous: some single corruption moves the estimate by
    at least 90 % of the corrupted value's own charge.
    """
    rng = np.random.default_rng(seed)
    b = 1.5
    grid = b * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    tightest = 0.0
    for _ in range(3):
        inst = _Instance(rng, target, rho, b)
        size = inst.honest.size
        base = float(inst.value(inst.honest[None, :])[0])
        for m in (1, 2):
            rows = []
            for subset in itertools.combinations(range(size), m):
                for vals in itertools.product(grid, repeat=m):
                    row = inst.honest.copy()
                    row[list(subset)] = vals
                    rows.append(row)
                    if m == 1:
                        own = inst.charges(row)[subset[0]]
                        shift = abs(float(inst.value(row[None, :])[0]) - base)
                        assert shift <= own * (1 + 1e-12) + 1e-12
                        if own > 0:
                            tightest = max(tightest, shift / own)
            _check_batch(inst, np.array(rows), m)
    assert tightest > 0.9


@pytest.mark.parametrize(("target", "rho", "seed"), CORRUPTION_CASES)
def test_corruption_bound_random_and_greedy_adversaries(target: str, rho: float, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    b = 1.0
    for _ in range(8):
        inst = _Instance(rng, target, rho, b)
        size = inst.honest.size
        # random adversaries: random sets, random values (uniform or in {-b, 0, b})
        for m in sorted({min(m, size) for m in (1, 2, 3, 5, size)}):
            rows = []
            for _ in range(20):
                subset = rng.choice(size, size=m, replace=False)
                row = inst.honest.copy()
                if rng.random() < 0.5:
                    row[subset] = rng.uniform(-b, b, size=m)
                else:
                    row[subset] = b * rng.choice([-1.0, 0.0, 1.0], size=m)
                rows.append(row)
            _check_batch(inst, np.array(rows), m)
        # greedy adversaries: corrupt the m largest-charge values, moving them jointly to
        # the vertex of {-b, 0, b}^m that pushes the estimate furthest up (or down); both
        # members of a pair may be chosen. Two rounds: the second re-selects the largest
        # charges of the corrupted data.
        for m in (1, 2, 3):
            m = min(m, size)
            for direction in (1.0, -1.0):
                row = inst.honest.copy()
                for _ in range(2):
                    chosen = np.argsort(inst.charges(row))[::-1][:m]
                    rows = []
                    for vals in itertools.product((-b, 0.0, b), repeat=m):
                        trial = inst.honest.copy()
                        trial[chosen] = vals
                        rows.append(trial)
                    batch = np.array(rows)
                    _check_batch(inst, batch, m)
                    row = batch[int(np.argmax(direction * inst.value(batch)))]


def test_corruption_charges_layout_and_values() -> None:
    rho, b = 0.25, 2.0
    f = {
        "0": (np.array([1.0]), np.array([-2.0])),
        "rho": (np.array([0.5, 0.0]), np.array([2.0, -1.0])),
        "2rho": (np.array([0.0]), np.array([0.0])),
    }
    g = {
        "0": (np.array([0.5]), np.array([0.0])),
        "rho": (np.array([0.0, 1.0]), np.array([0.0, 0.0])),
        "2rho": (np.array([-1.0]), np.array([0.0])),
    }
    charges = est.corruption_charges(f, g, None, rho, "residual", b)
    c = est.fit_coefficients(rho, "residual")
    # level "0": r = (0.5, -2.0); g = (0.5, 0)
    double0 = 0.5 * ((2.5 * 2.0) + 1.0)
    expected = [abs(c["0"]) * max(2 * b * 2.0, double0), abs(c["0"]) * max(2 * b * 0.5, double0)]
    # level "rho", pair 0: r = (0.5, 2.0), g = (0, 0); pair 1: r = (-1.0, -1.0), g = (1, 0)
    d_a = 0.5 * (4.0 + 1.0)
    d_b = 0.5 * (3.0 * 2.0 + 1.0)
    s = abs(c["rho"]) / 2
    expected += [
        s * max(4 * 2.0, d_a),
        s * max(4 * 1.0, d_b),
        s * max(4 * 0.5, d_a),
        s * max(4 * 1.0, d_b),
    ]
    # level "2rho": r = (1.0, 0.0), g = (-1, 0)
    d = 0.5 * (3.0 * 2.0 + 0.0)
    expected += [abs(c["2rho"]) * max(0.0, d), abs(c["2rho"]) * max(4 * 1.0, d)]
    np.testing.assert_allclose(charges, expected, rtol=1e-14)

    paper = est.corruption_charges(f, None, np.array([0.5, -1.0, 2.0]), rho, "paper", b)
    assert paper.size == 8 + 3
    np.testing.assert_allclose(paper[-3:], b * b / 3)
    assert est.corruption_shift_bound(paper, 0) == 0.0
    assert est.corruption_shift_bound(paper, 2) == pytest.approx(np.sort(paper)[-2:].sum())
    assert est.corruption_shift_bound(paper, 100) == pytest.approx(paper.sum())
    m_star = est.max_tolerated_corruptions(paper, est.corruption_shift_bound(paper, 3))
    assert m_star >= 3
    assert est.corruption_shift_bound(paper, m_star) <= est.corruption_shift_bound(paper, 3) + 1e-12
    assert est.max_tolerated_corruptions(paper, 0.0) == int(np.sum(paper == 0))

    with pytest.raises(ValueError, match=r"\[-b, b\]"):
        est.corruption_charges(f, g, None, rho, "residual", 1.0)
    with pytest.raises(ValueError, match="g must be None"):
        est.corruption_charges(f, g, np.zeros(2), rho, "paper", b)
    with pytest.raises(ValueError, match="singleton"):
        est.corruption_charges(f, None, None, rho, "paper", b)
    with pytest.raises(ValueError, match="no singletons"):
        est.corruption_charges(f, g, np.zeros(2), rho, "residual", b)
    with pytest.raises(ValueError, match="missing level"):
        est.corruption_charges({"0": f["0"]}, None, None, rho, "residual", b)
    with pytest.raises(ValueError, match="non-negative"):
        est.corruption_shift_bound(np.array([-1.0]), 1)

"""The synthetic oracle's exact spectrum against brute-force enumeration."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from attribution.data.synthetic import (
    NOISE_STABILITY_MAX_LIGHT,
    SyntheticConfig,
    SyntheticOracle,
    light_pair_moment,
    light_single_moment,
)
from attribution.errors import UsageError
from attribution.fourier import exact as fx
from attribution.subsets import bernoulli_mask, int_seed, training_seed

PLUS = b"\x01" + bytes(31)  # s(r) = +1
MINUS = b"\x00" + bytes(31)  # s(r) = -1

SMALL = {
    "noisy-no-clip": SyntheticConfig(
        n=12, heavy=4, p=0.3, bound=20.0, n_pairs=3, n_triples=2, noise=0.2, seed=3
    ),
    "clip-active": SyntheticConfig(
        n=12,
        heavy=4,
        p=0.3,
        bound=0.6,
        linear_mass=0.6,
        pair_mass=0.1,
        triple_mass=0.05,
        n_pairs=4,
        n_triples=2,
        noise=0.2,
        seed=1,
    ),
    "clip-p05": SyntheticConfig(
        n=12, heavy=4, p=0.5, bound=0.5, pair_mass=0.1, n_pairs=6, n_triples=4, noise=0.15
    ),
    "all-heavy": SyntheticConfig(
        n=12, heavy=12, heavy_share=1.0, p=0.3, bound=0.7, n_pairs=10, n_triples=6, noise=0.1
    ),
    "all-light": SyntheticConfig(
        n=12,
        heavy=0,
        heavy_share=0.0,
        linear_mass=1.5,
        pair_mass=0.0,
        triple_mass=0.0,
        n_pairs=0,
        n_triples=0,
        p=0.3,
        bound=0.5,
        noise=0.2,
    ),
    "one-light": SyntheticConfig(n=12, heavy=11, p=0.5, bound=0.6, noise=0.1),
}


def _pre_clip(oracle: SyntheticOracle, masks: np.ndarray) -> np.ndarray:
    """a(x) straight from the coefficient arrays, one phi per coordinate."""
    arrays = oracle.content_arrays()
    p = oracle.p
    mu, sigma = 2 * p - 1, math.sqrt(4 * p * (1 - p))
    phi = (np.where(masks, 1.0, -1.0) - mu) / sigma
    h = oracle.n_heavy
    a = arrays["intercept"][0] + phi[:, :h] @ arrays["heavy_linear"]
    a = a + arrays["light_linear"][0] * phi[:, h:].sum(axis=1)
    for (i, j), c in zip(arrays["pairs"], arrays["pair_coefs"], strict=True):
        a = a + c * phi[:, i] * phi[:, j]
    for (i, j, k), c in zip(arrays["triples"], arrays["triple_coefs"], strict=True):
        a = a + c * phi[:, i] * phi[:, j] * phi[:, k]
    return np.asarray(a)


class BruteForce:
    """Every quantity by enumerating all 2^N masks and both seed signs."""

    def __init__(self, oracle: SyntheticOracle) -> None:
        n = oracle.n_points
        self.masks = fx.all_subsets(n)
        rows = len(self.masks)
        self.f_plus = oracle.evaluate(self.masks, [PLUS] * rows)[:, 0]
        self.f_minus = oracle.evaluate(self.masks, [MINUS] * rows)[:, 0]
        self.fbar = 0.5 * (self.f_plus + self.f_minus)
        self.pre = _pre_clip(oracle, self.masks)
        self.w = fx.bp_probabilities(self.masks, oracle.p)
        self.p = oracle.p
        self.spec = fx.fourier_spectrum(self.fbar, oracle.p)
        self.b = fx.degree_weights(self.spec)
        self.e_f2 = float(self.w @ (0.5 * (self.f_plus**2 + self.f_minus**2)))
        self.e_fbar2 = float(self.w @ self.fbar**2)
        eta, bound = oracle.noise, oracle.bound
        clipped = 0.5 * ((np.abs(self.pre + eta) > bound) * 1.0 + (np.abs(self.pre - eta) > bound))
        self.clip_probability = float(self.w @ clipped)

    def mse_fresh(self, a0: float, a: np.ndarray) -> float:
        g = a0 + np.where(self.masks, 1.0, -1.0) @ a
        sq = 0.5 * ((self.f_plus - g) ** 2 + (self.f_minus - g) ** 2)
        return float(self.w @ sq)


@pytest.fixture(scope="module", params=sorted(SMALL))
def case(request: pytest.FixtureRequest) -> tuple[str, SyntheticOracle, BruteForce]:
    oracle = SyntheticOracle(SMALL[request.param])
    return request.param, oracle, BruteForce(oracle)


TOL = 1e-10


def test_evaluate_matches_formula(case: tuple[str, SyntheticOracle, BruteForce]) -> None:
    _, oracle, bf = case
    eta, b = oracle.noise, oracle.bound
    np.testing.assert_allclose(bf.f_plus, np.clip(bf.pre + eta, -b, b), atol=1e-12)
    np.testing.assert_allclose(bf.f_minus, np.clip(bf.pre - eta, -b, b), atol=1e-12)


def test_exact_fields_match_enumeration(case: tuple[str, SyntheticOracle, BruteForce]) -> None:
    name, oracle, bf = case
    e = oracle.exact()
    n = oracle.n_points
    singles = 1 << np.arange(n)
    assert e.f0 == pytest.approx(bf.spec[0], abs=TOL)
    np.testing.assert_allclose(e.f1, bf.spec[singles], atol=TOL)
    theta0, theta = fx.optimal_affine(bf.fbar, bf.p)
    assert e.theta0 == pytest.approx(theta0, abs=TOL)
    np.testing.assert_allclose(e.theta, theta, atol=TOL)
    expected = {
        "B0": bf.b[0],
        "B1": bf.b[1],
        "B2": bf.b[2],
        "B_ge3": bf.b[3:].sum(),
        "E_f2": bf.e_f2,
        "E_fbar2": bf.e_fbar2,
        "seed_variance": bf.e_f2 - bf.e_fbar2,
        "B_ge2": bf.e_f2 - bf.b[0] - bf.b[1],
        "clip_probability": bf.clip_probability,
    }
    for field, want in expected.items():
        assert getattr(e, field) == pytest.approx(want, abs=TOL), field
    # B_ge2 is the least affine MSE against fresh-seed evaluations (docs/protocol.md section 5.1)
    assert bf.mse_fresh(e.theta0, e.theta) == pytest.approx(e.B_ge2, abs=TOL)
    assert e.B_ge2 == pytest.approx(e.B2 + e.B_ge3 + e.seed_variance, abs=TOL)
    if name == "noisy-no-clip":
        assert e.clip_probability == 0.0
    else:
        assert e.clip_probability > 0.05
        assert e.seed_variance > 0.0


def test_noise_stability_matches_enumeration(
    case: tuple[str, SyntheticOracle, BruteForce],
) -> None:
    _, oracle, bf = case
    e = oracle.exact()
    for rho in (0.0, 0.2, 0.4):
        h = e.noise_stability(rho)
        assert h == pytest.approx(fx.noise_stability(bf.fbar, bf.p, rho), abs=TOL)
        assert h == pytest.approx(sum(rho**k * bf.b[k] for k in range(len(bf.b))), abs=TOL)
    assert e.noise_stability(0.0) == pytest.approx(e.B0, abs=TOL)
    assert e.noise_stability(1.0) == e.E_f2  # same training run (docs/protocol.md section 5.1)
    assert oracle.noise_stability(0.4) == e.noise_stability(0.4)


def test_err_matches_mse_gap(case: tuple[str, SyntheticOracle, BruteForce]) -> None:
    _, oracle, bf = case
    e = oracle.exact()
    best = bf.mse_fresh(e.theta0, e.theta)
    assert oracle.err(e.theta0, e.theta) == pytest.approx(0.0, abs=1e-14)
    for c in (0.5, 0.8, 1.3):
        a = c * e.theta
        a0 = e.f0 - oracle.mu * a.sum()  # intercept re-fitted
        err = oracle.err(a0, a)
        assert err == pytest.approx((1 - c) ** 2 * e.B1, abs=TOL)
        assert err == pytest.approx(bf.mse_fresh(a0, a) - best, abs=TOL)
        err_shift = oracle.err(a0 + 0.1, a)
        assert err_shift == pytest.approx(bf.mse_fresh(a0 + 0.1, a) - best, abs=TOL)
        assert err_shift == pytest.approx(fx.err_closed_form(bf.fbar, bf.p, a0 + 0.1, a), abs=TOL)


def test_light_moments_match_enumeration() -> None:
    m, p = 8, 0.3
    masks = fx.all_subsets(m)
    lo, hi = fx.basis_values(p)
    phi = np.where(masks, hi, lo)
    counts = masks.sum(axis=1)
    for k in range(m + 1):
        rows = phi[counts == k]
        assert light_single_moment(k, m, p) == pytest.approx(rows[:, 3].mean(), abs=1e-13)
        assert light_pair_moment(k, m, p) == pytest.approx(
            (rows[:, 2] * rows[:, 5]).mean(), abs=1e-13
        )
    # polynomial form in Z used inside exact()
    for size in (2, 9, 1000):
        ks = np.arange(size + 1)
        z = (ks * hi + (size - ks) * lo) / math.sqrt(size)
        mu, sigma = 2 * p - 1, math.sqrt(4 * p * (1 - p))
        poly = (z**2 - 1 + 2 * mu * z / (sigma * math.sqrt(size))) / (size - 1)
        np.testing.assert_allclose(light_pair_moment(ks, size, p), poly, atol=1e-12)


def test_large_light_set_against_direct_grid() -> None:
    """m = 600 light points with the clip active: exact() vs a direct (q, K, s) grid."""
    cfg = SyntheticConfig(n=604, heavy=4, p=0.3, bound=0.55, n_pairs=3, n_triples=2, noise=0.2)
    oracle = SyntheticOracle(cfg)
    e = oracle.exact()
    h, m, p = 4, 600, oracle.p
    arrays = oracle.content_arrays()
    qmasks = fx.all_subsets(h)
    k = np.arange(m + 1)
    pmf = binom.pmf(k, m, p)
    # one representative mask per (q, K): the first K light points included
    light = k[:, None] > np.arange(m)[None, :]
    masks = np.concatenate([np.repeat(qmasks, m + 1, axis=0), np.tile(light, (1 << h, 1))], axis=1)
    f = {
        s: oracle.evaluate(masks, [seed] * len(masks))[:, 0].reshape(1 << h, m + 1)
        for s, seed in ((1, PLUS), (-1, MINUS))
    }
    fbar = 0.5 * (f[1] + f[-1])
    wq = fx.bp_probabilities(qmasks, p)
    weight = wq[:, None] * pmf[None, :]
    single = light_single_moment(k, m, p)
    pair = light_pair_moment(k, m, p)
    spec_q = fx.fourier_spectrum(fbar @ pmf, p)  # heavy-only coefficients
    spec_q1 = fx.fourier_spectrum(fbar @ (pmf * single), p)  # coefficient on {i} u {j}, j in R
    f1_light = float(np.sum(weight * fbar * single[None, :]))
    assert e.f0 == pytest.approx(float(np.sum(weight * fbar)), abs=1e-12)
    np.testing.assert_allclose(e.f1[:h], spec_q[1 << np.arange(h)], atol=1e-12)
    np.testing.assert_allclose(e.f1[h:], f1_light, atol=1e-12)
    sizes = fx.popcounts(h)
    b2 = (
        np.sum(spec_q[sizes == 2] ** 2)
        + m * np.sum(spec_q1[sizes == 1] ** 2)
        + math.comb(m, 2) * float(np.sum(weight * fbar * pair[None, :])) ** 2
    )
    assert pytest.approx(b2, abs=1e-12) == e.B2
    assert e.E_f2 == pytest.approx(float(np.sum(weight * 0.5 * (f[1] ** 2 + f[-1] ** 2))), 1e-12)
    assert e.E_fbar2 == pytest.approx(float(np.sum(weight * fbar**2)), abs=1e-12)
    # probability of an active clip from the pre-clip values a(x) +- eta
    pre = _pre_clip(oracle, masks).reshape(1 << h, m + 1)
    b, eta = oracle.bound, oracle.noise
    clipped = 0.5 * ((np.abs(pre + eta) > b) * 1.0 + (np.abs(pre - eta) > b))
    assert e.clip_probability == pytest.approx(float(np.sum(weight * clipped)), abs=1e-12)
    assert e.clip_probability > 0.05
    assert arrays["shape"].tolist() == [604, 4, oracle.p32]


def test_unclipped_ground_truth_matches_protocol() -> None:
    """With the clip inactive the spectrum is the coefficients."""
    cfg = SyntheticConfig(n=1000, heavy=8, p=0.3, bound=30.0, noise=0.25, seed=11)
    oracle = SyntheticOracle(cfg)
    e = oracle.exact()
    c = oracle.coefficients
    assert e.clip_probability < 1e-12
    assert e.f0 == pytest.approx(cfg.intercept, abs=1e-12)
    np.testing.assert_allclose(e.f1[:8], c.heavy_linear, atol=1e-12)
    np.testing.assert_allclose(e.f1[8:], c.light_linear, atol=1e-12)
    assert pytest.approx(cfg.linear_mass, abs=1e-12) == e.B1
    assert pytest.approx(cfg.pair_mass, abs=1e-12) == e.B2
    assert e.B_ge3 == pytest.approx(cfg.triple_mass, abs=1e-12)
    assert e.seed_variance == pytest.approx(cfg.noise**2, abs=1e-12)
    assert e.B_ge2 == pytest.approx(cfg.pair_mass + cfg.triple_mass + cfg.noise**2, abs=1e-12)
    np.testing.assert_allclose(e.theta, e.f1 / oracle.sigma, atol=0)
    assert e.theta0 == pytest.approx(cfg.intercept - oracle.mu * e.theta.sum(), abs=1e-12)
    rho = 0.3
    h = e.noise_stability(rho)
    expected = e.B0 + rho * e.B1 + rho**2 * cfg.pair_mass + rho**3 * cfg.triple_mass
    assert h == pytest.approx(expected, abs=1e-12)


def _random_batch(n: int, count: int, p32: int) -> tuple[np.ndarray, list[bytes]]:
    root = int_seed(99)
    masks = np.stack([bernoulli_mask(root, b"t", [i], n, p32) for i in range(count)])
    seeds = [training_seed(root, b"t", [i]) for i in range(count)]
    return masks, seeds


def test_rows_independent_of_batch() -> None:
    oracle = SyntheticOracle(SyntheticConfig(n=300, heavy=8, bound=0.6, noise=0.2, p=0.3))
    masks, seeds = _random_batch(300, 64, oracle.p32)
    full = oracle.evaluate(masks, seeds)
    assert full.shape == (64, 1)
    assert full.dtype == np.float64
    for i in range(64):
        assert np.array_equal(oracle.evaluate(masks[i : i + 1], seeds[i : i + 1]), full[i : i + 1])
    order = np.arange(64)[::-1]
    assert np.array_equal(oracle.evaluate(masks[order], [seeds[i] for i in order]), full[order])
    assert np.array_equal(oracle.evaluate(masks[:17], seeds[:17]), full[:17])
    assert np.abs(full).max() <= 0.6
    assert oracle.evaluate(masks[:0], []).shape == (0, 1)


def test_coefficients_deterministic_and_normalised() -> None:
    cfg = SyntheticConfig()
    a = SyntheticOracle(cfg).content_arrays()
    b = SyntheticOracle(SyntheticConfig()).content_arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype in (np.float64, np.int64)
        assert np.array_equal(a[key], b[key])
    other = SyntheticOracle(dataclasses.replace(cfg, seed=1)).content_arrays()
    assert not np.array_equal(a["heavy_linear"], other["heavy_linear"])
    c = SyntheticOracle(cfg).coefficients
    assert np.sum(c.heavy_linear**2) == pytest.approx(cfg.heavy_share * cfg.linear_mass)
    assert 992 * c.light_linear**2 == pytest.approx((1 - cfg.heavy_share) * cfg.linear_mass)
    assert np.sum(c.pair_coefs**2) == pytest.approx(cfg.pair_mass)
    assert np.sum(c.triple_coefs**2) == pytest.approx(cfg.triple_mass)
    mags = np.abs(c.heavy_linear)
    assert mags.max() / mags.min() <= 3.0
    for tuples, size, count in ((c.pairs, 2, cfg.n_pairs), (c.triples, 3, cfg.n_triples)):
        assert tuples.shape == (count, size)
        assert len({tuple(t) for t in tuples.tolist()}) == count
        assert np.all(np.diff(tuples, axis=1) > 0)
        assert tuples.min() >= 0
        assert tuples.max() < cfg.heavy
        assert tuples.tolist() == sorted(tuples.tolist())
    # pinned derivation (SHAKE-256; any change here changes every task digest)
    assert c.pairs.tolist() == PINNED_PAIRS
    assert c.triples.tolist() == PINNED_TRIPLES
    assert c.heavy_linear[0] == pytest.approx(PINNED_C0, abs=1e-15)


PINNED_PAIRS = [[0, 2], [0, 4], [0, 7], [1, 2], [1, 3], [1, 4], [3, 7], [4, 5]]
PINNED_TRIPLES = [[0, 1, 2], [0, 1, 5], [0, 2, 5], [1, 4, 6]]
PINNED_C0 = 0.1082673583355695


def test_monte_carlo_mean_at_100k() -> None:
    cfg = SyntheticConfig(n=100_000, heavy=12, n_pairs=20, n_triples=10, bound=0.8, noise=0.1)
    oracle = SyntheticOracle(cfg)
    e = oracle.exact()
    root = int_seed(7)
    values = []
    for start in range(0, 4000, 500):
        idx = range(start, start + 500)
        masks = np.stack([bernoulli_mask(root, b"mc", [i], cfg.n, oracle.p32) for i in idx])
        seeds = [training_seed(root, b"mc", [i]) for i in idx]
        values.append(oracle.evaluate(masks, seeds)[:, 0])
    f = np.concatenate(values)
    se = f.std(ddof=1) / math.sqrt(len(f))
    assert abs(f.mean() - e.f0) < 5 * se
    assert abs(np.mean(f**2) - e.E_f2) < 5 * np.std(f**2, ddof=1) / math.sqrt(len(f))


def test_exact_is_fast_and_cached_at_100k() -> None:
    cfg = SyntheticConfig(n=100_000, heavy=12, n_pairs=30, n_triples=20, bound=0.7, noise=0.1)
    start = time.perf_counter()
    oracle = SyntheticOracle(cfg)
    e = oracle.exact()
    assert time.perf_counter() - start < 2.0
    assert oracle.exact() is e
    assert e.f1.shape == (100_000,)
    assert 0.0 < e.clip_probability < 1.0
    assert e.B_ge3 > 0.0
    with pytest.raises(UsageError, match="noise stability"):
        e.noise_stability(0.2)


def test_noise_stability_limits() -> None:
    e = SyntheticOracle(SyntheticConfig(n=12, heavy=4, n_pairs=2, n_triples=1)).exact()
    for rho in (-0.1, 1.5, float("nan")):
        with pytest.raises(UsageError, match="rho"):
            e.noise_stability(rho)
    big = SyntheticConfig(n=NOISE_STABILITY_MAX_LIGHT + 9, heavy=8)
    with pytest.raises(UsageError, match="noise stability"):
        SyntheticOracle(big).exact().noise_stability(0.1)


BAD: list[dict[str, Any]] = [
    {"n": 0},
    {"n": 2.5},
    {"p": 0.0},
    {"p": 1.0},
    {"p": float("nan")},
    {"bound": 0.0},
    {"bound": -1.0},
    {"linear_mass": -0.1},
    {"pair_mass": -1.0},
    {"triple_mass": float("inf")},
    {"noise": -0.1},
    {"heavy": 13},
    {"heavy": -1},
    {"n": 5, "heavy": 6, "n_pairs": 0, "n_triples": 0, "pair_mass": 0, "triple_mass": 0},
    {"heavy_share": 1.5},
    {"n_pairs": 29},
    {"n_triples": 57},
    {"n_pairs": 0},
    {"n_triples": 0},
    {"heavy": 0, "n_pairs": 0, "n_triples": 0, "pair_mass": 0, "triple_mass": 0},
    {"n": 8, "heavy": 8, "heavy_share": 0.5},
    {"seed": -1},
    {"seed": 1 << 64},
    {"heavy": True},
    {"intercept": "0.1"},
]


@pytest.mark.parametrize("overrides", BAD)
def test_bad_config_raises(overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        SyntheticConfig(**overrides)


def test_bad_evaluate_arguments() -> None:
    oracle = SyntheticOracle(SyntheticConfig(n=20, heavy=4, n_pairs=2, n_triples=1))
    masks = np.zeros((3, 20), dtype=bool)
    with pytest.raises(ValueError, match="boolean"):
        oracle.evaluate(masks.astype(np.int8), [PLUS] * 3)
    with pytest.raises(ValueError, match="shape"):
        oracle.evaluate(np.zeros((3, 19), dtype=bool), [PLUS] * 3)
    with pytest.raises(ValueError, match="seeds"):
        oracle.evaluate(masks, [PLUS] * 2)
    with pytest.raises(ValueError, match="bytes"):
        oracle.evaluate(masks, [PLUS, b"", PLUS])
    with pytest.raises(ValueError, match="shape"):
        oracle.err(0.0, np.zeros(19))

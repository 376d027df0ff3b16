"""Exact Fourier identities under B_p (docs/protocol.md section 1.2), checked by enumeration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution.fourier import exact as fx

CASES = [(6, 0.3), (6, 0.5), (8, 0.3), (8, 0.5), (10, 0.3), (10, 0.5)]


def _random_function(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=1 << n)


def _expect(values: np.ndarray, n: int, p: float) -> float:
    return float(np.dot(fx.bp_probabilities(fx.all_subsets(n), p), values))


def _phi_matrix(n: int, p: float) -> np.ndarray:
    lo, hi = fx.basis_values(p)
    return np.where(fx.all_subsets(n), hi, lo)


def test_all_subsets_order() -> None:
    masks = fx.all_subsets(3)
    assert masks.shape == (8, 3)
    assert masks[0].tolist() == [False, False, False]
    assert masks[1].tolist() == [True, False, False]  # bit 0 <-> point 0
    assert masks[6].tolist() == [False, True, True]
    assert masks[7].tolist() == [True, True, True]
    assert fx.all_subsets(0).shape == (1, 0)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_bp_probabilities_and_basis(p: float) -> None:
    n = 5
    w = fx.bp_probabilities(fx.all_subsets(n), p)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert w[0] == pytest.approx((1 - p) ** n)
    phi = _phi_matrix(n, p)
    gram = phi.T @ (w[:, None] * phi)
    np.testing.assert_allclose(gram, np.eye(n), atol=1e-14)
    np.testing.assert_allclose(w @ phi, 0.0, atol=1e-15)


@pytest.mark.parametrize(("n", "p"), [(6, 0.3), (7, 0.5)])
def test_spectrum_matches_definition(n: int, p: float) -> None:
    values = _random_function(n, 1)
    spec = fx.fourier_spectrum(values, p)
    phi = _phi_matrix(n, p)
    masks = fx.all_subsets(n)
    for t in range(1 << n):
        members = np.flatnonzero(masks[t])
        phi_t = np.prod(phi[:, members], axis=1)
        assert spec[t] == pytest.approx(_expect(values * phi_t, n, p), abs=1e-13)


@pytest.mark.parametrize(("n", "p"), CASES)
def test_inverse_and_parseval(n: int, p: float) -> None:
    values = _random_function(n, 2 + n)
    spec = fx.fourier_spectrum(values, p)
    np.testing.assert_allclose(fx.inverse_fourier(spec, p), values, atol=1e-12)
    weights = fx.degree_weights(spec)
    assert weights.shape == (n + 1,)
    assert weights.sum() == pytest.approx(_expect(values**2, n, p), rel=1e-12)
    assert weights[0] == pytest.approx(_expect(values, n, p) ** 2, rel=1e-12)


def test_degree_weights_of_known_spectrum() -> None:
    n, p = 6, 0.3
    spec = np.zeros(1 << n)
    spec[0], spec[0b1], spec[0b100], spec[0b11], spec[0b10110] = 0.5, 0.2, -0.3, 0.1, 0.4
    values = fx.inverse_fourier(spec, p)
    np.testing.assert_allclose(fx.fourier_spectrum(values, p), spec, atol=1e-13)
    np.testing.assert_allclose(
        fx.degree_weights(spec), [0.25, 0.04 + 0.09, 0.01, 0.16, 0, 0, 0], atol=1e-15
    )


@pytest.mark.parametrize(("n", "p"), CASES)
def test_optimal_affine_min_mse_and_err(n: int, p: float) -> None:
    values = _random_function(n, 10 + n)
    rng = np.random.default_rng(100 + n)
    theta0, theta = fx.optimal_affine(values, p)
    b = fx.degree_weights(fx.fourier_spectrum(values, p))
    min_mse = fx.mse(values, p, theta0, theta)
    assert min_mse == pytest.approx(b[2:].sum(), rel=1e-11)
    assert fx.err_closed_form(values, p, theta0, theta) == pytest.approx(0.0, abs=1e-14)
    for _ in range(5):
        a0 = float(rng.normal())
        a = theta + rng.normal(scale=0.2, size=n)
        gap = fx.mse(values, p, a0, a) - min_mse
        assert gap == pytest.approx(fx.err_closed_form(values, p, a0, a), rel=1e-10, abs=1e-13)
        assert gap >= -1e-13


@pytest.mark.parametrize(("n", "p"), CASES)
def test_weighted_least_squares_equals_theta_star(n: int, p: float) -> None:
    values = _random_function(n, 20 + n)
    masks = fx.all_subsets(n)
    w = np.sqrt(fx.bp_probabilities(masks, p))
    design = np.column_stack([np.ones(1 << n), np.where(masks, 1.0, -1.0)])
    coef, *_ = np.linalg.lstsq(design * w[:, None], values * w, rcond=None)
    theta0, theta = fx.optimal_affine(values, p)
    assert coef[0] == pytest.approx(theta0, abs=1e-11)
    np.testing.assert_allclose(coef[1:], theta, atol=1e-11)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_sign_convention_and_influence(p: float) -> None:
    """Positive theta_i <=> including i raises f; infl_i = 2 theta*_i.

    See docs/protocol.md section 1.2.
    """
    n = 6
    masks = fx.all_subsets(n)
    values = masks[:, 2].astype(float) - 0.5 * masks[:, 4]  # f = 1[2 in S] - 0.5 * 1[4 in S]
    theta0, theta = fx.optimal_affine(values, p)
    np.testing.assert_allclose(theta, [0, 0, 0.5, 0, -0.25, 0], atol=1e-14)
    assert theta0 == pytest.approx(0.5 - 0.25, abs=1e-14)
    rng = np.random.default_rng(5)
    values = rng.normal(size=1 << n)
    _, theta = fx.optimal_affine(values, p)
    w = fx.bp_probabilities(masks, p)
    for i in range(n):
        inc, exc = masks[:, i], ~masks[:, i]
        infl = (
            np.dot(w[inc], values[inc]) / w[inc].sum() - np.dot(w[exc], values[exc]) / w[exc].sum()
        )
        assert infl == pytest.approx(2 * theta[i], abs=1e-12)


@pytest.mark.parametrize(("n", "p"), CASES)
def test_noise_stability_equals_degree_polynomial(n: int, p: float) -> None:
    values = _random_function(n, 30 + n)
    b = fx.degree_weights(fx.fourier_spectrum(values, p))
    for rho in (0.0, 0.2, 0.4, 0.7, 1.0):
        poly = sum(rho**k * b[k] for k in range(n + 1))
        assert fx.noise_stability(values, p, rho) == pytest.approx(poly, rel=1e-11, abs=1e-13)
    assert fx.noise_stability(values, p, 0.0) == pytest.approx(b[0], rel=1e-11)
    assert fx.noise_stability(values, p, 1.0) == pytest.approx(b.sum(), rel=1e-11)


@pytest.mark.parametrize(("p", "rho"), [(0.3, 0.2), (0.5, 0.4), (0.3, 0.9)])
def test_noise_stability_equals_dense_double_sum(p: float, rho: float) -> None:
    n = 6
    values = _random_function(n, 40)
    kernel = fx.correlated_kernel(n, p, rho)
    w = fx.bp_probabilities(fx.all_subsets(n), p)
    np.testing.assert_allclose(kernel.sum(axis=1), w, atol=1e-15)  # x ~ B_p
    np.testing.assert_allclose(kernel.sum(axis=0), w, atol=1e-15)  # x' ~ B_p
    direct = float(values @ kernel @ values)
    assert fx.noise_stability(values, p, rho) == pytest.approx(direct, rel=1e-12)
    # per-coordinate correlation E[phi_i(x) phi_i(x')] = rho
    phi = _phi_matrix(n, p)
    assert float(phi[:, 0] @ kernel @ phi[:, 0]) == pytest.approx(rho, abs=1e-13)


def test_trailing_axes_transform_independently() -> None:
    n, p = 5, 0.3
    rng = np.random.default_rng(7)
    table = rng.normal(size=(1 << n, 3))
    spec = fx.fourier_spectrum(table, p)
    moved = fx.noise_operator(table, p, 0.3)
    for c in range(3):
        np.testing.assert_allclose(spec[:, c], fx.fourier_spectrum(table[:, c], p), atol=1e-14)
        np.testing.assert_allclose(moved[:, c], fx.noise_operator(table[:, c], p, 0.3), atol=1e-14)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2\\*\\*N"):
        fx.fourier_spectrum(np.zeros(6), 0.5)
    with pytest.raises(ValueError, match="p must"):
        fx.fourier_spectrum(np.zeros(8), 1.0)
    with pytest.raises(ValueError, match="rho"):
        fx.noise_stability(np.zeros(8), 0.5, 1.5)
    with pytest.raises(ValueError, match="shape"):
        fx.mse(np.zeros(8), 0.5, 0.0, np.zeros(4))
    with pytest.raises(ValueError, match="MAX_N"):
        fx.fourier_spectrum(np.zeros(1 << (fx.MAX_N + 1)), 0.5)
    assert math.isclose(fx.basis_values(0.5)[1], 1.0)

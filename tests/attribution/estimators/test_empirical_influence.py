"""Empirical influence -> +-1 datamodel: a golden case and the exact synthetic optimum."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.data.synthetic import SyntheticConfig, SyntheticOracle
from attribution.estimators.empirical_influence import empirical_influence
from tests.helpers import random_subsets


def test_golden_small_case() -> None:
    # f = 3 + 2 * x_0 (in +-1 encoding) exactly, so a_0 = 2, a_1 = 0, a0 = 3 at p = 1/2.
    # Balanced design (x_1 independent of x_0), each pattern twice.
    masks = np.array([[1, 1], [1, 0], [0, 1], [0, 0]] * 2, dtype=bool)
    f = np.where(masks[:, 0], 5.0, 1.0)[:, None]
    attr = empirical_influence(masks, f, p=0.5)
    assert attr.a.tolist() == [[2.0, 0.0]]
    assert attr.a0.tolist() == [3.0]
    # stderr of a_1 by hand: both groups are {5, 1, 5, 1}, sample variance 16/3,
    # so sqrt(16/3 / 4 + 16/3 / 4) / 2 = sqrt(8/3) / 2.
    assert attr.stderr[0, 0] == 0.0
    assert attr.stderr[0, 1] == pytest.approx(np.sqrt(8 / 3) / 2, rel=1e-12)


def test_recovers_synthetic_optimum_within_stderr() -> None:
    """On a linear-ish oracle, |a - theta*| <= 5 stderr for every point (fixed seeds;
    with 200 points the chance of a >5-sigma miss is ~1e-4 even for Gaussian tails)."""
    oracle = SyntheticOracle(
        SyntheticConfig(
            n=200, p=0.5, pair_mass=0.0, triple_mass=0.0, n_pairs=0, n_triples=0, linear_mass=0.3
        )
    )
    masks, seeds = random_subsets(200, 3000, seed=11)
    attr = empirical_influence(masks, oracle.evaluate(masks, seeds), 0.5)
    theta = oracle.exact().theta
    assert np.all(np.abs(attr.a[0] - theta) <= 5 * attr.stderr[0])


def test_rejects_degenerate_design() -> None:
    with pytest.raises(ValueError, match="at least twice"):
        empirical_influence(np.ones((4, 2), dtype=bool), np.zeros((4, 1)), 0.5)

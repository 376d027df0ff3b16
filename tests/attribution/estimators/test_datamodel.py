"""Datamodel regression: err(a) shrinks with the number of runs as predicted, against the
synthetic oracle's exact optimum; OLS, ridge and Lasso agree on a well-posed problem."""

from __future__ import annotations

import numpy as np

from attribution.data.synthetic import SyntheticConfig, SyntheticOracle
from attribution.estimators.datamodel import fit_datamodel
from tests.helpers import random_subsets


def test_err_shrinks_with_runs_as_predicted() -> None:
    """OLS on R runs estimates each of the N coefficients with variance ~ B_>=2 / R
    (sigma = 1 at p = 1/2), so E err(a) ~ (N + 1) B_>=2 / R. Fixed seeds; the bounds
    [0.4, 2.5] x prediction leave room for the chi-square spread of err (N + 1 = 101
    degrees of freedom: a 2.5x deviation has probability < 1e-6)."""
    oracle = SyntheticOracle(SyntheticConfig(n=100, noise=0.05))
    ex = oracle.exact()
    errs = {}
    for runs in (1000, 4000, 16000):
        masks, seeds = random_subsets(100, runs, seed=runs)
        A = fit_datamodel(masks, oracle.evaluate(masks, seeds))
        errs[runs] = oracle.err(float(A[0, 0]), A[0, 1:])
        predicted = 101 * ex.B_ge2 / runs
        assert 0.4 * predicted <= errs[runs] <= 2.5 * predicted, (runs, errs[runs], predicted)
    assert errs[1000] > errs[4000] > errs[16000]


def test_ols_ridge_lasso_agree_when_well_posed() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((800, 15)) < 0.5
    w = rng.normal(size=(15, 2))
    f = np.where(masks, 1.0, -1.0) @ w + 0.7 + 0.05 * rng.normal(size=(800, 2))
    ols = fit_datamodel(masks, f)
    assert np.abs(ols[:, 1:] - w.T).max() < 0.02
    assert np.abs(ols[:, 0] - 0.7).max() < 0.02
    assert np.abs(fit_datamodel(masks, f, 1e-3) - ols).max() < 1e-4
    assert np.abs(fit_datamodel(masks, f, method="lasso") - ols).max() < 0.02

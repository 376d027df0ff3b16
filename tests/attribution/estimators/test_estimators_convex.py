"""IF / Newton step / RIF on the convex tasks against exact retraining, the sign
convention on a hand-computed case, and the calibration into the protocol attribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution.estimators.calibration import calibrate
from attribution.estimators.convex import (
    ConvexInfluence,
    ConvexProblem,
    hessian,
    hessian_factors,
    per_sample_gradients,
    task_output_function,
    to_attribution,
)
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import ConvexTask, OracleTask
from tests.helpers import convex_spec, random_subsets

F64 = torch.float64


def _convex(task: object) -> ConvexTask:
    assert isinstance(task, ConvexTask)
    return task


def _keep_mask(n: int, group: np.ndarray) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[group] = False
    return keep


@pytest.fixture(scope="module")
def ridge() -> tuple[ConvexTask, ConvexInfluence]:
    task = _convex(load_task(convex_spec("sklearn:diabetes", "ridge", bound=1e6)))
    return task, ConvexInfluence.from_task(task)


@pytest.fixture(scope="module")
def logreg() -> tuple[ConvexTask, ConvexInfluence]:
    task = _convex(load_task(resolve_spec("breast_cancer-logreg")))
    return task, ConvexInfluence.from_task(task)


# ------------------------------------------------------------------------ sign convention


def test_sign_convention_three_point_ridge_by_hand() -> None:
    """1-D ridge, no intercept: x = (1, 2, 3), y = (1, 1, 2), lam = 1, f = prediction at x = 1.

    theta = sum xy / (sum x^2 + lam) = 9 / 15 = 0.6.  Leave-one-out by hand:
    theta_{-1} = 8/14, theta_{-2} = 7/11, theta_{-3} = 3/6, so the removal effects are
    Delta = (4/7 - 3/5, 7/11 - 3/5, 1/2 - 3/5) = (-1/35, 2/55, -1/10).
    g_i = (x_i theta - y_i) x_i = (-0.4, 0.4, -0.6), H = 15, h_i = x_i^2 / 15:
    IF = g / 15 and IF / (1 - h) reproduces Delta exactly.
    """
    problem = ConvexProblem(
        kind="ridge",
        Xa=torch.tensor([[1.0], [2.0], [3.0]], dtype=F64),
        targets=torch.tensor([1.0, 1.0, 2.0], dtype=F64),
        lam=1.0,
        pen=torch.ones(1, dtype=F64),
    )
    x_val = torch.tensor([[1.0]], dtype=F64)
    est = ConvexInfluence(problem, outputs=lambda V: V @ x_val.T)
    assert est.theta.item() == pytest.approx(0.6, abs=1e-15)
    assert per_sample_gradients(problem, est.theta)[:, 0].tolist() == pytest.approx(
        [-0.4, 0.4, -0.6], abs=1e-15
    )
    assert est.hessian().item() == pytest.approx(15.0, abs=1e-13)
    assert est.leverages().tolist() == pytest.approx([1 / 15, 4 / 15, 9 / 15], abs=1e-15)
    delta_true = [-1 / 35, 2 / 55, -1 / 10]
    assert est.single_point_parameters("if")[:, 0].tolist() == pytest.approx(
        [-0.4 / 15, 0.4 / 15, -0.6 / 15], abs=1e-15
    )
    for method in ("ns", "rif"):
        assert est.single_point_parameters(method)[:, 0].tolist() == pytest.approx(
            delta_true, abs=1e-15
        )
    exact = est.retrain_parameters([[0], [1], [2]])[:, 0].tolist()
    assert exact == pytest.approx(delta_true, abs=1e-15)
    # removal effects on f(theta) = theta * 1: positive = removing raises the output;
    # point 3 (y above the fit) raises f when included -> Delta_3 < 0, contribution > 0
    for mode in ("evaluated", "linear"):
        removal = est.removal_effects("ns", mode)
        assert removal.shape == (1, 3)
        assert removal[0].tolist() == pytest.approx(delta_true, abs=1e-15)
    # group of two: NS = exact leave-two-out theta_{-{1,3}} = 2 / (4 + 1) = 0.4
    assert est.newton_step_parameters([0, 2]).item() == pytest.approx(0.4 - 0.6, abs=1e-15)
    assert est.newton_step_parameters([0, 2], "direct").item() == pytest.approx(-0.2, abs=1e-15)
    # to_attribution: scores are -Delta; exact B_p enumeration of all 8 subsets
    masks = np.array([[(s >> i) & 1 for i in range(3)] for s in range(8)], dtype=bool)
    fits = est.retrain_parameters([np.flatnonzero(~m) for m in masks]) + est.theta
    outputs = fits.numpy() @ x_val.numpy().T
    cal = to_attribution(est.removal_effects(), masks, outputs)
    assert np.array_equal(cal.scores, -est.removal_effects())
    assert cal.beta[0] > 0
    assert cal.attribution.shape == (1, 4)
    assert cal.attribution[0, 3] > 0 > cal.attribution[0, 2]


# ------------------------------------------------------------------------ ridge: exactness


def test_ridge_newton_step_equals_retraining(ridge: tuple[ConvexTask, ConvexInfluence]) -> None:
    task, est = ridge
    rng = np.random.default_rng(5)
    groups = [rng.choice(est.n, k, replace=False) for k in (1, 7, 40)]
    W = task.fit_params(np.stack([_keep_mask(est.n, g) for g in groups]))
    exact = W - est.theta
    for method in ("ns", "ns-direct"):
        delta = est.group_parameters(groups, method)
        assert (delta - exact).abs().max().item() <= 1e-8
        f_est = est.output_changes(delta, "evaluated")
        f_true = task.outputs_from_params(W) - est.base_outputs().numpy()
        assert np.abs(f_est - f_true).max() <= 1e-8
        # predictions are linear in the parameters (nothing clipped at this bound)
        assert np.abs(est.output_changes(delta, "linear") - f_true).max() <= 1e-8
    # IF is not exact for a group of 40
    assert (est.group_parameters(groups[2:], "if") - exact[2:]).abs().max().item() > 1e-4


def test_ridge_rescaled_if_is_exact_leave_one_out(
    ridge: tuple[ConvexTask, ConvexInfluence],
) -> None:
    task, est = ridge
    W = task.fit_params(~np.eye(est.n, dtype=bool))
    exact = W - est.theta
    h = est.leverages()
    rif = est.single_point_parameters("if") / (1.0 - h)[:, None]
    assert (rif - exact).abs().max().item() <= 1e-8
    assert (est.single_point_parameters("ns") - exact).abs().max().item() <= 1e-8
    loo = (task.outputs_from_params(W) - est.base_outputs().numpy()).T
    assert np.abs(est.removal_effects("rif") - loo).max() <= 1e-8
    # PRESS: the LOO residual at i is e_i / (1 - h_ii)
    Xa, y = task.Xa, task.y
    e = y - Xa @ est.theta
    e_loo = y - (Xa * W).sum(dim=1)
    assert (e_loo - e / (1.0 - h)).abs().max().item() <= 1e-8


# ------------------------------------------------------------------------ logistic


def test_logistic_hessian_matches_trainer_stationarity(
    logreg: tuple[ConvexTask, ConvexInfluence],
) -> None:
    task, est = logreg
    # full gradient sum_i g_i + lam pen theta vanishes at the trainer's solution
    grad = est.per_sample_gradients().sum(dim=0) + task.opts.lam * task.pen * est.theta
    assert grad.abs().max().item() <= 1e-8
    U = hessian_factors(est.problem, est.theta)[:, :, 0]
    H = U.T @ U + torch.diag(task.opts.lam * task.pen)
    assert (H - est.hessian()).abs().max().item() <= 1e-10
    # and H is the derivative of the gradient (finite differences, central)
    v = torch.linspace(-1.0, 1.0, est.dim, dtype=F64)
    eps = 1e-5
    gp = per_sample_gradients(est.problem, est.theta + eps * v).sum(dim=0)
    gm = per_sample_gradients(est.problem, est.theta - eps * v).sum(dim=0)
    Hv = (gp - gm) / (2 * eps) + task.opts.lam * task.pen * v
    assert (Hv - est.hessian() @ v).abs().max().item() <= 1e-5


def test_logistic_woodbury_equals_direct(logreg: tuple[ConvexTask, ConvexInfluence]) -> None:
    _, est = logreg
    rng = np.random.default_rng(2)
    groups = [rng.choice(est.n, k, replace=False) for k in (1, 3, 10, 50)]
    wood = est.group_parameters(groups, "ns")
    direct = est.group_parameters(groups, "ns-direct")
    assert (wood - direct).abs().max().item() <= 1e-9
    # empty group: IF = NS = 0
    assert est.newton_step_parameters([]).abs().max().item() == 0.0
    assert est.influence_parameters([]).abs().max().item() == 0.0


def test_logistic_single_point_newton_step_is_rescaled_if(
    logreg: tuple[ConvexTask, ConvexInfluence],
) -> None:
    _, est = logreg
    rif = est.single_point_parameters("if") / (1.0 - est.leverages())[:, None]
    idx = list(range(0, est.n, 23))
    direct = torch.stack([est.newton_step_parameters([i], "direct") for i in idx])
    assert (direct - rif[idx]).abs().max().item() <= 1e-9
    assert (est.single_point_parameters("ns") - rif).abs().max().item() <= 1e-12
    group = [3, 50, 400]
    assert (est.rescaled_if_parameters(group) - rif[group].sum(dim=0)).abs().max().item() <= 1e-12


def test_logistic_newton_step_beats_influence_function(
    logreg: tuple[ConvexTask, ConvexInfluence],
) -> None:
    task, est = logreg
    rng = np.random.default_rng(0)
    groups = [rng.choice(est.n, 10, replace=False) for _ in range(20)]
    W = task.fit_params(np.stack([_keep_mask(est.n, g) for g in groups]))
    exact = W - est.theta
    err_ns = (est.group_parameters(groups, "ns") - exact).norm(dim=1).mean().item()
    err_if = (est.group_parameters(groups, "if") - exact).norm(dim=1).mean().item()
    err_rif = (est.group_parameters(groups, "rif") - exact).norm(dim=1).mean().item()
    effect = exact.norm(dim=1).mean().item()
    assert err_ns < err_if
    assert err_ns < 0.2 * effect
    assert err_rif < err_if  # IF underestimates; RIF rescales


def test_logistic_outputs_and_sign(logreg: tuple[ConvexTask, ConvexInfluence]) -> None:
    task, est = logreg
    # the torch output function against the definition, written out in numpy: binary
    # margins (2y - 1) x.theta on the validation points, their mean appended, clipped
    gen = torch.Generator().manual_seed(0)
    V = est.theta[None] + 0.01 * torch.randn(3, est.dim, dtype=F64, generator=gen)
    X, y = task.Xa_val.numpy(), task.yv.numpy()
    margins = (V.numpy() @ X.T) * (2.0 * y - 1.0)
    if task.spec.output.mean:
        margins = np.concatenate([margins, margins.mean(axis=1, keepdims=True)], axis=1)
    expected = np.clip(margins, -task.bound, task.bound)
    np.testing.assert_allclose(task_output_function(task)(V).numpy(), expected, atol=1e-12)
    # binary margins are linear in theta: evaluated = linearised wherever no clip is touched
    delta = est.single_point_parameters("ns")
    ev, lin = est.output_changes(delta, "evaluated"), est.output_changes(delta, "linear")
    f0 = est.base_outputs().numpy()
    free = (np.abs(f0 + ev) < task.bound) & (np.abs(f0 + lin) < task.bound)
    assert free.mean() > 0.5
    assert np.abs(ev - lin)[free].max() <= 1e-12
    # sign test: exact LOO effects on the mean output against NS
    idx = np.arange(0, est.n, 9)
    W = task.fit_params(np.stack([_keep_mask(est.n, np.array([i])) for i in idx]))
    exact = (task.outputs_from_params(W) - f0)[:, -1]
    removal = est.removal_effects("ns")[-1, idx]
    removal_if = est.removal_effects("if")[-1, idx]
    assert np.corrcoef(exact, removal)[0, 1] > 0.95
    assert np.corrcoef(exact, removal)[0, 1] > np.corrcoef(exact, removal_if)[0, 1]
    assert np.abs(removal - exact).max() < np.abs(removal_if - exact).max()
    # converted attribution: positive correlation with the exact contributions -Delta
    masks, seeds = random_subsets(est.n, 40, seed=4)
    cal = to_attribution(est.removal_effects("ns"), masks, task.train_batch(masks, seeds))
    assert cal.beta[-1] > 0
    assert np.corrcoef(cal.a[-1, idx], -exact)[0, 1] > 0.95


# ------------------------------------------------------------------------ multinomial


def test_multinomial_identities() -> None:
    task = _convex(load_task(convex_spec("sklearn:iris", "multinomial", l2=0.3, bound=50.0)))
    est = ConvexInfluence.from_task(task)
    assert est.dim == 3 * task.Xa.shape[1]
    U = hessian_factors(est.problem, est.theta)
    u = est.problem.intercept_direction()
    assert u is not None
    H = torch.einsum("nar,nbr->ab", U, U) + torch.diag(0.3 * task.pen.repeat(3)) + torch.outer(u, u)
    assert (H - hessian(est.problem, est.theta)).abs().max().item() <= 1e-10
    rng = np.random.default_rng(1)
    groups = [rng.choice(est.n, 6, replace=False) for _ in range(10)]
    wood, direct = est.group_parameters(groups, "ns"), est.group_parameters(groups, "ns-direct")
    assert (wood - direct).abs().max().item() <= 1e-9
    single = torch.stack([est.newton_step_parameters([i], "direct") for i in range(0, est.n, 10)])
    assert (est.single_point_parameters("ns")[::10] - single).abs().max().item() <= 1e-9
    exact = est.retrain_parameters(groups)
    err_ns = (wood - exact).norm(dim=1).mean().item()
    err_if = (est.group_parameters(groups, "if") - exact).norm(dim=1).mean().item()
    assert err_ns < err_if
    # parameters stay orthogonal to the intercept shift, like the trainer's
    assert (exact @ u).abs().max().item() <= 1e-9
    assert (wood @ u).abs().max().item() <= 1e-9
    assert est.removal_effects("ns", "linear").shape == (task.n_outputs, est.n)


# ------------------------------------------------------------------------ calibration


def test_calibrate_golden_exact_fit() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((50, 6)) < 0.5
    s = rng.normal(size=(2, 6))
    x = np.where(masks, 1.0, -1.0)
    f = np.column_stack([2.0 + 3.0 * x @ s[0], -1.0 + 0.5 * x @ s[1]])
    cal = calibrate(s, masks, f)
    assert cal.beta.tolist() == pytest.approx([3.0, 0.5], abs=1e-12)
    assert cal.alpha.tolist() == pytest.approx([2.0, -1.0], abs=1e-12)
    assert np.allclose(cal.attribution[:, 1:], cal.beta[:, None] * s, atol=0)
    assert cal.r2.tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    shared = calibrate(
        s, masks, np.column_stack([2.0 + 3.0 * x @ s[0], 1.0 + 3.0 * x @ s[1]]), shared_scale=True
    )
    assert shared.beta.tolist() == pytest.approx([3.0, 3.0], abs=1e-12)
    zero = calibrate(np.zeros((1, 6)), masks, f[:, :1])
    assert zero.beta[0] == 0.0
    assert zero.alpha[0] == pytest.approx(f[:, 0].mean(), abs=1e-12)
    assert np.isnan(zero.beta_stderr[0])


def test_calibration_recovers_synthetic_optimum() -> None:
    """A score proportional to the exact optimal datamodel, s = 3.7 theta*, calibrates
    back to (theta0*, theta*): beta -> 1/3.7, alpha -> theta0* (within 5 standard errors)."""
    task = load_task(resolve_spec("synthetic"))
    assert isinstance(task, OracleTask)
    spectrum = task.oracle.exact()
    theta = spectrum.theta
    masks, seeds = random_subsets(task.n_points, 2000, p=task.spec.p, seed=7)
    outputs = task.train_batch(masks, seeds)
    cal = calibrate(3.7 * theta[None, :], masks, outputs)
    kappa = 3.7 * cal.beta[0]
    assert abs(kappa - 1.0) <= 5 * 3.7 * cal.beta_stderr[0]
    assert 3.7 * cal.beta_stderr[0] < 0.05
    assert abs(cal.alpha[0] - spectrum.theta0) <= 5 * cal.alpha_stderr[0]
    rel = np.linalg.norm(cal.a[0] - theta) / np.linalg.norm(theta)
    assert rel <= 5 * 3.7 * cal.beta_stderr[0]
    assert cal.attribution.shape == (1, 1 + task.n_points)

"""Batched float64 Newton solvers for L2 logistic (binary, multinomial) and ridge regression.

All ``M`` models share the design matrix ``Xa`` (n, q) (features plus a column of ones
when an intercept is fitted); model ``m`` sees the sample weights ``w[m]`` (its 0/1 subset
mask). Objective (regularisation "convention A", see :mod:`attribution.tasks.spec`)::

    J_m(W) = sum_i w[m, i] * loss_i(W) + (lam / 2) * sum_j pen_j * W_j^2

with ``pen_j = 0`` for the intercept and 1 otherwise.

All Hessians come out of one matrix product: with
``Kmat[i] = vec(x_i x_i^T)`` (n, q*q) and per-model curvature weights ``S`` (M, n),
``H = (S @ Kmat).reshape(M, q, q) + lam * diag(pen)``. Newton steps use a batched
Cholesky solve and a vectorised Armijo backtracking line search; a model stops updating
as soon as its step's max-norm falls below ``tol``, so each model's iterates depend
only on its own data (up to floating-point summation order in the shared GEMMs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor


class NotConvergedError(RuntimeError):
    """A Newton solve did not reach its tolerance within ``max_iter`` iterations."""


@dataclass(frozen=True)
class NewtonOptions:
    """Solver settings: penalty ``lam``, step tolerance ``tol`` (max-norm), ``max_iter``."""

    lam: float
    tol: float = 1e-10
    max_iter: int = 100


def outer_products(Xa: Tensor) -> Tensor:
    """``Kmat`` (n, q*q) with row i = vec(x_i x_i^T); used to form all Hessians in one GEMM."""
    n, q = Xa.shape
    return (Xa[:, :, None] * Xa[:, None, :]).reshape(n, q * q)


def penalty_vector(q: int, fit_intercept: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``pen`` (q,): 1 for every coefficient, 0 for the (last) intercept column."""
    pen = torch.ones(q, dtype=dtype, device=device)
    if fit_intercept:
        pen[-1] = 0.0
    return pen


def _softplus(z: Tensor) -> Tensor:
    return torch.nn.functional.softplus(z)


def logistic_objective(
    W: Tensor, w: Tensor, *, Xa: Tensor, y: Tensor, lam: float, pen: Tensor
) -> Tensor:
    """``J_m`` for binary logistic loss ``log(1 + e^z) - y z`` (y in {0, 1}); shape (M,)."""
    Z = W @ Xa.T
    loss = (w * (_softplus(Z) - y * Z)).sum(dim=1)
    return loss + 0.5 * lam * (pen * W * W).sum(dim=1)


def fit_logistic(
    Xa: Tensor,
    y: Tensor,
    w: Tensor,
    opts: NewtonOptions,
    pen: Tensor,
    W0: Tensor,
    Kmat: Tensor | None = None,
) -> Tensor:
    """Binary L2 logistic regression for every row of ``w``; returns ``W`` (M, q).

    Gradient ``g = Xa^T (w o (sigma(Xa W) - y)) + lam pen o W``; Hessian
    ``H = Xa^T diag(w o s o (1 - s)) Xa + lam diag(pen)``. ``W0`` (q,) or (M, q) is the
    starting point (e.g. the full-data solution).
    """
    M = w.shape[0]
    K = outer_products(Xa) if Kmat is None else Kmat
    W = W0.expand(M, -1).clone() if W0.dim() == 1 else W0.clone()
    q = Xa.shape[1]
    reg = torch.diag(lam_pen := opts.lam * pen)
    active = torch.arange(M, device=W.device)
    for _ in range(opts.max_iter):
        if active.numel() == 0:
            return W
        Wa, wa = W[active], w[active]
        Z = Wa @ Xa.T
        P = torch.sigmoid(Z)
        G = (wa * (P - y)) @ Xa + lam_pen * Wa
        S = wa * P * (1.0 - P)
        H = (S @ K).reshape(-1, q, q) + reg
        step = torch.cholesky_solve(G.unsqueeze(-1), torch.linalg.cholesky(H)).squeeze(-1)
        W_new = _armijo(
            Wa, step, G, wa, partial(logistic_objective, Xa=Xa, y=y, lam=opts.lam, pen=pen)
        )
        W[active] = W_new
        done = step.abs().amax(dim=1) <= opts.tol
        active = active[~done]
    if active.numel():
        raise NotConvergedError(
            f"logistic Newton: {active.numel()} model(s) not converged "
            f"in {opts.max_iter} iterations"
        )
    return W


def multinomial_objective(
    W: Tensor, w: Tensor, *, Xa: Tensor, Y: Tensor, lam: float, pen: Tensor
) -> Tensor:
    """``J_m`` for softmax cross-entropy; ``W`` (M, C, q), ``Y`` (n, C) one-hot; shape (M,)."""
    Z = torch.einsum("mcq,nq->mnc", W, Xa)
    loss = (w * (torch.logsumexp(Z, dim=2) - (Z * Y).sum(dim=2))).sum(dim=1)
    return loss + 0.5 * lam * (pen * W * W).sum(dim=(1, 2))


def fit_multinomial(
    Xa: Tensor,
    Y: Tensor,
    w: Tensor,
    opts: NewtonOptions,
    pen: Tensor,
    W0: Tensor,
    Kmat: Tensor | None = None,
) -> Tensor:
    """Multinomial L2 logistic regression with all C classes parametrised; ``W`` (M, C, q).

    Hessian blocks ``H[(c,a),(d,b)] = sum_i w_i P_ic (delta_cd - P_id) x_ia x_ib +
    lam delta_cd pen_a delta_ab``. The unpenalised intercepts leave one flat direction
    (adding a constant to every class intercept changes nothing); we add the rank-one
    term ``u u^T`` on that direction. The gradient is orthogonal to ``u``, so the Newton
    step is unchanged in every other direction and the intercepts keep the sum they
    start with (zero for a zero or centred start): the solution is the unique optimum
    with ``sum_c b_c = sum_c b0_c``, and every output (logit differences) is unaffected.
    """
    M = w.shape[0]
    C = Y.shape[1]
    n, q = Xa.shape
    K = outer_products(Xa) if Kmat is None else Kmat
    W = W0.expand(M, -1, -1).clone() if W0.dim() == 2 else W0.clone()
    D = C * q
    lam_pen = opts.lam * pen
    reg = torch.diag(lam_pen.repeat(C))
    if bool(pen[-1] == 0):
        u = torch.zeros(D, dtype=Xa.dtype, device=Xa.device)
        u[q - 1 :: q] = 1.0
        reg = reg + torch.outer(u, u)
    iu = torch.triu_indices(C, C, device=Xa.device)
    active = torch.arange(M, device=W.device)
    for _ in range(opts.max_iter):
        if active.numel() == 0:
            return W
        Wa, wa = W[active], w[active]
        Ma = Wa.shape[0]
        Z = torch.einsum("mcq,nq->mcn", Wa, Xa)
        P = torch.softmax(Z, dim=1)  # (Ma, C, n)
        G = torch.einsum("mcn,nq->mcq", wa[:, None, :] * (P - Y.T), Xa) + lam_pen * Wa
        # curvature weights for the upper-triangular class pairs (c <= d)
        Pc, Pd = P[:, iu[0], :], P[:, iu[1], :]
        eye = (iu[0] == iu[1]).to(Xa.dtype)[None, :, None]
        S = wa[:, None, :] * Pc * (eye - Pd)  # (Ma, T, n)
        blocks = (S.reshape(-1, n) @ K).reshape(Ma, -1, q, q)
        H = torch.zeros(Ma, C, C, q, q, dtype=Xa.dtype, device=Xa.device)
        H[:, iu[0], iu[1]] = blocks
        H[:, iu[1], iu[0]] = blocks.transpose(-1, -2)
        H = H.permute(0, 1, 3, 2, 4).reshape(Ma, D, D) + reg
        g = G.reshape(Ma, D)
        step = torch.cholesky_solve(g.unsqueeze(-1), torch.linalg.cholesky(H)).squeeze(-1)
        W_new = _armijo(
            Wa.reshape(Ma, D),
            step,
            g,
            wa,
            partial(_multinomial_flat_objective, shape=(C, q), Xa=Xa, Y=Y, lam=opts.lam, pen=pen),
        )
        W[active] = W_new.reshape(Ma, C, q)
        done = step.abs().amax(dim=1) <= opts.tol
        active = active[~done]
    if active.numel():
        raise NotConvergedError(
            f"multinomial Newton: {active.numel()} model(s) not converged "
            f"in {opts.max_iter} iterations"
        )
    return W


def _multinomial_flat_objective(
    V: Tensor, w: Tensor, *, shape: tuple[int, int], Xa: Tensor, Y: Tensor, lam: float, pen: Tensor
) -> Tensor:
    return multinomial_objective(V.reshape(-1, *shape), w, Xa=Xa, Y=Y, lam=lam, pen=pen)


def fit_ridge(
    Xa: Tensor, y: Tensor, w: Tensor, lam: float, pen: Tensor, Kmat: Tensor | None = None
) -> Tensor:
    """Weighted ridge regression in closed form; ``W`` (M, q).

    ``(Xa^T diag(w) Xa + lam diag(pen)) W = Xa^T (w o y)`` for the objective
    ``sum_i w_i (y_i - x_i W)^2 / 2 + (lam / 2) sum_j pen_j W_j^2`` (scikit-learn's
    ``Ridge(alpha=lam)`` on the included points, intercept unpenalised).
    """
    q = Xa.shape[1]
    K = outer_products(Xa) if Kmat is None else Kmat
    H = (w @ K).reshape(-1, q, q) + torch.diag(lam * pen)
    rhs = (w * y) @ Xa
    return torch.cholesky_solve(rhs.unsqueeze(-1), torch.linalg.cholesky(H)).squeeze(-1)


def _armijo(
    W: Tensor,
    step: Tensor,
    grad: Tensor,
    weights: Tensor,
    objective: Callable[[Tensor, Tensor], Tensor],
    c: float = 1e-4,
    max_halvings: int = 40,
    exact_region: float = 1e-6,
) -> Tensor:
    """Vectorised backtracking: ``W - t * step`` with t halved per model until Armijo holds.

    Steps whose max-norm is below ``exact_region`` are taken in full (Newton is in its
    quadratic region there and objective differences drown in rounding).
    """
    f = objective  # (V, weights of those models) -> objective values, shape (len(V),)
    idx = torch.arange(W.shape[0], device=W.device)
    J0 = f(W, weights)
    slope = (grad * step).sum(dim=1)
    t = torch.ones(W.shape[0], dtype=W.dtype, device=W.device)
    small = step.abs().amax(dim=1) < exact_region
    pending = ~small
    for _ in range(max_halvings):
        if not bool(pending.any()):
            break
        sel = idx[pending]
        cand = W[sel] - t[sel, None] * step[sel]
        ok = f(cand, weights[sel]) <= J0[sel] - c * t[sel] * slope[sel]
        pending[sel[ok]] = False
        t[sel[~ok]] *= 0.5
    return W - t[:, None] * step

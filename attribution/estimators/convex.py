"""Influence function (IF), Newton step (NS) and rescaled IF (RIF) for the convex tasks.

Models: binary L2 logistic regression, ridge regression and multinomial logistic
regression, exactly as trained by :mod:`attribution.training.newton` ("convention A",
see :mod:`attribution.tasks.spec`)::

    L(theta) = sum_i loss_i(theta) + (lam / 2) sum_j pen_j theta_j^2

with ``pen_j = 0`` for the intercept (last column of ``Xa``) and 1 otherwise; removing
points leaves the ridge unchanged. Everything is float64 torch. Parameters are flat
vectors of length ``D`` (``q`` for binary/ridge; ``C * q`` for multinomial, class-major:
entry ``c * q + a`` is ``W[c, a]``, the layout of ``W.reshape(M, C * q)``).

Per-sample terms at the full-data solution ``theta``::

    logistic     p_i = sigma(x_i.theta)   g_i = (p_i - y_i) x_i      H_i = p_i (1 - p_i) x_i x_i^T
    ridge        loss_i = (y_i - x_i.theta)^2 / 2
                 g_i = (x_i.theta - y_i) x_i                         H_i = x_i x_i^T
    multinomial  P_i = softmax(Theta x_i)   g_i = (P_i - Y_i) (x) x_i
                 H_i = (diag(P_i) - P_i P_i^T) (x) x_i x_i^T

    H = sum_i H_i + lam diag(pen)          (the exact sum-form Hessian of L)

Every ``H_i`` is written ``U_i U_i^T`` with ``U_i`` (D, r): ``sqrt(w_i) x_i`` (r = 1) for
binary/ridge (``w_i = p_i (1 - p_i)`` resp. 1), and ``B_i (x) x_i`` (r = C) with
``B_i = diag(sqrt P_i) - P_i sqrt(P_i)^T`` for multinomial (``B_i B_i^T = diag(P_i) -
P_i P_i^T``). For multinomial with an unpenalised intercept ``H`` is singular along
``u`` (+1 on every class's intercept; the logits do not change); exactly like the trainer
we add ``u u^T``, which leaves every solve in the gradients' span unchanged (all ``g_i``
and ``U_i`` are orthogonal to ``u``) and keeps the intercepts' sum fixed.

Sign convention (derivation)
----------------------------
``theta`` minimises ``L``, so ``grad L(theta) = 0``. The leave-``T``-out objective is
``L_{-T} = L - sum_{i in T} loss_i``, hence ``grad L_{-T}(theta) = - sum_{i in T} g_i``
and ``hess L_{-T}(theta) = H_{-T} = H - sum_{i in T} H_i``. One Newton step on
``L_{-T}`` from ``theta`` is ``theta - H_{-T}^{-1} grad L_{-T}(theta)``, i.e. the
*parameter change on removal* ``delta = theta_{-T} - theta`` is estimated by ::

    NS :  delta_T = H_{-T}^{-1} sum_{i in T} g_i            (exact for ridge: L_{-T} is quadratic)
    IF :  delta_T = H^{-1}     sum_{i in T} g_i            (full-data Hessian; additive in T)
    RIF:  delta_T = sum_{i in T} H^{-1} g_i / (1 - h_i),   h_i = w_i x_i^T H^{-1} x_i

Woodbury (``U_T = [U_i]_{i in T}``, D x kr)::

    H_{-T}^{-1} = H^{-1} + H^{-1} U_T (I_kr - U_T^T H^{-1} U_T)^{-1} U_T^T H^{-1}

For one point (binary/ridge) ``g_i = (r_i / sqrt(w_i)) U_i``, and Sherman-Morrison gives
``NS_{i} = H^{-1} g_i / (1 - h_i) = RIF_{i}``; for ridge this is the exact leave-one-out
(PRESS) formula. (Koh and Liang's ``I_up,params = -H_mean^{-1} g_i`` is the effect of
*up*-weighting; removal is ``-(1/n) I_up`` with the mean Hessian, i.e. ``+H^{-1} g_i``
with the sum Hessian used here.)

Outputs and removal effects
---------------------------
``outputs(V)`` maps parameters (M, D) to the task's outputs (M, T) (margins or
predictions on validation points, their mean, clipped to ``[-b, b]``). For a parameter
change ``delta`` the output change is either *evaluated*, ``f(theta + delta) - f(theta)``,
or *linearised*, ``J delta`` with ``J = df/dtheta`` (T, D) at ``theta`` (zero rows for
outputs clipped at ``theta``). The removal effect of point ``i`` is
``Delta_i = f(theta_{-i}) - f(theta)`` (T values); :meth:`ConvexInfluence.removal_effects`
returns all of them as a (T, N) array. Positive ``Delta_i`` means *removing* ``i`` raises
the output; the protocol's contribution is ``c_i = -Delta_i`` (positive = including ``i``
raises the output), turned into the affine +-1 datamodel by :func:`to_attribution`
(calibration on B_p runs, :mod:`attribution.estimators.calibration`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from attribution.estimators.calibration import Calibration, calibrate
from attribution.tasks.runtime import ConvexTask
from attribution.training import newton

FloatArray = npt.NDArray[np.float64]
Kind = Literal["logistic", "multinomial", "ridge"]
GroupLike = Sequence[int] | npt.NDArray[np.integer[Any]] | Tensor
OutputFn = Callable[[Tensor], Tensor]
"""Parameters (M, D) -> outputs (M, T), differentiable torch float64."""
GroupMethod = Literal["if", "ns", "ns-direct", "rif"]
PointMethod = Literal["if", "ns", "rif"]
OutputMode = Literal["evaluated", "linear"]

_DT = torch.float64


# --------------------------------------------------------------------------- problem


@dataclass(frozen=True)
class ConvexProblem:
    """A convex training problem in convention A (see the module docstring).

    ``Xa`` (n, q) design (intercept column last when fitted), ``targets`` (n,) labels in
    {0, 1} (logistic) or real values (ridge), or (n, C) one-hot (multinomial); ``lam``
    the ridge strength, ``pen`` (q,) the penalty mask; ``tol`` / ``max_iter`` the Newton
    solver's settings for :meth:`fit`.
    """

    kind: Kind
    Xa: Tensor
    targets: Tensor
    lam: float
    pen: Tensor
    tol: float = 1e-10
    max_iter: int = 100

    def __post_init__(self) -> None:
        if self.kind not in ("logistic", "multinomial", "ridge"):
            raise ValueError(f"unknown convex problem kind {self.kind!r}")
        if self.Xa.dtype != _DT or self.targets.dtype != _DT or self.pen.dtype != _DT:
            raise ValueError("Xa, targets and pen must be float64 tensors")
        if self.Xa.dim() != 2:
            raise ValueError("Xa must have shape (n, q)")
        n, q = self.Xa.shape
        want_dim = 2 if self.kind == "multinomial" else 1
        if self.targets.dim() != want_dim or self.targets.shape[0] != n:
            raise ValueError(f"targets must have {want_dim} dimension(s) and n = {n} rows")
        if self.pen.shape != (q,):
            raise ValueError(f"pen must have shape ({q},)")
        if not self.lam >= 0:
            raise ValueError("lam must be >= 0")

    @classmethod
    def from_task(cls, task: ConvexTask) -> ConvexProblem:
        """The problem a :class:`ConvexTask` trains (same ``Xa``, ``lam``, ``pen``, solver)."""
        kind = task.spec.training.trainer
        if kind not in ("logistic", "multinomial", "ridge"):
            raise ValueError(f"not a convex trainer: {kind!r}")
        targets = task.Y if kind == "multinomial" else task.y
        return cls(
            kind=kind,  # type: ignore[arg-type]
            Xa=task.Xa,
            targets=targets,
            lam=task.opts.lam,
            pen=task.pen,
            tol=task.opts.tol,
            max_iter=task.opts.max_iter,
        )

    @property
    def n(self) -> int:
        return int(self.Xa.shape[0])

    @property
    def q(self) -> int:
        return int(self.Xa.shape[1])

    @property
    def n_classes(self) -> int:
        """C for multinomial, 1 otherwise."""
        return int(self.targets.shape[1]) if self.kind == "multinomial" else 1

    @property
    def dim(self) -> int:
        """Number of parameters D."""
        return self.n_classes * self.q

    @property
    def rank(self) -> int:
        """Columns r of each Hessian factor ``U_i`` (C for multinomial, 1 otherwise)."""
        return self.n_classes

    def fit(self, weights: Tensor, theta0: Tensor | None = None) -> Tensor:
        """Train one model per row of ``weights`` (M, n) (0/1 masks); flat params (M, D).

        ``theta0`` (D,) is the warm start (zeros if omitted; ridge is solved in closed
        form and ignores it); the same solvers and tolerances as the task's
        ``fit_params``.
        """
        w = weights.to(_DT)
        if w.dim() != 2 or w.shape[1] != self.n:
            raise ValueError(f"weights must have shape (M, {self.n})")
        start = (
            torch.zeros(self.dim, dtype=_DT, device=self.Xa.device) if theta0 is None else theta0
        )
        opts = newton.NewtonOptions(lam=self.lam, tol=self.tol, max_iter=self.max_iter)
        if self.kind == "logistic":
            W = newton.fit_logistic(self.Xa, self.targets, w, opts, self.pen, start)
        elif self.kind == "ridge":
            W = newton.fit_ridge(self.Xa, self.targets, w, self.lam, self.pen)
        else:
            start_cq = start.reshape(self.n_classes, self.q)
            W = newton.fit_multinomial(self.Xa, self.targets, w, opts, self.pen, start_cq)
        return W.reshape(w.shape[0], self.dim)

    def intercept_direction(self) -> Tensor | None:
        """``u`` of the module docstring (multinomial with unpenalised intercept), else None."""
        if self.kind != "multinomial" or not bool(self.pen[-1] == 0):
            return None
        u = torch.zeros(self.dim, dtype=_DT, device=self.Xa.device)
        u[self.q - 1 :: self.q] = 1.0
        return u


# --------------------------------------------------------------------------- curvature


def _probabilities(problem: ConvexProblem, theta: Tensor) -> Tensor:
    """Multinomial class probabilities P (n, C) at flat ``theta``."""
    Theta = theta.reshape(problem.n_classes, problem.q)
    return torch.softmax(problem.Xa @ Theta.T, dim=1)


def _residuals_and_weights(problem: ConvexProblem, theta: Tensor) -> tuple[Tensor, Tensor]:
    """Binary/ridge: residuals ``r_i`` (g_i = r_i x_i) and curvature weights ``w_i``."""
    z = problem.Xa @ theta
    if problem.kind == "logistic":
        p = torch.sigmoid(z)
        return p - problem.targets, p * (1.0 - p)
    return z - problem.targets, torch.ones_like(z)


def per_sample_gradients(problem: ConvexProblem, theta: Tensor) -> Tensor:
    """``g_i = grad loss_i(theta)`` for every training point, (n, D) (no ridge term)."""
    if problem.kind == "multinomial":
        R = _probabilities(problem, theta) - problem.targets  # (n, C)
        return (R[:, :, None] * problem.Xa[:, None, :]).reshape(problem.n, problem.dim)
    r, _ = _residuals_and_weights(problem, theta)
    return r[:, None] * problem.Xa


def hessian_factors(problem: ConvexProblem, theta: Tensor, index: Tensor | None = None) -> Tensor:
    """``U_i`` (k, D, r) with ``H_i = U_i U_i^T`` for the points ``index`` (all if None)."""
    Xa = problem.Xa if index is None else problem.Xa[index]
    if problem.kind == "multinomial":
        P = _probabilities(problem, theta)
        P = P if index is None else P[index]
        s = P.sqrt()
        B = torch.diag_embed(s) - P[:, :, None] * s[:, None, :]  # (k, C, C)
        U = B[:, :, None, :] * Xa[:, None, :, None]  # (k, C, q, C)
        return U.reshape(Xa.shape[0], problem.dim, problem.rank)
    _, w = _residuals_and_weights(problem, theta)
    w = w if index is None else w[index]
    return (w.sqrt()[:, None] * Xa)[:, :, None]


def hessian(problem: ConvexProblem, theta: Tensor) -> Tensor:
    """The exact Hessian of ``L`` at ``theta`` (D, D): ``sum_i H_i + lam diag(pen)``.

    Multinomial with an unpenalised intercept: plus ``u u^T`` (see the module docstring).
    """
    Xa = problem.Xa
    if problem.kind == "multinomial":
        C, q = problem.n_classes, problem.q
        P = _probabilities(problem, theta)
        eye = torch.eye(C, dtype=_DT, device=Xa.device)
        S = P[:, :, None] * (eye - P[:, None, :])  # (n, C, C)
        H4 = torch.einsum("ncd,na,nb->cadb", S, Xa, Xa)
        H = H4.reshape(C * q, C * q) + torch.diag(problem.lam * problem.pen.repeat(C))
        u = problem.intercept_direction()
        if u is not None:
            H = H + torch.outer(u, u)
        return 0.5 * (H + H.T)
    _, w = _residuals_and_weights(problem, theta)
    H = Xa.T @ (w[:, None] * Xa) + torch.diag(problem.lam * problem.pen)
    return 0.5 * (H + H.T)


def _as_index(group: GroupLike, n: int, device: torch.device) -> Tensor:
    idx = torch.as_tensor(np.asarray(group) if not isinstance(group, Tensor) else group)
    idx = idx.reshape(-1).to(torch.long).to(device)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"group indices must lie in [0, {n})")
    if torch.unique(idx).numel() != idx.numel():
        raise ValueError("group indices must be distinct")
    return idx


def retrain_parameters(
    problem: ConvexProblem, groups: Sequence[GroupLike], theta0: Tensor | None = None
) -> Tensor:
    """Exact leave-``T``-out parameters (G, D), one per group, warm-started at ``theta0``."""
    masks = torch.ones(len(groups), problem.n, dtype=_DT, device=problem.Xa.device)
    for g, group in enumerate(groups):
        masks[g, _as_index(group, problem.n, problem.Xa.device)] = 0.0
    return problem.fit(masks, theta0)


# --------------------------------------------------------------------------- outputs


def task_output_function(task: ConvexTask) -> OutputFn:
    """The task's output function as a differentiable map (M, D) -> (M, T) (torch):
    :meth:`ConvexTask.output_tensor`, the map behind ``task.outputs_from_params``."""
    return task.output_tensor


# --------------------------------------------------------------------------- estimator


class ConvexInfluence:
    """IF / NS / RIF for one convex problem at its full-data solution ``theta``.

    Factors ``H`` once (Cholesky, O(nD^2 + D^3)); an IF costs one solve, a Woodbury NS
    for a group of k points O(D^2 kr + (kr)^3), a direct NS one O(D^3) factorisation.
    Parameter changes are returned as torch float64 tensors, output changes and removal
    effects as NumPy float64 arrays. See the module docstring for formulas and signs.
    """

    def __init__(
        self,
        problem: ConvexProblem,
        theta: Tensor | None = None,
        outputs: OutputFn | None = None,
    ) -> None:
        self.problem = problem
        if theta is None:
            ones = torch.ones(1, problem.n, dtype=_DT, device=problem.Xa.device)
            theta = problem.fit(ones)[0]
        self.theta = theta.reshape(-1).to(_DT)
        if self.theta.numel() != problem.dim:
            raise ValueError(f"theta must have {problem.dim} entries")
        self._outputs = outputs
        self.G = per_sample_gradients(problem, self.theta)
        self.H = hessian(problem, self.theta)
        chol, info = torch.linalg.cholesky_ex(self.H)
        if int(info) != 0:
            raise ValueError("the Hessian is not positive definite (lam = 0 and rank-deficient?)")
        self._chol = chol
        self._jacobian: Tensor | None = None
        self._f0: Tensor | None = None
        self._leverages: Tensor | None = None
        self._single: dict[str, Tensor] = {}

    @classmethod
    def from_task(cls, task: ConvexTask) -> ConvexInfluence:
        """Estimator for a :class:`ConvexTask` at ``task.full_data_solution()``."""
        return cls(
            ConvexProblem.from_task(task),
            task.full_data_solution().reshape(-1),
            task_output_function(task),
        )

    # -- basic pieces -------------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.problem.n

    @property
    def dim(self) -> int:
        return self.problem.dim

    def per_sample_gradients(self) -> Tensor:
        """``g_i`` (n, D) at ``theta``."""
        return self.G

    def hessian(self) -> Tensor:
        """``H`` (D, D) at ``theta`` (convention A; see :func:`hessian`)."""
        return self.H

    def solve(self, rhs: Tensor) -> Tensor:
        """``H^{-1} rhs`` for ``rhs`` (D,) or (D, m)."""
        b = rhs if rhs.dim() == 2 else rhs[:, None]
        out = torch.cholesky_solve(b, self._chol)
        return out if rhs.dim() == 2 else out[:, 0]

    def leverages(self) -> Tensor:
        """``h_i = w_i x_i^T H^{-1} x_i`` (n,) (binary logistic and ridge only)."""
        if self.problem.rank != 1:
            raise ValueError("scalar leverages exist for binary logistic and ridge only")
        if self._leverages is None:
            U = hessian_factors(self.problem, self.theta)[:, :, 0]  # (n, D)
            self._leverages = (U * self.solve(U.T).T).sum(dim=1)
        return self._leverages

    def _index(self, group: GroupLike) -> Tensor:
        return _as_index(group, self.n, self.theta.device)

    # -- parameter changes (delta = theta_{-T} - theta) ----------------------------------

    def influence_parameters(self, group: GroupLike) -> Tensor:
        """IF: ``delta_T = H^{-1} sum_{i in T} g_i`` (D,)."""
        idx = self._index(group)
        return self.solve(self.G[idx].sum(dim=0))

    def newton_step_parameters(
        self, group: GroupLike, method: Literal["direct", "woodbury"] = "woodbury"
    ) -> Tensor:
        """NS: ``delta_T = (H - sum_{i in T} U_i U_i^T)^{-1} sum_{i in T} g_i`` (D,).

        ``"direct"`` factors ``H_{-T}`` (O(D^3)); ``"woodbury"`` reuses the factor of
        ``H`` with the (kr x kr) core ``I - U_T^T H^{-1} U_T``.
        """
        idx = self._index(group)
        gsum = self.G[idx].sum(dim=0)
        if idx.numel() == 0:
            return torch.zeros_like(self.theta)
        U = hessian_factors(self.problem, self.theta, idx)  # (k, D, r)
        UT = U.permute(1, 0, 2).reshape(self.dim, -1)  # (D, kr)
        if method == "direct":
            chol, info = torch.linalg.cholesky_ex(self.H - UT @ UT.T)
            if int(info) != 0:
                raise ValueError("H_{-T} is not positive definite: too many points removed")
            return torch.cholesky_solve(gsum[:, None], chol)[:, 0]
        if method != "woodbury":
            raise ValueError(f"unknown Newton-step method {method!r}")
        v = self.solve(gsum)
        Z = self.solve(UT)  # (D, kr)
        core = torch.eye(UT.shape[1], dtype=_DT, device=UT.device) - UT.T @ Z
        correction: Tensor = Z @ torch.linalg.solve(core, UT.T @ v)
        return v + correction

    def rescaled_if_parameters(self, group: GroupLike) -> Tensor:
        """RIF: ``delta_T = sum_{i in T} H^{-1} g_i / (1 - h_i)`` (D,).

        (The sum of single-point Newton steps; for multinomial each term is the exact
        single-point NS with its C x C core.)
        """
        idx = self._index(group)
        return self.single_point_parameters("rif")[idx].sum(dim=0)

    def group_parameters(self, groups: Sequence[GroupLike], method: GroupMethod = "ns") -> Tensor:
        """``delta_T`` (G, D) for each group: ``"if"``, ``"ns"`` (Woodbury),
        ``"ns-direct"`` or ``"rif"``."""
        rows: list[Tensor] = []
        for group in groups:
            if method == "if":
                rows.append(self.influence_parameters(group))
            elif method == "ns":
                rows.append(self.newton_step_parameters(group, "woodbury"))
            elif method == "ns-direct":
                rows.append(self.newton_step_parameters(group, "direct"))
            elif method == "rif":
                rows.append(self.rescaled_if_parameters(group))
            else:
                raise ValueError(f"unknown method {method!r}")
        if not rows:
            return torch.zeros(0, self.dim, dtype=_DT, device=self.theta.device)
        return torch.stack(rows)

    def single_point_parameters(self, method: PointMethod = "ns") -> Tensor:
        """``delta_{i}`` (n, D) for removing each point alone.

        ``"if"``: ``H^{-1} g_i``; ``"ns"`` = ``"rif"``: ``H^{-1} g_i / (1 - h_i)``
        (Sherman-Morrison; multinomial: Woodbury with the C x C core per point).
        """
        if method not in ("if", "ns", "rif"):
            raise ValueError(f"unknown method {method!r}")
        key = "if" if method == "if" else "ns"
        if key not in self._single:
            V = self.solve(self.G.T).T  # (n, D)
            if key == "if":
                self._single[key] = V
            elif self.problem.rank == 1:
                self._single[key] = V / (1.0 - self.leverages())[:, None]
            else:
                self._single[key] = self._single_point_woodbury(V)
        return self._single[key]

    def _single_point_woodbury(self, V: Tensor, chunk: int = 256) -> Tensor:
        out = torch.empty_like(V)
        r = self.problem.rank
        eye = torch.eye(r, dtype=_DT, device=V.device)
        for start in range(0, self.n, chunk):
            idx = torch.arange(start, min(start + chunk, self.n), device=V.device)
            U = hessian_factors(self.problem, self.theta, idx)  # (k, D, r)
            k = U.shape[0]
            Z = self.solve(U.permute(1, 0, 2).reshape(self.dim, k * r))
            Z = Z.reshape(self.dim, k, r).permute(1, 0, 2)  # (k, D, r)
            core = eye - U.transpose(1, 2) @ Z  # (k, r, r)
            Vb = V[idx]
            coef = torch.linalg.solve(core, (U.transpose(1, 2) @ Vb[:, :, None]))
            out[idx] = Vb + (Z @ coef)[:, :, 0]
        return out

    def retrain_parameters(self, groups: Sequence[GroupLike]) -> Tensor:
        """Exact ``theta_{-T} - theta`` (G, D) by retraining, warm-started at ``theta``."""
        return retrain_parameters(self.problem, groups, self.theta) - self.theta

    # -- outputs --------------------------------------------------------------------------

    def _output_fn(self) -> OutputFn:
        if self._outputs is None:
            raise ValueError("no output function: pass outputs= or use from_task")
        return self._outputs

    def outputs(self, params: Tensor) -> Tensor:
        """``f(V)`` (M, T) for flat parameters (M, D)."""
        return self._output_fn()(params)

    def base_outputs(self) -> Tensor:
        """``f(theta)`` (T,)."""
        if self._f0 is None:
            self._f0 = self.outputs(self.theta[None])[0]
        return self._f0

    def output_jacobian(self) -> Tensor:
        """``J = df/dtheta`` (T, D) at ``theta`` (autograd; zero rows where f is clipped)."""
        if self._jacobian is None:
            fn = self._output_fn()
            theta = self.theta.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                f = fn(theta[None])[0]
                rows = [
                    torch.autograd.grad(f[t], theta, retain_graph=True, allow_unused=True)[0]
                    for t in range(f.shape[0])
                ]
            self._jacobian = torch.stack(
                [torch.zeros_like(self.theta) if g is None else g.detach() for g in rows]
            )
        return self._jacobian

    def output_changes(self, delta: Tensor, mode: OutputMode = "evaluated") -> FloatArray:
        """Output changes (M, T) for parameter changes ``delta`` (M, D) or (D,).

        ``"evaluated"``: ``f(theta + delta) - f(theta)``; ``"linear"``: ``delta @ J^T``.
        """
        d = delta if delta.dim() == 2 else delta[None]
        if mode == "evaluated":
            with torch.no_grad():
                out = self.outputs(self.theta[None] + d) - self.base_outputs()[None]
        elif mode == "linear":
            out = d @ self.output_jacobian().T
        else:
            raise ValueError(f"unknown output mode {mode!r}")
        return np.asarray(out.detach().cpu().numpy(), dtype=np.float64)

    def removal_effects(
        self, method: PointMethod = "ns", mode: OutputMode = "evaluated"
    ) -> FloatArray:
        """``Delta_i = f(theta_{-i}) - f(theta)`` estimated for every point: (T, N).

        Positive = removing point i raises the output (the contribution is ``-Delta``).
        """
        delta = self.single_point_parameters(method)
        return np.ascontiguousarray(self.output_changes(delta, mode).T)


def to_attribution(
    removal: FloatArray,
    masks: npt.NDArray[np.bool_],
    outputs: FloatArray,
    *,
    shared_scale: bool = False,
) -> Calibration:
    """Protocol attribution from full-data removal effects ``removal`` (T, N).

    The contribution is ``c_i = -Delta_i`` (positive = including point i raises the
    output); ``c`` is then calibrated on B_p runs ``masks`` (R, N), ``outputs`` (R, T):
    ``f_t ~ alpha_t + beta_t <c_t, x>``. The result's ``attribution``
    is the (T, 1 + N) array ``[a0 | a]`` with ``a0 = alpha``, ``a = beta * c``.
    """
    return calibrate(
        -np.asarray(removal, dtype=np.float64), masks, outputs, shared_scale=shared_scale
    )

"""Influence functions with curvature backends, and Grad-Dot, for MLP and convex tasks.

Setting
-------
A trained model ``theta`` (flat, P parameters; :class:`~attribution.estimators.curvature.
LinearNet` layout) minimises the training objective of its trainer, written
(:class:`~attribution.estimators.curvature.Objective`) as ::

    L(theta) = s * sum_i loss_i(theta) + (1/2) sum_j r_j theta_j^2

* MLP tasks (:mod:`attribution.training.mlp`): ``s = 1/n`` with n = *all* training points
  (the trainer divides by n, not by the subset size), ``loss_i = CE_i``, ``r = l2``;
* convex tasks (:mod:`attribution.training.newton`): ``s = 1`` (sum form), ``r = lam *
  pen`` (intercept unpenalised); ``loss_i`` = logistic, softmax-CE or squared loss.

Removal effect and its sign (derivation)
----------------------------------------
Removing point i removes the term ``s * loss_i`` from the objective (the scale ``s`` is
*not* renormalised: the MLP trainer keeps dividing by n). With ``g_i = grad loss_i``
(unscaled) and ``grad L(theta) = 0``::

    L_{-i} = L - s loss_i,   grad L_{-i}(theta) = -s g_i,   hess L_{-i} ~ H
    theta_{-i} - theta ~ -H^{-1} grad L_{-i}(theta) = + s H^{-1} g_i        (one Newton step)
    Delta_i(z) = f(z; theta_{-i}) - f(z; theta) ~ + s * grad f(z)^T H^{-1} g_i

so for the MLP ``Delta_i ~ +(1/n) grad f^T H^{-1} g_i`` with the mean-form Hessian
``H = (1/n) sum_j hess CE_j + l2 I`` (equivalently ``+grad f^T H_sum^{-1} g_i`` with the
sum-form Hessian ``n H``; Koh and Liang's ``I_up = -H_mean^{-1} g_i`` has the opposite sign
because it *up*-weights). Positive ``Delta_i`` = removing i raises the output. ``H`` is
replaced by a damped curvature ``C + lambda I`` from a backend of
:mod:`~attribution.estimators.curvature` (exact Hessian, GGN, CG, LiSSA, Arnoldi, K-FAC,
EK-FAC); Grad-Dot uses ``C + lambda I = I``: ``Delta_i ~ s grad f^T g_i``.

The MLP is trained for a fixed number of Adam steps, so ``grad L(theta)`` is small but not
zero and ``H`` may be indefinite; the damping makes the solve well posed (for CG/LiSSA
only when it lifts every eigenvalue above 0). The measurement ``f`` is the task's
output vector: the correct-class margin ``z_y - logsumexp_{k != y} z_k`` of every
validation point, their mean (if the task has it), clipped to ``[-b, b]`` (a clipped
output has gradient 0 and removal effect 0).

Outputs of this module are removal effects ``Delta`` (T, N) (NumPy float64, orientation
(outputs, N)); the registry turns them into the protocol attribution with ``c = -Delta``
and the B_p calibration (positive a_i = including i raises the output).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.func import jacrev

from attribution.estimators.convex import task_output_function
from attribution.estimators.curvature import (
    InverseHVP,
    LinearNet,
    Objective,
    make_ihvp,
    per_example_gradients,
)
from attribution.subsets import bind_digest, int_seed, seed_to_u64, training_seed
from attribution.tasks.runtime import ConvexTask, MLPTask
from attribution.training.outputs import binary_margins, finish_outputs, multiclass_margins

__all__ = [
    "DEFAULT_DAMPING",
    "DEFAULT_OPTIONS",
    "MAX_EXPLICIT_PARAMS",
    "InfluenceModel",
    "convex_task_model",
    "full_data_mlp",
    "grad_dot_effects",
    "influence_effects",
    "mlp_model",
    "mlp_task_model",
]

FloatArray = npt.NDArray[np.float64]
_DT = torch.float64

DEFAULT_DAMPING: dict[str, float] = {"mlp": 1e-3, "convex": 1e-6}
"""Damping lambda added to the curvature, per task family, on the objective's own scale
(MLP: mean form, so relative to ``l2 = 1e-4`` of ``digits-mlp``; convex: sum form, where
the ridge is ``lam = 1``: the tiny value only regularises the multinomial intercept
direction along which the sum-form Hessian is singular, see
:mod:`attribution.estimators.convex`). Chosen on ``digits-mlp``: docs/lds-benchmark.md."""

DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "explicit": {},
    "ggn": {},
    "cg": {"tol": 1e-8, "max_iter": 500},
    "lissa": {"depth": 300, "batch_size": 256, "repeats": 1, "seed": 0},
    "arnoldi": {"rank": 100, "n_iter": 200, "seed": 0},
    "kfac": {},
    "ekfac": {},
}
"""Backend options used by :func:`influence_effects` unless overridden."""

MAX_EXPLICIT_PARAMS = 10_000
"""Largest P for the ``explicit`` / ``ggn`` backends (a P x P float64 matrix: 0.8 GB)."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class InfluenceModel:
    """A trained model with its training objective and its measurement ``f``.

    ``net`` maps ``(theta, X)`` to logits; ``theta`` (P,) float64; ``objective`` the
    training objective on the N training points; ``outputs(theta) -> (T,)`` the
    differentiable measurement (the task's outputs).
    """

    net: LinearNet
    theta: Tensor
    objective: Objective
    outputs: Callable[[Tensor], Tensor]

    @property
    def n_params(self) -> int:
        return int(self.theta.numel())

    def loss_gradients(self) -> Tensor:
        """``g_i = grad_theta loss_i`` (N, P), unscaled."""
        return per_example_gradients(self.net, self.theta, self.objective)

    def output_gradients(self) -> Tensor:
        """``grad_theta f_t`` (T, P) (zero rows for outputs clipped at ``theta``)."""
        J: Tensor = jacrev(self.outputs)(self.theta.detach())
        return J.detach()

    def ihvp(self, backend: str, damping: float, **opts: Any) -> InverseHVP:
        """:func:`~attribution.estimators.curvature.make_ihvp` at ``theta``."""
        return make_ihvp(backend, self.net, self.theta, self.objective, damping, **opts)

    def removal_effects(
        self, ihvp: Callable[[Tensor], Tensor] | None, grads: Tensor | None = None
    ) -> Tensor:
        """``Delta_ti = s * grad f_t^T C_lambda^{-1} g_i`` (T, N); ``ihvp=None``: Grad-Dot.

        The inverse is applied to the T output gradients (C is symmetric), then dotted
        with the N loss gradients ``grads`` (computed if not given).
        """
        G = self.loss_gradients() if grads is None else grads
        J = self.output_gradients()
        V = J if ihvp is None else ihvp(J)
        return (V @ G.T) * self.objective.data_scale


def mlp_model(
    params: Mapping[str, Tensor],
    X: Tensor,
    y: Tensor,
    l2: float,
    X_val: Tensor,
    y_val: Tensor,
    *,
    with_mean: bool = True,
    bound: float = float("inf"),
) -> InfluenceModel:
    """:class:`InfluenceModel` of one trained MLP (``params`` unstacked, any dtype).

    Objective ``(1/n) sum_i CE_i + (l2/2) |theta|^2`` on ``(X, y)`` (n = ``len(X)``);
    outputs: correct-class margins on ``(X_val, y_val)``, then the mean (if
    ``with_mean``), clipped to ``[-bound, bound]`` (as :mod:`attribution.training.outputs`).
    """
    net = LinearNet.from_params(params)
    theta = net.flatten({k: v.detach() for k, v in params.items()})
    Xv = X_val.to(device=theta.device, dtype=_DT)
    yv = y_val.to(device=theta.device, dtype=torch.int64)

    def outputs(t: Tensor) -> Tensor:
        margins = multiclass_margins(net(t, Xv)[None], yv)
        return finish_outputs(margins, with_mean, bound)[0]

    objective = Objective.for_mlp(X.to(theta.device), y.to(theta.device), l2)
    return InfluenceModel(net, theta, objective, outputs)


def mlp_task_model(task: MLPTask, params: Mapping[str, Tensor]) -> InfluenceModel:
    """:func:`mlp_model` with the task's data, ridge and output function."""
    return mlp_model(
        params,
        task.Xt,
        task.yt_ids,
        task.config.l2,
        task.Xv,
        task.yv_ids,
        with_mean=task.spec.output.mean,
        bound=task.spec.output.bound,
    )


def full_data_seed(task: MLPTask | ConvexTask, seed: int) -> int:
    """u64 training seed of the full-data model: ``XOF("seed", u64be(seed),
    bind_digest(task digest, b"full-model"), [0])`` (its own derivation domain)."""
    return seed_to_u64(training_seed(int_seed(seed), bind_digest(task.digest, b"full-model"), [0]))


def full_data_mlp(task: MLPTask, seed: int) -> dict[str, Tensor]:
    """The MLP trained on every point (the task's recipe) with :func:`full_data_seed`."""
    ones = np.ones((1, task.n_points), dtype=np.bool_)
    stacked = task.fit_params(ones, [full_data_seed(task, seed)])
    return {k: v[0] for k, v in stacked.items()}


def convex_task_model(task: ConvexTask, theta: Tensor | None = None) -> InfluenceModel:
    """:class:`InfluenceModel` of a convex task at ``theta`` (default: its full-data fit).

    Linear model ``z = Xa W^T`` (no separate bias: ``Xa`` carries the intercept column),
    sum-form objective with ridge ``lam * pen`` (multinomial: per class), the task's
    output function (:func:`~attribution.estimators.convex.task_output_function`).
    """
    kind = task.spec.training.trainer
    q = int(task.Xa.shape[1])
    if kind == "multinomial":
        K, loss, y = task.n_classes, "ce", task.Y.argmax(dim=1)
    elif kind == "logistic":
        K, loss, y = 1, "bce", task.y
    elif kind == "ridge":
        K, loss, y = 1, "mse", task.y
    else:
        raise ValueError(f"not a convex trainer: {kind!r}")
    th = task.full_data_solution() if theta is None else theta
    th = th.reshape(-1).to(_DT)
    reg = (task.opts.lam * task.pen).repeat(K)
    objective = Objective(task.Xa, y, loss, 1.0, reg)  # type: ignore[arg-type]
    fn = task_output_function(task)

    def outputs(t: Tensor) -> Tensor:
        return fn(t[None])[0]

    return InfluenceModel(LinearNet((q, K), bias=False), th, objective, outputs)


def task_model(task: MLPTask | ConvexTask, seed: int) -> tuple[InfluenceModel, dict[str, Any]]:
    """The full-data model of ``task`` (MLP: trained with :func:`full_data_seed`)."""
    if isinstance(task, MLPTask):
        s = full_data_seed(task, seed)
        return mlp_task_model(task, full_data_mlp(task, seed)), {"model_seed": s}
    return convex_task_model(task), {"model": "full-data Newton fit"}


def _family(task: MLPTask | ConvexTask) -> str:
    return "mlp" if isinstance(task, MLPTask) else "convex"


def influence_effects(
    task: MLPTask | ConvexTask,
    backend: str,
    seed: int,
    damping: float | None = None,
    **opts: Any,
) -> tuple[FloatArray, dict[str, Any]]:
    """IF removal effects ``Delta`` (T, N) of the full-data model with ``backend``.

    ``damping`` defaults to :data:`DEFAULT_DAMPING` of the task family, ``opts`` to
    :data:`DEFAULT_OPTIONS`. Returns ``(Delta, metadata)``; the metadata records the
    formula, the backend, damping, options, diagnostics and timings.
    """
    lam = DEFAULT_DAMPING[_family(task)] if damping is None else float(damping)
    options = {**DEFAULT_OPTIONS.get(backend, {}), **opts}
    t0 = time.perf_counter()
    model, meta = task_model(task, seed)
    t1 = time.perf_counter()
    if backend in ("explicit", "ggn") and model.n_params > MAX_EXPLICIT_PARAMS:
        raise ValueError(
            f"the {backend} backend builds a {model.n_params} x {model.n_params} matrix; "
            f"use it for at most {MAX_EXPLICIT_PARAMS} parameters (try cg, arnoldi or ekfac)"
        )
    if backend == "arnoldi":
        options["rank"] = min(int(options.get("rank", 50)), model.n_params)
    ihvp = model.ihvp(backend, lam, **options)
    t2 = time.perf_counter()
    delta = model.removal_effects(ihvp)
    t3 = time.perf_counter()
    shown = {k: v for k, v in options.items() if k != "matrix"}
    return np.ascontiguousarray(delta.cpu().numpy(), dtype=np.float64), {
        **meta,
        "removal": "Delta_i = s grad f^T (C + damping I)^-1 g_i (linearised, one model)",
        "data_scale": model.objective.data_scale,
        "backend": backend,
        "damping": lam,
        "backend_options": shown,
        "backend_info": dict(ihvp.info),
        "seconds_train": t1 - t0,
        "seconds_curvature": t2 - t1,
        "seconds_scores": t3 - t2,
    }


def grad_dot_effects(task: MLPTask | ConvexTask, seed: int) -> tuple[FloatArray, dict[str, Any]]:
    """Grad-Dot: ``Delta_i = s grad f^T g_i`` (H replaced by I) at the full-data model."""
    model, meta = task_model(task, seed)
    delta = model.removal_effects(None)
    return np.ascontiguousarray(delta.cpu().numpy(), dtype=np.float64), {
        **meta,
        "removal": "Delta_i = s grad f^T g_i (Grad-Dot, curvature = identity)",
        "data_scale": model.objective.data_scale,
    }


def binary_or_multiclass_margin(net_out: Tensor, y: Tensor, loss: str) -> Tensor:
    """Correct-class margins (n,) of logits ``net_out`` (n, K): ``"ce"`` multiclass,
    ``"bce"`` binary ``(2y - 1) z``."""
    if loss == "ce":
        return multiclass_margins(net_out[None], y)[0]
    if loss == "bce":
        return binary_margins(net_out[None, :, 0], y)[0]
    raise ValueError(f"margins need a classification loss, got {loss!r}")

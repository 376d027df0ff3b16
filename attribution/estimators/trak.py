"""TRAK (Park et al. 2023) for the MLP and the logistic tasks.

For each of M checkpoints ``theta_m`` (models trained by the task's own recipe on random
subsets ``x ~ B_p`` with their own seeds: rows ``0..M-1`` of the fitting plan) ::

    phi_m(z)  = P_m^T grad_theta f(z; theta_m)          P_m (P x k), entries N(0, 1) / sqrt(k)
    Phi_m     = [P_m^T grad_theta m(z_i; theta_m)]_i     (N x k), m = training margin
    Q_m       = diag(1 - p_m(z_i))                       p = sigmoid(m) = correct-class prob.
    tau       = [ (1/M) sum_m phi_m(z)^T (Phi_m^T Phi_m + ridge I)^-1 Phi_m^T ] [ (1/M) sum_m Q_m ]

* ``f(z)`` is the measured output (the task's clipped validation margins and their
  mean; a clipped output has gradient 0); the training-side function is the
  correct-class margin ``m = log p_y - log(1 - p_y)`` (multiclass ``z_y -
  logsumexp_{k != y} z_k``, binary ``(2y - 1) z``), whose loss derivative is
  ``d CE / d m = -(1 - p)``: hence ``Q``.
* Orientation: ``tau`` (T, N) is a *contribution* (positive = training on ``z_i``
  raises ``f(z)``): for one binary logistic model without projection it is the one-step
  Newton estimate of ``-Delta_i`` with the weights ``p(1 - p)`` of the Gram matrix and
  the leverage factor dropped. The removal effect returned to the
  registry is ``Delta = -tau`` (its scale is arbitrary; the B_p calibration fixes it).
* ``ridge`` = ``rel_ridge * trace(Phi^T Phi) / k`` (default ``rel_ridge = 1e-8``: only
  guards against a singular Gram matrix, TRAK's ``lambda = 0`` otherwise).
* Projections: ``P_m`` is drawn on the CPU from ``torch.Generator().manual_seed(s_m)``
  in float64 and then moved to the device, so CPU and CUDA use the *same* matrix (unlike
  the traker library, whose CUDA and CPU projectors differ). ``s_m`` =
  :func:`projection_seed` ``(seed, m)``. ``k = min(proj_dim, P)``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.func import grad, vmap

from attribution.encoding import TAG_TRAK_PROJECTION, domain_hash
from attribution.estimators.gradient import (
    InfluenceModel,
    binary_or_multiclass_margin,
    convex_task_model,
    mlp_task_model,
)
from attribution.execution.plan import retrain_plan
from attribution.subsets import seed_to_u64
from attribution.tasks.runtime import ConvexTask, MLPTask

__all__ = [
    "DEFAULT_CHECKPOINTS",
    "DEFAULT_PROJ_DIM",
    "checkpoint_models",
    "projection_matrix",
    "projection_seed",
    "train_features",
    "trak_effects",
    "trak_scores",
]

FloatArray = npt.NDArray[np.float64]
_DT = torch.float64
DEFAULT_CHECKPOINTS = 10
DEFAULT_PROJ_DIM = 512
DEFAULT_REL_RIDGE = 1e-8


def projection_seed(seed: int, checkpoint: int) -> int:
    """Seed of checkpoint ``m``'s projection: the first 8 bytes (big-endian, top bit
    cleared) of ``SHA-256("attribution.v1/trak-projection" || u64be(seed) || u64be(m))``."""
    digest = domain_hash(
        TAG_TRAK_PROJECTION, struct.pack(">QQ", seed % (1 << 64), checkpoint), terminated=False
    )
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def projection_matrix(
    n_params: int, dim: int, seed: int, device: torch.device | str | None = None
) -> Tensor:
    """``P`` (n_params, dim) float64 with i.i.d. ``N(0, 1) / sqrt(dim)`` entries.

    Drawn on the CPU from ``torch.Generator().manual_seed(seed)``, then moved to
    ``device``: identical on every device for the same ``(n_params, dim, seed)``.
    """
    if n_params < 1 or dim < 1:
        raise ValueError("n_params and dim must be >= 1")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    P = torch.randn(n_params, dim, generator=gen, dtype=_DT) / float(np.sqrt(dim))
    return P if device is None else P.to(device)


def train_features(model: InfluenceModel) -> tuple[Tensor, Tensor]:
    """``grad_theta m(z_i)`` (N, P) of the training margins and ``p_i = sigmoid(m_i)`` (N,)."""
    obj = model.objective
    if obj.loss not in ("ce", "bce"):
        raise ValueError("TRAK needs a classification model (softmax or logistic)")
    net = model.net

    def margin_one(t: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return binary_or_multiclass_margin(net(t, x[None]), y[None], obj.loss)[0]

    th = model.theta.detach()
    G = vmap(grad(margin_one), in_dims=(None, 0, 0))(th, obj.X, obj.y)
    with torch.no_grad():
        margins = binary_or_multiclass_margin(net(th, obj.X), obj.y, obj.loss)
    return G.detach(), torch.sigmoid(margins)


def trak_scores(
    models: Sequence[InfluenceModel],
    proj_dim: int = DEFAULT_PROJ_DIM,
    seed: int = 0,
    rel_ridge: float = DEFAULT_REL_RIDGE,
) -> Tensor:
    """TRAK contribution scores ``tau`` (T, N) over the checkpoints ``models``."""
    if not models:
        raise ValueError("TRAK needs at least one checkpoint")
    terms: list[Tensor] = []
    weights: list[Tensor] = []
    for m, model in enumerate(models):
        P = model.n_params
        k = min(int(proj_dim), P)
        proj = projection_matrix(P, k, projection_seed(seed, m), model.theta.device)
        G, p = train_features(model)
        Phi = G @ proj  # (N, k)
        phi = model.output_gradients() @ proj  # (T, k)
        K = Phi.T @ Phi
        ridge = rel_ridge * float(torch.trace(K)) / k
        K = K + ridge * torch.eye(k, dtype=_DT, device=K.device)
        chol, info = torch.linalg.cholesky_ex(K)
        if int(info) == 0:
            W = torch.cholesky_solve(phi.T, chol).T  # (T, k)
        else:
            W = (torch.linalg.pinv(K, hermitian=True) @ phi.T).T
        terms.append(W @ Phi.T)  # (T, N)
        weights.append(1.0 - p)
    return torch.stack(terms).mean(dim=0) * torch.stack(weights).mean(dim=0)[None, :]


def checkpoint_models(
    task: MLPTask | ConvexTask, count: int, seed: int
) -> tuple[list[InfluenceModel], npt.NDArray[np.bool_]]:
    """``count`` checkpoints: the task's recipe on rows ``0..count-1`` of the fitting plan
    ``retrain_plan(task, count, p, seed)`` (masks and training seeds); also the masks."""
    plan = retrain_plan(task.digest, task.n_points, count, task.spec.p, seed)
    rows = list(range(count))
    masks = plan.masks(rows)
    if isinstance(task, MLPTask):
        stacked = task.fit_params(masks, [seed_to_u64(s) for s in plan.seeds(rows)])
        return [
            mlp_task_model(task, {k: v[m] for k, v in stacked.items()}) for m in range(count)
        ], masks
    W = task.fit_params(masks).reshape(count, -1)
    return [convex_task_model(task, W[m]) for m in range(count)], masks


def trak_effects(
    task: MLPTask | ConvexTask,
    seed: int,
    checkpoints: int = DEFAULT_CHECKPOINTS,
    proj_dim: int = DEFAULT_PROJ_DIM,
    rel_ridge: float = DEFAULT_REL_RIDGE,
) -> tuple[FloatArray, dict[str, Any]]:
    """TRAK removal effects ``Delta = -tau`` (T, N) and metadata."""
    if checkpoints < 1:
        raise ValueError("checkpoints must be >= 1")
    t0 = time.perf_counter()
    models, _ = checkpoint_models(task, checkpoints, seed)
    t1 = time.perf_counter()
    tau = trak_scores(models, proj_dim, seed, rel_ridge)
    t2 = time.perf_counter()
    return np.ascontiguousarray(-tau.cpu().numpy(), dtype=np.float64), {
        "removal": "Delta = -tau, tau = TRAK contribution (Park et al. 2023, margin features)",
        "checkpoints": checkpoints,
        "checkpoint_rows": f"fitting plan rows 0..{checkpoints - 1}",
        "proj_dim": min(proj_dim, models[0].n_params),
        "projection": "N(0,1)/sqrt(k), CPU torch.Generator, seed = projection_seed(seed, m)",
        "rel_ridge": rel_ridge,
        "seconds_train": t1 - t0,
        "seconds_scores": t2 - t1,
    }

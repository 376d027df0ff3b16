"""Inverse-Hessian(-like)-vector products on a trained model's flat parameters.

One interface for every curvature backend::

    ihvp = make_ihvp(backend, model_fn, params, objective, damping, **opts)
    x = ihvp(v)            # v (P,) or (K, P)  ->  x of the same shape, x ~ (C + damping I)^-1 v

Objective
---------
``model_fn(theta, X)`` maps flat parameters ``theta`` (P,) and inputs ``X`` (n, d) to
outputs ``z`` (n, K) (logits; one column for the binary and squared losses). The
training objective is (:class:`Objective`)::

    L(theta) = s * sum_i loss_i(theta) + (1/2) sum_j r_j theta_j^2

with ``s = data_scale`` and the diagonal ridge ``r = reg`` (a scalar or a (P,) vector).
The MLP trainer (:mod:`attribution.training.mlp`) uses ``s = 1/n`` (n = all training
points) and ``r = l2`` on every weight and bias (:meth:`Objective.for_mlp`); the convex
trainers (:mod:`attribution.training.newton`) use ``s = 1`` and ``r = lam * pen`` (no
ridge on the intercept). Losses (``Objective.loss``), with their output Hessians
``Lambda_i = d^2 loss_i / dz^2 = B_i B_i^T``:

* ``"ce"``: softmax cross-entropy ``logsumexp_k z_ik - z_{i,y_i}`` (y int64 class ids);
  ``Lambda_i = diag(p_i) - p_i p_i^T``, ``B_i = diag(sqrt p_i) - p_i sqrt(p_i)^T``;
* ``"bce"``: binary logistic ``log(1 + e^z) - y z`` (one logit, y in {0, 1});
  ``Lambda_i = p(1 - p)``;
* ``"mse"``: ``(z - y)^2 / 2`` (one output); ``Lambda_i = 1``.

Curvatures ``C`` (all include the ridge ``diag(r)``; the damping ``lambda`` is added on
top: ``C_lambda = C + lambda I``)::

    Hessian  H = s sum_i d^2 loss_i / dtheta^2 + diag(r)
    GGN      G = s sum_i J_i^T Lambda_i J_i + diag(r)       J_i = dz_i / dtheta  (K x P)

For models linear in ``theta`` (logistic / multinomial / ridge regression) ``G == H``
exactly; for an MLP ``H - G`` is the residual term ``s sum_i sum_k (dloss_i/dz_ik)
d^2 z_ik / dtheta^2``, which makes ``H`` indefinite away from a minimum.

Backends (``make_ihvp(backend, ...)``)
--------------------------------------
``explicit``
    ``H`` built with :func:`torch.func.hessian` (summed over chunks of examples), then
    ``C_lambda = V diag(mu) V^T`` (``eigh``) and ``x = V diag(1/mu) V^T v``. Works for an
    indefinite ``C_lambda`` as long as no ``mu`` is 0; ``info`` records the spectrum.
    Cost O(P n (forward+backward)) + O(P^3); feasible for P up to a few thousand.
``ggn``
    The same with ``G`` (explicit ``sum_i (J_i^T B_i)(J_i^T B_i)^T``); PSD, so ``C_lambda``
    is positive definite for ``lambda + min r > 0``.
``cg``
    Conjugate gradients on ``C_lambda x = v`` with Hessian-vector products
    (reverse-over-reverse on a retained autograd graph, :func:`curvature_operator`) or
    GGN-vector products (``J v``, ``Lambda``, ``J^T``), ``opts``: ``curvature`` ("hessian" | "ggn"),
    ``tol`` (relative residual, default 1e-10), ``max_iter`` (default 1000). Each column
    runs its own CG; a column whose curvature ``p^T C_lambda p`` turns non-positive stops
    there (``info["indefinite_columns"]``). Exact in at most P steps in exact arithmetic.
``lissa``
    Agarwal et al. 2017: ``x_0 = v``, ``x_j = v + (I - C_lambda^B / S) x_{j-1}``, return
    ``x_J / S``, averaged over ``repeats``; ``C^B`` uses a minibatch of ``batch_size``
    examples drawn without replacement (data term rescaled by ``n / |B|`` so that it is
    unbiased; ``None`` = full batch). The fixed point is ``S C_lambda^-1 v``; it converges
    when ``S > |eigenvalue|_max(C_lambda)`` and ``C_lambda`` is positive definite, at the
    rate ``(1 - mu_min / S)^J``. ``opts``: ``scale`` S (default 1.1 x the largest
    absolute eigenvalue of ``C_lambda``, from 50 power iterations), ``depth`` J (1000),
    ``repeats`` (1), ``batch_size`` (None), ``seed`` (0: minibatches from a CPU
    ``torch.Generator``, restarted on every call, so equal inputs give equal outputs),
    ``curvature``.
``arnoldi``
    Schioppa et al. 2022: ``n_iter`` Arnoldi steps (symmetric matrix: Lanczos with full
    re-orthogonalisation) from a seeded random start on the undamped curvature give Ritz
    pairs ``(mu_j, u_j)``; keep the ``rank`` of largest ``|mu_j|`` and use
    ``C_lambda^-1 ~ U diag(1 / (mu + lambda)) U^T`` (the complement of the Krylov
    subspace is *dropped*, as in the paper). ``opts``: ``rank`` (50), ``n_iter``
    (max(2 rank, rank + 20), capped at P), ``seed`` (0), ``curvature``.
``kfac`` / ``ekfac``
    Martens & Grosse 2015 / George et al. 2018, Grosse et al. 2023, for a
    :class:`LinearNet` (``model_fn`` must be one). Per linear layer l with input ``a``
    (bias-augmented ``a~ = [a, 1]``) and pre-activation ``u``, the layer's block of ``G``
    is ``s sum_i sum_r (g_ir g_ir^T) (x) (a~_i a~_i^T)`` with ``g_ir = du_i/dz_i^T B_i[:, r]``
    (the pre-activation "gradients" of the GGN's square-root factor: the *true* Fisher,
    with the expectation over the model's labels taken exactly, not sampled). K-FAC::

        A = (1/n) sum_i a~_i a~_i^T = Q_A diag(l_A) Q_A^T
        S = (1/n) sum_i sum_r g_ir g_ir^T = Q_S diag(l_S) Q_S^T
        block ~ s n  S (x) A,   eigenvalues  s n  l_S[j] l_A[k]

    EK-FAC keeps the basis ``Q_S (x) Q_A`` and refits the eigenvalues to the best
    diagonal in that basis: ``s sum_i sum_r (Q_S^T g_ir)_j^2 (Q_A^T a~_i)_k^2``. The ridge
    enters through its diagonal in the same basis, ``(Q_S^2)^T R (Q_A^2)`` (R = the
    layer's ridge entries as an out x (in + 1) matrix; exact for a scalar ridge).
    iHVP per layer, for the layer's slice V (out x (in + 1)) of v::

        x = Q_S [ (Q_S^T V Q_A) / (Lambda + lambda) ] Q_A^T

    Blocks of different layers are independent (block-diagonal approximation).

Every backend works in float64 on the device of ``params`` (CPU or CUDA, the same code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor
from torch.func import grad, jacrev, vjp, vmap

__all__ = [
    "BACKENDS",
    "InverseHVP",
    "LayerSlice",
    "LinearNet",
    "Objective",
    "curvature_operator",
    "ggn_matrix",
    "hessian_matrix",
    "make_ihvp",
    "per_example_gradients",
]

LossKind = Literal["ce", "bce", "mse"]
Backend = Literal["explicit", "ggn", "cg", "lissa", "arnoldi", "kfac", "ekfac"]
CurvatureKind = Literal["hessian", "ggn"]
ModelFn = Callable[[Tensor, Tensor], Tensor]
"""``model_fn(theta (P,), X (n, d)) -> outputs (n, K)``, differentiable, pure torch."""
MatVec = Callable[[Tensor], Tensor]
"""A symmetric linear operator on (K, P) stacks of vectors."""

BACKENDS: tuple[str, ...] = ("explicit", "ggn", "cg", "lissa", "arnoldi", "kfac", "ekfac")
_DT = torch.float64


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class LayerSlice:
    """Where one linear layer lives in the flat parameter vector.

    The weight (``fan_out x fan_in``, row-major) starts at ``weight``; the bias
    (``fan_out``) at ``bias`` (``None``: no bias).
    """

    fan_in: int
    fan_out: int
    weight: int
    bias: int | None

    @property
    def n_in(self) -> int:
        """Columns of the bias-augmented weight ``[W | b]``."""
        return self.fan_in + (1 if self.bias is not None else 0)

    def gather(self, v: Tensor) -> Tensor:
        """The layer's entries of ``v`` (B, P) as ``[W | b]`` matrices (B, out, n_in)."""
        B = v.shape[0]
        W = v[:, self.weight : self.weight + self.fan_out * self.fan_in]
        W = W.reshape(B, self.fan_out, self.fan_in)
        if self.bias is None:
            return W
        b = v[:, self.bias : self.bias + self.fan_out]
        return torch.cat([W, b[:, :, None]], dim=2)

    def scatter(self, M: Tensor, out: Tensor) -> None:
        """Write ``[W | b]`` matrices ``M`` (B, out, n_in) into the rows of ``out`` (B, P)."""
        B = M.shape[0]
        out[:, self.weight : self.weight + self.fan_out * self.fan_in] = M[
            :, :, : self.fan_in
        ].reshape(B, -1)
        if self.bias is not None:
            out[:, self.bias : self.bias + self.fan_out] = M[:, :, self.fan_in]


@dataclass(frozen=True)
class LinearNet:
    """``Linear(w_0, w_1) -> ReLU -> ... -> Linear(w_{L-1}, w_L)`` on flat parameters.

    ``widths = (d, h_1, ..., K)``; layer l's weight then bias are stored consecutively,
    layer by layer, which is the order of :func:`attribution.training.mlp.init_params`
    (``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...). With ``bias=False`` and one layer
    it is the linear model ``z = X W^T`` of the convex tasks (W row-major = the
    class-major flat layout of :mod:`attribution.estimators.convex`).
    """

    widths: tuple[int, ...]
    bias: bool = True

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or any(int(w) != w or w < 1 for w in self.widths):
            raise ValueError(f"widths must be >= 2 positive integers, got {self.widths!r}")

    def layers(self) -> list[LayerSlice]:
        """The :class:`LayerSlice` of every layer, input to output."""
        out: list[LayerSlice] = []
        offset = 0
        for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:], strict=True):
            w = offset
            offset += fan_in * fan_out
            b: int | None = None
            if self.bias:
                b = offset
                offset += fan_out
            out.append(LayerSlice(fan_in, fan_out, w, b))
        return out

    @property
    def n_params(self) -> int:
        """P."""
        return sum(s.fan_out * s.n_in for s in self.layers())

    @property
    def n_outputs(self) -> int:
        """K."""
        return self.widths[-1]

    def forward(
        self, theta: Tensor, X: Tensor, perturb: list[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Outputs (n, K) and the inputs ``a_l`` (n, fan_in) of every layer.

        ``perturb[l]`` (n, fan_out), if given, is added to layer l's pre-activation (a
        zero perturbation whose gradient is the pre-activation gradient, for K-FAC).
        """
        h = X
        inputs: list[Tensor] = []
        layers = self.layers()
        for idx, layer in enumerate(layers):
            inputs.append(h)
            W = theta[layer.weight : layer.weight + layer.fan_out * layer.fan_in]
            u = h @ W.reshape(layer.fan_out, layer.fan_in).T
            if layer.bias is not None:
                u = u + theta[layer.bias : layer.bias + layer.fan_out]
            if perturb is not None:
                u = u + perturb[idx]
            h = torch.relu(u) if idx < len(layers) - 1 else u
        return h, inputs

    def __call__(self, theta: Tensor, X: Tensor) -> Tensor:
        return self.forward(theta, X)[0]

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Flat float64 vector (P,) from one model's ``{"0.weight": ..., "0.bias": ...}``."""
        parts: list[Tensor] = []
        for idx, layer in enumerate(self.layers()):
            W = params[f"{2 * idx}.weight"]
            if tuple(W.shape) != (layer.fan_out, layer.fan_in):
                raise ValueError(f"layer {idx}: weight shape {tuple(W.shape)} does not match")
            parts.append(W.reshape(-1))
            if layer.bias is not None:
                parts.append(params[f"{2 * idx}.bias"].reshape(-1))
        return torch.cat(parts).to(_DT)

    @classmethod
    def from_params(cls, params: Mapping[str, Tensor]) -> LinearNet:
        """The architecture of one (unstacked) MLP parameter dict."""
        n_layers = len(params) // 2
        shapes = [tuple(params[f"{2 * i}.weight"].shape) for i in range(n_layers)]
        if len(params) % 2 or any(len(s) != 2 for s in shapes):
            raise ValueError(f"unexpected parameter names/shapes {sorted(params)}")
        widths = (int(shapes[0][1]), *(int(s[0]) for s in shapes))
        return cls(widths=widths, bias=True)


# --------------------------------------------------------------------------- objective


@dataclass(frozen=True)
class Objective:
    """``L(theta) = data_scale * sum_i loss_i + (1/2) sum_j reg_j theta_j^2`` on (X, y).

    ``y``: int64 class ids for ``"ce"``, float {0, 1} for ``"bce"``, float targets for
    ``"mse"``. ``reg``: scalar or (P,) vector (see the module docstring).
    """

    X: Tensor
    y: Tensor
    loss: LossKind = "ce"
    data_scale: float = 1.0
    reg: Tensor | float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "bce", "mse"):
            raise ValueError(f"unknown loss {self.loss!r}")
        if self.X.ndim != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError("X must be (n, d) and y (n,)")

    @classmethod
    def for_mlp(cls, X: Tensor, y: Tensor, l2: float) -> Objective:
        """The objective of :mod:`attribution.training.mlp`: ``(1/n) sum_i CE_i +
        (l2/2) |theta|^2`` with n = ``len(X)``."""
        n = X.shape[0]
        return cls(X=X.to(_DT), y=y.to(torch.int64), loss="ce", data_scale=1.0 / n, reg=l2)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def subset(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(X[index], y[index])``."""
        return self.X[index], self.y[index]

    def losses(self, z: Tensor, y: Tensor) -> Tensor:
        """Per-example losses (n,) for outputs ``z`` (n, K)."""
        if self.loss == "ce":
            return torch.logsumexp(z, dim=-1) - z.gather(-1, y[:, None]).squeeze(-1)
        if self.loss == "bce":
            zz = z[..., 0]
            # logaddexp(0, z) = log(1 + e^z) without softplus's linear cut-off at z > 20,
            # so that autograd's second derivative is p (1 - p) everywhere
            return torch.logaddexp(torch.zeros_like(zz), zz) - y * zz
        return 0.5 * (z[..., 0] - y) ** 2

    def loss_one(self, z: Tensor, y: Tensor) -> Tensor:
        """The loss of one example (``z`` (K,), ``y`` scalar); vmap-friendly."""
        return self.losses(z[None], y[None])[0]

    def output_factor(self, z: Tensor) -> Tensor:
        """``B_i`` (n, K, R) with ``B_i B_i^T = d^2 loss_i / dz^2`` (R = K for "ce", else 1)."""
        if self.loss == "ce":
            p = torch.softmax(z, dim=-1)
            sp = p.sqrt()
            return torch.diag_embed(sp) - p[:, :, None] * sp[:, None, :]
        if self.loss == "bce":
            p = torch.sigmoid(z[:, 0])
            return (p * (1.0 - p)).sqrt()[:, None, None]
        return torch.ones(z.shape[0], 1, 1, dtype=z.dtype, device=z.device)

    def reg_vector(self, P: int, like: Tensor) -> Tensor:
        """The ridge as a (P,) vector on ``like``'s device, float64."""
        if isinstance(self.reg, Tensor):
            r = self.reg.to(device=like.device, dtype=_DT).reshape(-1)
            if r.numel() != P:
                raise ValueError(f"reg has {r.numel()} entries, the model {P} parameters")
            return r
        return torch.full((P,), float(self.reg), dtype=_DT, device=like.device)

    def value(self, model_fn: ModelFn, theta: Tensor) -> Tensor:
        """``L(theta)`` (scalar)."""
        data = self.losses(model_fn(theta, self.X), self.y).sum() * self.data_scale
        return data + 0.5 * (self.reg_vector(theta.numel(), theta) * theta * theta).sum()


# --------------------------------------------------------------------------- primitives


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    size = max(1, int(size))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def per_example_gradients(
    model_fn: ModelFn, theta: Tensor, objective: Objective, chunk: int = 512
) -> Tensor:
    """``g_i = d loss_i / d theta`` (n, P), unscaled (no ``data_scale``, no ridge)."""
    th = theta.detach().to(_DT)

    def one(t: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return objective.loss_one(model_fn(t, x[None])[0], y)

    g = vmap(grad(one), in_dims=(None, 0, 0))
    parts = [g(th, objective.X[a:b], objective.y[a:b]) for a, b in _chunks(objective.n, chunk)]
    return torch.cat(parts).detach()


def _data_loss_fn(
    model_fn: ModelFn, objective: Objective, X: Tensor, y: Tensor, weight: float
) -> Callable[[Tensor], Tensor]:
    def f(t: Tensor) -> Tensor:
        return objective.losses(model_fn(t, X), y).sum() * weight

    return f


def curvature_operator(
    model_fn: ModelFn,
    theta: Tensor,
    objective: Objective,
    curvature: CurvatureKind = "hessian",
    index: Tensor | None = None,
) -> MatVec:
    """``V (K, P) -> V C`` for the undamped curvature ``C`` (Hessian or GGN, with ridge).

    ``index``: use only these examples, with the data term rescaled by ``n / |index|``
    (an unbiased minibatch estimate). The forward pass and the gradient graph are built
    once and retained; each vector then costs one extra backward pass (Hessian:
    Pearlmutter's reverse-over-reverse ``d(g^T v)/dtheta``; GGN: ``J v`` by the
    double-vjp trick, ``Lambda``, then ``J^T``). Measured on CPU this is ~10x faster per
    single vector than re-tracing ``torch.func.jvp(grad(...))`` on every call, which
    matters for LiSSA and Arnoldi (thousands of sequential products).
    """
    th = theta.detach().to(_DT).clone().requires_grad_(True)
    X, y = (objective.X, objective.y) if index is None else objective.subset(index)
    weight = objective.data_scale * (objective.n / X.shape[0])
    r = objective.reg_vector(th.numel(), th).detach()

    with torch.enable_grad():
        z = model_fn(th, X)
        if curvature == "hessian":
            data = objective.losses(z, y).sum() * weight
            (g,) = torch.autograd.grad(data, th, create_graph=True)

            def one(v: Tensor) -> Tensor:
                (out,) = torch.autograd.grad(g, th, v, retain_graph=True, allow_unused=True)
                return torch.zeros_like(v) if out is None else out

        elif curvature == "ggn":
            Bf = objective.output_factor(z.detach()) * math.sqrt(weight)
            Lam = Bf @ Bf.transpose(1, 2)  # (n, K, K): scaled output Hessians
            w = torch.zeros_like(z, requires_grad=True)
            (jt_w,) = torch.autograd.grad(z, th, w, create_graph=True)  # J^T w, linear in w

            def one(v: Tensor) -> Tensor:
                (Jv,) = torch.autograd.grad(jt_w, w, v, retain_graph=True)
                u = (Lam @ Jv[:, :, None])[:, :, 0]
                (out,) = torch.autograd.grad(z, th, u, retain_graph=True)
                return out

        else:
            raise ValueError(f"unknown curvature {curvature!r}")

    def apply(V: Tensor) -> Tensor:
        with torch.enable_grad():
            out = torch.stack([one(v) for v in V.detach()])
        return out.detach() + V * r

    return apply


def hessian_matrix(
    model_fn: ModelFn, theta: Tensor, objective: Objective, chunk: int = 128
) -> Tensor:
    """The exact Hessian ``H`` (P, P) of ``L`` by :func:`torch.func.hessian`.

    Summed over chunks of ``chunk`` examples (memory O(P * chunk * width)); symmetrised.
    """
    th = theta.detach().to(_DT)
    H = torch.zeros(th.numel(), th.numel(), dtype=_DT, device=th.device)
    for a, b in _chunks(objective.n, chunk):
        f = _data_loss_fn(model_fn, objective, objective.X[a:b], objective.y[a:b], 1.0)
        H += torch.func.hessian(f)(th)
    H = H * objective.data_scale + torch.diag(objective.reg_vector(th.numel(), th))
    return 0.5 * (H + H.T)


def _sqrt_ggn_factors(
    model_fn: ModelFn, theta: Tensor, objective: Objective, a: int, b: int
) -> Tensor:
    """``U`` (m R, P) for examples ``a:b``: rows ``(J_i^T B_i[:, r])^T``, unscaled."""
    th = theta.detach().to(_DT)

    def one(t: Tensor, x: Tensor) -> Tensor:
        return model_fn(t, x[None])[0]

    Xc = objective.X[a:b]
    J = vmap(jacrev(one), in_dims=(None, 0))(th, Xc)  # (m, K, P)
    Bf = objective.output_factor(model_fn(th, Xc).detach())  # (m, K, R)
    U = torch.einsum("mkp,mkr->mrp", J, Bf)
    return U.reshape(-1, th.numel())


def ggn_matrix(model_fn: ModelFn, theta: Tensor, objective: Objective, chunk: int = 128) -> Tensor:
    """The Gauss-Newton matrix ``G = s sum_i J_i^T Lambda_i J_i + diag(r)`` (P, P)."""
    th = theta.detach().to(_DT)
    G = torch.zeros(th.numel(), th.numel(), dtype=_DT, device=th.device)
    for a, b in _chunks(objective.n, chunk):
        U = _sqrt_ggn_factors(model_fn, th, objective, a, b)
        G += U.T @ U
    G = G * objective.data_scale + torch.diag(objective.reg_vector(th.numel(), th))
    return 0.5 * (G + G.T)


# --------------------------------------------------------------------------- operator


@dataclass
class InverseHVP:
    """``v (P,) or (K, P) -> C_lambda^-1 v`` (same shape), plus diagnostics in ``info``.

    ``info`` holds backend-specific numbers (spectrum, CG iterations and residuals, ...);
    iterative backends update it on every call.
    """

    backend: str
    damping: float
    n_params: int
    apply: Callable[[Tensor], Tensor]
    info: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __call__(self, v: Tensor) -> Tensor:
        if v.shape[-1] != self.n_params or v.ndim not in (1, 2):
            raise ValueError(
                f"expected (P,) or (K, P) with P = {self.n_params}, got {tuple(v.shape)}"
            )
        V = v.to(device=self.device, dtype=_DT)
        out = self.apply(V if V.ndim == 2 else V[None])
        return out if v.ndim == 2 else out[0]


def _spectral_inverse(
    M: Tensor, damping: float
) -> tuple[Callable[[Tensor], Tensor], dict[str, Any]]:
    P = M.shape[0]
    Md = M + damping * torch.eye(P, dtype=_DT, device=M.device)
    mu, Vec = torch.linalg.eigh(Md)
    info = {
        "min_eigenvalue": float(mu[0]),
        "max_eigenvalue": float(mu[-1]),
        "n_negative": int((mu < 0).sum()),
        "min_abs_eigenvalue": float(mu.abs().min()),
    }
    if float(mu.abs().min()) == 0.0:
        raise ValueError("the damped curvature is singular: increase the damping")
    inv = 1.0 / mu

    def apply(V: Tensor) -> Tensor:
        out: Tensor = ((V @ Vec) * inv) @ Vec.T
        return out

    return apply, info


def _power_max_abs(op: MatVec, P: int, like: Tensor, iters: int, seed: int) -> float:
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(1, P, generator=g, dtype=_DT).to(like.device)
    v = v / v.norm()
    est = 0.0
    for _ in range(iters):
        w = op(v)
        est = float(w.norm())
        if est == 0.0:
            return 0.0
        v = w / est
    return est


def _cg(
    op: MatVec, damping: float, tol: float, max_iter: int, info: dict[str, Any]
) -> Callable[[Tensor], Tensor]:
    def apply(Bm: Tensor) -> Tensor:
        X = torch.zeros_like(Bm)
        R = Bm.clone()
        Pd = R.clone()
        rs = (R * R).sum(dim=1)
        bnorm = Bm.norm(dim=1).clamp_min(1e-300)
        active = (rs.sqrt() / bnorm) > tol
        indefinite = torch.zeros_like(active)
        it = 0
        while bool(active.any()) and it < max_iter:
            it += 1
            idx = active.nonzero().flatten()
            Ap = op(Pd[idx]) + damping * Pd[idx]
            pAp = (Pd[idx] * Ap).sum(dim=1)
            bad = pAp <= 0
            if bool(bad.any()):
                indefinite[idx[bad]] = True
                active[idx[bad]] = False
            ok = ~bad
            idx, Ap, pAp = idx[ok], Ap[ok], pAp[ok]
            alpha = rs[idx] / pAp
            X[idx] += alpha[:, None] * Pd[idx]
            R[idx] -= alpha[:, None] * Ap
            rs_new = (R[idx] * R[idx]).sum(dim=1)
            beta = rs_new / rs[idx]
            Pd[idx] = R[idx] + beta[:, None] * Pd[idx]
            rs[idx] = rs_new
            active[idx] = (rs_new.sqrt() / bnorm[idx]) > tol
        rel = (rs.sqrt() / bnorm).max()
        info.update(
            iterations=it,
            max_relative_residual=float(rel),
            converged=bool(float(rel) <= tol),
            indefinite_columns=int(indefinite.sum()),
        )
        return X

    return apply


def _lissa(
    model_fn: ModelFn,
    theta: Tensor,
    objective: Objective,
    curvature: CurvatureKind,
    damping: float,
    scale: float,
    depth: int,
    repeats: int,
    batch_size: int | None,
    seed: int,
) -> Callable[[Tensor], Tensor]:
    full = curvature_operator(model_fn, theta, objective, curvature) if batch_size is None else None

    def apply(V: Tensor) -> Tensor:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        total = torch.zeros_like(V)
        for _ in range(repeats):
            X = V.clone()
            for _ in range(depth):
                if full is None:
                    idx = torch.randperm(objective.n, generator=gen)[: cast(int, batch_size)]
                    op = curvature_operator(
                        model_fn, theta, objective, curvature, idx.to(theta.device)
                    )
                else:
                    op = full
                X = V + X - (op(X) + damping * X) / scale
            total += X / scale
        return total / repeats

    return apply


def _arnoldi(
    op: MatVec, P: int, like: Tensor, n_iter: int, rank: int, seed: int
) -> tuple[Tensor, Tensor, int]:
    """Ritz values (rank,) and vectors (P, rank) of the top-|mu| pairs after ``n_iter``
    Arnoldi steps (full re-orthogonalisation, twice)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(P, generator=g, dtype=_DT).to(like.device)
    Q = torch.zeros(n_iter + 1, P, dtype=_DT, device=like.device)
    Hs = torch.zeros(n_iter + 1, n_iter, dtype=_DT, device=like.device)
    Q[0] = q / q.norm()
    steps = n_iter
    for k in range(n_iter):
        w = op(Q[k][None])[0]
        for _ in range(2):
            coef = Q[: k + 1] @ w
            w = w - coef @ Q[: k + 1]
            Hs[: k + 1, k] += coef
        nrm = w.norm()
        Hs[k + 1, k] = nrm
        if float(nrm) <= 1e-12 * float(Hs[: k + 1, k].abs().max().clamp_min(1e-300)):
            steps = k + 1  # invariant subspace found: the Krylov space is exhausted
            break
        Q[k + 1] = w / nrm
    T = Hs[:steps, :steps]
    T = 0.5 * (T + T.T)
    mu, S = torch.linalg.eigh(T)
    order = torch.argsort(mu.abs(), descending=True)[: min(rank, steps)]
    U = Q[:steps].T @ S[:, order]
    return mu[order], U, steps


def _kfac(
    net: LinearNet,
    theta: Tensor,
    objective: Objective,
    damping: float,
    eigen_correction: bool,
    chunk: int,
    info: dict[str, Any],
) -> Callable[[Tensor], Tensor]:
    th = theta.detach().to(_DT)
    layers = net.layers()
    if net.n_params != th.numel():
        raise ValueError(f"the LinearNet has {net.n_params} parameters, theta {th.numel()}")
    n = objective.n
    s = objective.data_scale
    r = objective.reg_vector(th.numel(), th)
    A = [torch.zeros(ly.n_in, ly.n_in, dtype=_DT, device=th.device) for ly in layers]
    S = [torch.zeros(ly.fan_out, ly.fan_out, dtype=_DT, device=th.device) for ly in layers]
    cached: list[tuple[list[Tensor], list[list[Tensor]]]] = []

    def layer_stats(a: int, b: int) -> tuple[list[Tensor], list[list[Tensor]]]:
        Xc = objective.X[a:b]
        zeros = [torch.zeros(b - a, ly.fan_out, dtype=_DT, device=th.device) for ly in layers]
        z, fn, inputs = cast(
            tuple[Tensor, Callable[[Tensor], tuple[list[Tensor]]], list[Tensor]],
            vjp(lambda eps: net.forward(th, Xc, eps), zeros, has_aux=True),
        )
        Bf = objective.output_factor(z.detach())  # (m, K, R)
        abar = [
            torch.cat([x, torch.ones(x.shape[0], 1, dtype=_DT, device=x.device)], dim=1)
            if ly.bias is not None
            else x
            for x, ly in zip(inputs, layers, strict=True)
        ]
        grads: list[list[Tensor]] = [[] for _ in layers]
        for rr in range(Bf.shape[2]):
            gs = fn(Bf[:, :, rr])[0]
            for idx, gl in enumerate(gs):
                grads[idx].append(gl.detach())
        return [x.detach() for x in abar], grads

    for a, b in _chunks(n, chunk):
        abar, grads = layer_stats(a, b)
        for idx in range(len(layers)):
            A[idx] += abar[idx].T @ abar[idx]
            for gl in grads[idx]:
                S[idx] += gl.T @ gl
        if eigen_correction:
            cached.append((abar, grads))
    eig: list[tuple[Tensor, Tensor, Tensor]] = []
    min_lam = math.inf
    for idx, ly in enumerate(layers):
        lA, QA = torch.linalg.eigh(0.5 * (A[idx] + A[idx].T) / n)
        lS, QS = torch.linalg.eigh(0.5 * (S[idx] + S[idx].T) / n)
        if eigen_correction:
            Lam = torch.zeros(ly.fan_out, ly.n_in, dtype=_DT, device=th.device)
            for abar, grads in cached:
                ap2 = (abar[idx] @ QA) ** 2  # (m, n_in)
                for gl in grads[idx]:
                    Lam += ((gl @ QS) ** 2).T @ ap2
            Lam = Lam * s
        else:
            Lam = (s * n) * torch.outer(lS.clamp_min(0.0), lA.clamp_min(0.0))
        R = ly.gather(r[None])[0]
        Lam = Lam + (QS**2).T @ R @ (QA**2) + damping
        min_lam = min(min_lam, float(Lam.min()))
        eig.append((QS, QA, Lam))
    info.update(min_eigenvalue=min_lam, layers=len(layers))
    if min_lam <= 0.0:
        raise ValueError("K-FAC eigenvalues are not positive: use damping > 0")

    def apply(V: Tensor) -> Tensor:
        out = torch.zeros_like(V)
        for ly, (QS, QA, Lam) in zip(layers, eig, strict=True):
            M = ly.gather(V)
            M = QS @ ((QS.T @ M @ QA) / Lam) @ QA.T
            ly.scatter(M, out)
        return out

    return apply


def make_ihvp(
    backend: str,
    model_fn: ModelFn,
    params: Tensor,
    objective: Objective,
    damping: float,
    **opts: Any,
) -> InverseHVP:
    """Build ``v -> (C + damping I)^-1 v`` with the named backend (module docstring).

    Args:
        backend: one of :data:`BACKENDS`.
        model_fn: ``(theta (P,), X (n, d)) -> (n, K)``; a :class:`LinearNet` for
            ``kfac``/``ekfac``.
        params: the trained parameters theta (P,) (cast to float64; their device is used).
        objective: the training objective (data, loss, scaling, ridge).
        damping: lambda >= 0 added to the curvature.
        opts: backend options (module docstring); ``matrix`` (P, P) reuses an
            already built curvature matrix for ``explicit`` / ``ggn``; ``chunk``: examples
            per chunk when building matrices or K-FAC statistics.
    """
    if not (math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be finite and >= 0, got {damping}")
    th = params.detach().reshape(-1).to(_DT)
    P = th.numel()
    chunk = int(opts.pop("chunk", 128))
    info: dict[str, Any] = {}

    def done(apply: Callable[[Tensor], Tensor]) -> InverseHVP:
        if opts:
            raise TypeError(f"unknown option(s) for backend {backend!r}: {sorted(opts)}")
        return InverseHVP(backend, float(damping), P, apply, info, th.device)

    curvature = cast(CurvatureKind, opts.pop("curvature", "hessian"))
    if backend in ("explicit", "ggn"):
        M = opts.pop("matrix", None)
        if M is None:
            build = hessian_matrix if backend == "explicit" else ggn_matrix
            M = build(model_fn, th, objective, chunk=chunk)
        apply, spec = _spectral_inverse(M.to(device=th.device, dtype=_DT), damping)
        info.update(spec)
        return done(apply)
    if backend == "cg":
        op = curvature_operator(model_fn, th, objective, curvature)
        tol = float(opts.pop("tol", 1e-10))
        max_iter = int(opts.pop("max_iter", 1000))
        info.update(curvature=curvature, tol=tol, max_iter=max_iter)
        return done(_cg(op, damping, tol, max_iter, info))
    if backend == "lissa":
        depth = int(opts.pop("depth", 1000))
        repeats = int(opts.pop("repeats", 1))
        batch_size = opts.pop("batch_size", None)
        seed = int(opts.pop("seed", 0))
        scale = opts.pop("scale", None)
        if scale is None:
            op = curvature_operator(model_fn, th, objective, curvature)
            top = _power_max_abs(lambda V: op(V) + damping * V, P, th, 50, seed)
            scale = 1.1 * top
        if not float(scale) > 0:
            raise ValueError("LiSSA needs scale > 0")
        info.update(
            scale=float(scale), depth=depth, repeats=repeats, batch_size=batch_size, seed=seed
        )
        bs = None if batch_size is None else min(int(batch_size), objective.n)
        return done(
            _lissa(
                model_fn,
                th,
                objective,
                curvature,
                damping,
                float(scale),
                depth,
                repeats,
                bs,
                seed,
            )
        )
    if backend == "arnoldi":
        rank = int(opts.pop("rank", 50))
        n_iter = int(opts.pop("n_iter", max(2 * rank, rank + 20)))
        n_iter = min(n_iter, P)
        seed = int(opts.pop("seed", 0))
        op = curvature_operator(model_fn, th, objective, curvature)
        mu, U, steps = _arnoldi(op, P, th, n_iter, rank, seed)
        denom = mu + damping
        if bool((denom == 0).any()):
            raise ValueError("a damped Ritz value is 0: increase the damping")
        info.update(
            rank=int(mu.numel()),
            n_iter=steps,
            curvature=curvature,
            top_eigenvalue=float(mu[0]),
            smallest_kept=float(mu[-1]),
        )

        def apply_arnoldi(V: Tensor) -> Tensor:
            return ((V @ U) / denom) @ U.T

        return done(apply_arnoldi)
    if backend in ("kfac", "ekfac"):
        if not isinstance(model_fn, LinearNet):
            raise TypeError("K-FAC / EK-FAC need model_fn to be a LinearNet (layer structure)")
        return done(_kfac(model_fn, th, objective, damping, backend == "ekfac", chunk, info))
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")

"""Batched, deterministic training of many small MLPs at once (``torch.func``).

M models with the same architecture are trained together on the same data ``X`` (n × d),
``y`` (n,). Model m differs from the others only by its 0/1 sample-weight vector
``weights[m]`` (its training subset) and its seed ``seeds[m]``; its result depends on
nothing else.

Architecture
    ``Linear(d, h_1) → ReLU → … → Linear(h_L, K)`` (an :class:`torch.nn.Sequential`;
    parameter names ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, …). No dropout, no
    normalisation layers, no buffers.

Objective of model m (full batch)
    ::

        L_m(θ) = (1/n) · Σ_i w_{m,i} · CE_i(θ)  +  (l2/2) · ‖θ‖²
        CE_i(θ) = logsumexp_k z_ik − z_{i,y_i},   z_i = f_θ(x_i)  (the K logits)

    ``n`` is the **total number of data points** (``X.shape[0]``), *not* ``Σ_i w_{m,i}``:
    every model divides by the same constant, so the effective regularisation strength
    relative to the data term grows as the subset shrinks (for p = ½ the data term is
    about half the full-data one). ``‖θ‖²`` covers all weights **and** biases.

Gradient
    ``g = ∇_θ [(1/n) Σ_i w_i CE_i]`` by reverse-mode autodiff (``vmap(grad(…))`` over the
    stacked parameters in :func:`train_mlp_batch`; ``torch.autograd.grad`` on an
    ``nn.Module`` in :func:`train_mlp_loop`), plus the ridge term added analytically:
    ``g ← g + l2 · θ``.

Update rules (implemented here, on tensors, so that the batched and looped trainers run the
identical element-wise arithmetic; step index t = 1, …, ``steps``)
    * ``"adam"`` (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, m₀ = v₀ = 0)::

          m_t = β₁ m_{t-1} + (1 − β₁) g
          v_t = β₂ v_{t-1} + (1 − β₂) g ⊙ g
          θ_t = θ_{t-1} − lr · (m_t / (1 − β₁ᵗ)) / (√(v_t / (1 − β₂ᵗ)) + ε)

    * ``"sgd"`` (heavy-ball momentum μ = 0.9, PyTorch convention, b₀ = 0)::

          b_t = μ b_{t-1} + g
          θ_t = θ_{t-1} − lr · b_t

    Only single-rounding element-wise operations (``*``, ``+``, ``-``, ``/``, ``sqrt``)
    are used — no fused ``addcmul``/``lerp`` — so the update of one element is the same
    IEEE computation whether it sits in a stacked tensor or a single model's tensor.

Initialisation
    Model m draws all its initial parameters from ``torch.Generator().manual_seed(seeds[m])``
    (a CPU generator; the tensors are moved to the device afterwards, so CPU and CUDA runs
    start from identical values). Layer by layer, weight then bias, each entry is
    ``U(−1/√fan_in, 1/√fan_in)`` (the PyTorch ``nn.Linear`` default distribution), drawn in
    float64 and then rounded to ``config.dtype`` (so the float32 initialisation is the
    float64 one rounded).

Determinism
    Training runs under ``torch.use_deterministic_algorithms(True)`` with float32 matmul
    precision ``"highest"`` (no TF32) and cuDNN benchmarking off, inside a context manager
    that restores the previous settings. On CUDA, ``CUBLAS_WORKSPACE_CONFIG`` should be set
    (e.g. ``:4096:8``) before CUDA is initialised; if it is unset we set it to ``:4096:8``
    (sufficient when no cuBLAS handle exists yet). Bitwise equality across batch
    composition and thread count is *not* guaranteed by the kernels. Measured on CPU
    (MKL): a batch of M ≥ 2 models is bitwise independent of M and of the thread count,
    but a batch of one model (and :func:`train_mlp_loop`) runs each weight-gradient GEMM
    as one multi-threaded MKL call that splits the reduction over the n points across
    threads (from n ≈ 800 on), changing the last bits: ≈ 1e-14 in float64 logits after
    300 Adam steps on digits, ≈ 4e-3 in float32. Setting ``MKL_CBWR=AUTO,STRICT`` in the
    environment before the process starts made all of these bitwise equal. Figures and
    tolerances: ``tests/test_mlp_trainer.py``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

__all__ = [
    "MLPConfig",
    "build_module",
    "deterministic_mode",
    "init_params",
    "mlp_logits",
    "train_mlp_batch",
    "train_mlp_loop",
]

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
_SGD_MOMENTUM = 0.9
_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
_OPTIMIZERS = ("adam", "sgd")

Params = dict[str, Tensor]


@dataclass(frozen=True)
class MLPConfig:
    """Architecture and optimisation settings shared by all M models of a batch.

    Attributes:
        hidden: hidden-layer widths (ReLU after each); ``()`` gives multinomial LR.
        steps: number of full-batch optimisation steps.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (heavy-ball momentum 0.9); see the module
            docstring for the exact update formulas.
        l2: ridge coefficient λ in ``(1/n) Σ w_i CE_i + (λ/2)‖θ‖²`` (weights and biases;
            n = number of data points, not Σ w_i).
        dtype: ``"float32"`` or ``"float64"``: parameters, data and arithmetic.
    """

    hidden: tuple[int, ...] = (32,)
    steps: int = 300
    lr: float = 0.01
    optimizer: str = "adam"
    l2: float = 1e-4
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden!r}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        """The :class:`torch.dtype` named by :attr:`dtype`."""
        return _DTYPES[self.dtype]


# --------------------------------------------------------------------------- determinism


@contextmanager
def deterministic_mode(device: torch.device | None = None) -> Iterator[None]:
    """Enable deterministic kernels for the duration of the block, then restore.

    Sets ``torch.use_deterministic_algorithms(True)`` (not warn-only), float32 matmul
    precision ``"highest"`` and ``torch.backends.cudnn.benchmark = False``; restores all
    three on exit. For a CUDA ``device`` it also sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
    if the variable is unset (this is left in the environment: it only takes effect for
    cuBLAS handles created afterwards).
    """
    if device is not None and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_prec = torch.get_float32_matmul_precision()
    prev_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.set_float32_matmul_precision(prev_prec)
        torch.backends.cudnn.benchmark = prev_bench


# --------------------------------------------------------------------------- architecture


def _layer_sizes(n_in: int, n_out: int, hidden: Sequence[int]) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every Linear layer."""
    widths = [n_in, *hidden, n_out]
    return list(itertools.pairwise(widths))


def build_module(
    n_in: int,
    n_out: int,
    hidden: Sequence[int],
    *,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    """The architecture as an ``nn.Sequential`` (on the meta device by default).

    Parameter names are ``f"{2 * l}.weight"`` / ``f"{2 * l}.bias"`` for layer l, matching
    the keys of :func:`init_params`. Its own parameter values are never used for training:
    they are replaced via :func:`torch.func.functional_call` or ``load_state_dict``.
    """
    layers: list[nn.Module] = []
    sizes = _layer_sizes(n_in, n_out, hidden)
    for idx, (fan_in, fan_out) in enumerate(sizes):
        layers.append(nn.Linear(fan_in, fan_out, device=device, dtype=dtype))
        if idx < len(sizes) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _module_for(params: Params) -> nn.Sequential:
    """Rebuild the (meta) module matching stacked or single-model ``params``."""
    n_layers = len(params) // 2
    keys = [f"{2 * layer}.weight" for layer in range(n_layers)]
    if len(params) % 2 or any(k not in params for k in keys):
        raise ValueError(f"unexpected parameter names {sorted(params)}")
    shapes = [tuple(params[k].shape[-2:]) for k in keys]  # (fan_out, fan_in)
    n_in = shapes[0][1]
    n_out = shapes[-1][0]
    hidden = [s[0] for s in shapes[:-1]]
    dtype = params[keys[0]].dtype
    return build_module(n_in, n_out, hidden, dtype=dtype)


# --------------------------------------------------------------------------- init


def init_params(n_in: int, n_out: int, config: MLPConfig, seeds: Sequence[int]) -> Params:
    """Initial parameters of M models, stacked along a new leading dimension (CPU tensors).

    Model m uses only ``torch.Generator().manual_seed(seeds[m])``: for each layer (input
    to output), its weight (fan_out × fan_in, row-major) then its bias are drawn
    ``U(−1/√fan_in, 1/√fan_in)`` in float64, then rounded to ``config.dtype``.

    Returns:
        ``{"0.weight": (M, h_1, n_in), "0.bias": (M, h_1), "2.weight": …}`` on the CPU.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"n_in and n_out must be >= 1, got {n_in}, {n_out}")
    if len(seeds) == 0:
        raise ValueError("seeds must not be empty")
    sizes = _layer_sizes(n_in, n_out, config.hidden)
    per_model: list[Params] = []
    for seed in seeds:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        p: Params = {}
        for layer, (fan_in, fan_out) in enumerate(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            for name, shape in (("weight", (fan_out, fan_in)), ("bias", (fan_out,))):
                u = torch.rand(shape, generator=gen, dtype=torch.float64)
                p[f"{2 * layer}.{name}"] = ((u * 2.0 - 1.0) * bound).to(config.torch_dtype)
        per_model.append(p)
    return {k: torch.stack([p[k] for p in per_model]) for k in per_model[0]}


# --------------------------------------------------------------------------- objective


def _data_loss(logits: Tensor, onehot: Tensor, w: Tensor) -> Tensor:
    """``(1/n) Σ_i w_i CE_i`` with ``CE_i = logsumexp_k z_ik − z_{i,y_i}``, n = rows of z.

    Written with a one-hot label matrix instead of ``F.cross_entropy``: the same value,
    but ≈ 1.5× faster per batched step on CPU (no gather/scatter under ``vmap``).
    """
    ce = torch.logsumexp(logits, dim=-1) - (logits * onehot).sum(dim=-1)
    return (w * ce).sum() / logits.shape[0]


def _make_functional_loss(
    base: nn.Module,
) -> Callable[[Params, Tensor, Tensor, Tensor], Tensor]:
    def loss(p: Params, w: Tensor, X: Tensor, onehot: Tensor) -> Tensor:
        logits: Tensor = functional_call(base, p, (X,))
        return _data_loss(logits, onehot, w)

    return loss


# --------------------------------------------------------------------------- optimiser


class _Optimizer:
    """The update rules of the module docstring, on any tensors (stacked or single).

    ``grads`` holds the data-term gradient; ``l2 · θ`` is added here.
    """

    def __init__(self, params: Params, config: MLPConfig) -> None:
        self.config = config
        self.t = 0
        self.state1: Params = {k: torch.zeros_like(v) for k, v in params.items()}
        self.state2: Params = (
            {k: torch.zeros_like(v) for k, v in params.items()}
            if config.optimizer == "adam"
            else {}
        )

    def step(self, params: Params, grads: Params) -> Params:
        cfg = self.config
        self.t += 1
        out: Params = {}
        if cfg.optimizer == "adam":
            bc1 = 1.0 - _ADAM_BETA1**self.t
            bc2 = 1.0 - _ADAM_BETA2**self.t
            for k, theta in params.items():
                g = grads[k] + theta * cfg.l2
                m = self.state1[k] * _ADAM_BETA1 + g * (1.0 - _ADAM_BETA1)
                v = self.state2[k] * _ADAM_BETA2 + (g * g) * (1.0 - _ADAM_BETA2)
                self.state1[k] = m
                self.state2[k] = v
                m_hat = m / bc1
                v_hat = v / bc2
                out[k] = theta - (m_hat * cfg.lr) / (torch.sqrt(v_hat) + _ADAM_EPS)
        else:
            for k, theta in params.items():
                g = grads[k] + theta * cfg.l2
                b = self.state1[k] * _SGD_MOMENTUM + g
                self.state1[k] = b
                out[k] = theta - b * cfg.lr
        return out


# --------------------------------------------------------------------------- checks


def _prepare(
    X: Tensor,
    y: Tensor,
    weights: Tensor,
    seeds: Sequence[int],
    n_classes: int,
    config: MLPConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor, Params]:
    """Validate; return X, one-hot labels, weights (all on device, config dtype), init."""
    if X.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {tuple(X.shape)}")
    n, d = X.shape
    if y.shape != (n,):
        raise ValueError(f"y must be ({n},), got shape {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise ValueError(f"y must be int64 labels, got {y.dtype}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights must be (M, {n}), got shape {tuple(weights.shape)}")
    if weights.shape[0] != len(seeds):
        raise ValueError(f"weights has {weights.shape[0]} rows but {len(seeds)} seeds given")
    dtype = config.torch_dtype
    params = init_params(d, n_classes, config, seeds)
    params = {k: v.to(device) for k, v in params.items()}
    onehot = F.one_hot(y, n_classes).to(device=device, dtype=dtype)
    return (
        X.to(device=device, dtype=dtype),
        onehot,
        weights.to(device=device, dtype=dtype),
        params,
    )


# --------------------------------------------------------------------------- trainers


def train_mlp_batch(
    X: Tensor,
    y: Tensor,
    weights: Tensor,
    seeds: Sequence[int],
    n_classes: int,
    config: MLPConfig,
    device: torch.device,
) -> Params:
    """Train M models at once with ``vmap(grad(functional_call))``.

    Args:
        X: (n, d) features (cast to ``config.dtype``).
        y: (n,) int64 labels in ``[0, n_classes)``.
        weights: (M, n) per-model sample weights (0/1 subset indicators).
        seeds: M initialisation seeds (see :func:`init_params`).
        n_classes: number of output logits K.
        config: architecture and optimiser settings.
        device: where to compute (CPU or CUDA; the same code path).

    Returns:
        The trained parameters, stacked ``(M, ...)``, on ``device``.
    """
    Xd, Yd, wd, params = _prepare(X, y, weights, seeds, n_classes, config, device)
    base = _module_for(params)
    batched_grad = vmap(grad(_make_functional_loss(base)), in_dims=(0, 0, None, None))
    with deterministic_mode(device), torch.no_grad():
        opt = _Optimizer(params, config)
        for _ in range(config.steps):
            grads: Params = batched_grad(params, wd, Xd, Yd)
            params = opt.step(params, grads)
    return params


def train_mlp_loop(
    X: Tensor,
    y: Tensor,
    weights: Tensor,
    seeds: Sequence[int],
    n_classes: int,
    config: MLPConfig,
    device: torch.device,
) -> Params:
    """Reference trainer: the same M models, one at a time, in a plain Python loop.

    Each model is an ``nn.Module`` (:func:`build_module`) loaded with the same initial
    values as in :func:`train_mlp_batch`; the data-term gradient comes from
    ``torch.autograd.grad`` and the update from the same optimiser code, applied to the
    unstacked tensors. Arguments and return value as in :func:`train_mlp_batch`.
    """
    Xd, Yd, wd, params0 = _prepare(X, y, weights, seeds, n_classes, config, device)
    d = Xd.shape[1]
    results: list[Params] = []
    with deterministic_mode(device):
        for m in range(wd.shape[0]):
            module = build_module(
                d, n_classes, config.hidden, device=device, dtype=config.torch_dtype
            )
            names = [name for name, _ in module.named_parameters()]
            with torch.no_grad():
                params: Params = {k: params0[k][m].clone() for k in names}
            opt = _Optimizer(params, config)
            for _ in range(config.steps):
                with torch.no_grad():
                    for name, prm in module.named_parameters():
                        prm.copy_(params[name])
                loss = _data_loss(module(Xd), Yd, wd[m])
                gs = torch.autograd.grad(loss, list(module.parameters()))
                with torch.no_grad():
                    params = opt.step(params, dict(zip(names, gs, strict=True)))
            results.append(params)
    return {k: torch.stack([r[k] for r in results]) for k in results[0]}


def mlp_logits(params: Params, X: Tensor) -> Tensor:
    """Logits of every stacked model on ``X``: shape (M, n_eval, n_classes).

    ``X`` is moved to the parameters' device and dtype; evaluated with
    ``vmap(functional_call)`` under :func:`deterministic_mode` and ``no_grad``.
    """
    first = next(iter(params.values()))
    base = _module_for(params)
    Xd = X.to(device=first.device, dtype=first.dtype)

    def forward(p: Params, x: Tensor) -> Tensor:
        out: Tensor = functional_call(base, p, (x,))
        return out

    with deterministic_mode(first.device), torch.no_grad():
        result: Any = vmap(forward, in_dims=(0, None))(params, Xd)
    logits: Tensor = result
    return logits

"""Loaded tasks: data in memory, a batched trainer, the output function and the digest.

``Task.train_batch(masks, seeds)`` is the one training entry point used by every executor,
the Prover and the Verifier: ``masks`` (M, N) bool (True = point included), ``seeds`` M
training seeds of 32 bytes, result (M, T) float64 outputs clipped to [-b, b]. Row m
depends only on ``(masks[m], seeds[m])`` -- up to the task's tolerance tau for batched
floating-point trainers, exactly for the synthetic oracle.

Task digest: ``SHA-256("attribution.v1/task" || canonical spec JSON || data digest ||
plug-in source digests)``, so it covers the spec and the data bytes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from attribution.data.loaders import (
    RawData,
    arrays_digest,
    data_digest,
    load_source,
    split_indices,
    standardize,
)
from attribution.encoding import TAG_TASK, domain_prefix
from attribution.errors import UsageError
from attribution.subsets import seed_to_u64
from attribution.tasks.spec import TaskSpec
from attribution.training import newton
from attribution.training.outputs import binary_margins, finish_outputs, multiclass_margins

FloatArray = npt.NDArray[np.float64]


class Task(ABC):
    """A task ready to train: see the module docstring for the contract."""

    spec: TaskSpec
    data_digest: str
    n_points: int
    n_outputs: int
    output_names: list[str]
    device: torch.device

    @functools.cached_property
    def digest(self) -> bytes:
        """32-byte task digest (spec + data + plug-in sources), computed once per loaded
        task: it is checked on every training block, and a plug-in's sources are read from
        disk for it (the code a process runs is the code it loaded)."""
        h = hashlib.sha256(domain_prefix(TAG_TASK))
        h.update(self.spec.canonical_json())
        h.update(b"\x00" + self.data_digest.encode())
        for extra in self._extra_digests():
            h.update(b"\x00" + extra.encode())
        return h.digest()

    @property
    def tau(self) -> float:
        return self.spec.equivalence.tau

    @property
    def bound(self) -> float:
        return self.spec.output.bound

    def _extra_digests(self) -> list[str]:
        return []

    @abstractmethod
    def train_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        """Train one model per row of ``masks``; return (M, T) clipped outputs."""

    def train_chunked(
        self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes], chunk: int = 512
    ) -> FloatArray:
        """:meth:`train_batch` over ``chunk`` rows at a time (bounded memory for large M)."""
        if masks.shape[0] == 0:
            return np.zeros((0, self.n_outputs))
        parts = [
            self.train_batch(masks[i : i + chunk], seeds[i : i + chunk])
            for i in range(0, masks.shape[0], chunk)
        ]
        return np.asarray(np.concatenate(parts), dtype=np.float64)

    def _check_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> None:
        if masks.ndim != 2 or masks.shape[1] != self.n_points or masks.dtype != np.bool_:
            raise ValueError(f"masks must be a bool array of shape (M, {self.n_points})")
        if len(seeds) != masks.shape[0]:
            raise ValueError("need one training seed per mask")

    def describe(self) -> dict[str, Any]:
        """Name, N, T, digest and protocol-relevant constants (for listings and manifests)."""
        return {
            "name": self.spec.name,
            "n_points": self.n_points,
            "n_outputs": self.n_outputs,
            "digest": self.digest.hex(),
            "data_digest": self.data_digest,
            "p": self.spec.p,
            "bound": self.bound,
            "tau": self.tau,
            "trainer": self.spec.training.trainer,
        }


class _SupervisedTask(Task):
    """Common data handling for tasks trained on (X, y) with a validation split."""

    def __init__(self, spec: TaskSpec, raw: RawData, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.data_digest = data_digest(raw)
        if spec.data.digest is not None and spec.data.digest != self.data_digest:
            raise UsageError(
                f"task {spec.name!r}: data digest mismatch (spec says {spec.data.digest}, "
                f"the data hash to {self.data_digest})"
            )
        train_idx, val_idx = split_indices(
            raw.X.shape[0], spec.data.validation_fraction, spec.data.split_seed
        )
        X_train, X_val = raw.X[train_idx], raw.X[val_idx]
        if spec.data.standardize:
            X_train, X_val = standardize(X_train, X_val)
        self.X_train, self.X_val = X_train, X_val
        self.y_train, self.y_val = raw.y[train_idx], raw.y[val_idx]
        self.n_points = X_train.shape[0]
        n_val = X_val.shape[0]
        self.output_names = [f"val[{i}]" for i in range(n_val)]
        if spec.output.mean:
            self.output_names.append("mean")
        self.n_outputs = len(self.output_names)


def _class_ids(y: FloatArray, where: str) -> npt.NDArray[np.int64]:
    ids = y.astype(np.int64)
    if not np.array_equal(ids, y) or ids.min() < 0:
        raise UsageError(f"{where}: class labels must be non-negative integers")
    return ids


class ConvexTask(_SupervisedTask):
    """Logistic (binary / multinomial) or ridge regression solved by batched Newton."""

    def __init__(self, spec: TaskSpec, raw: RawData, device: torch.device) -> None:
        super().__init__(spec, raw, device)
        tr = spec.training
        dt = torch.float64
        kind = tr.trainer
        expected_output = "prediction" if kind == "ridge" else "margin"
        if spec.output.kind != expected_output:
            raise UsageError(f"trainer {kind!r} needs output kind {expected_output!r}")

        def aug(X: FloatArray) -> torch.Tensor:
            t = torch.as_tensor(X, dtype=dt, device=device)
            if tr.fit_intercept:
                t = torch.cat([t, torch.ones(t.shape[0], 1, dtype=dt, device=device)], dim=1)
            return t

        self.Xa = aug(self.X_train)
        self.Xa_val = aug(self.X_val)
        q = self.Xa.shape[1]
        self.pen = newton.penalty_vector(q, tr.fit_intercept, dt, device)
        self.K = newton.outer_products(self.Xa)
        self.opts = newton.NewtonOptions(lam=tr.l2, tol=tr.tol, max_iter=tr.max_iter)
        self.y = torch.as_tensor(self.y_train, dtype=dt, device=device)
        self.yv = torch.as_tensor(self.y_val, dtype=dt, device=device)
        if kind == "logistic":
            labels = set(np.unique(self.y_train).tolist()) | set(np.unique(self.y_val).tolist())
            if not labels <= {0.0, 1.0}:
                raise UsageError("trainer 'logistic' needs labels in {0, 1}; use 'multinomial'")
        if kind == "multinomial":
            ids = _class_ids(np.concatenate([self.y_train, self.y_val]), spec.name)
            self.n_classes = int(ids.max()) + 1
            self.Y = (
                torch.nn.functional.one_hot(torch.as_tensor(ids[: self.n_points]), self.n_classes)
                .to(dt)
                .to(device)
            )
            self.yv_ids = torch.as_tensor(ids[self.n_points :], device=device)
        self._W0: torch.Tensor | None = None

    def _fit(self, w: torch.Tensor, W0: torch.Tensor) -> torch.Tensor:
        kind = self.spec.training.trainer
        if kind == "logistic":
            return newton.fit_logistic(self.Xa, self.y, w, self.opts, self.pen, W0, self.K)
        if kind == "multinomial":
            return newton.fit_multinomial(self.Xa, self.Y, w, self.opts, self.pen, W0, self.K)
        return newton.fit_ridge(self.Xa, self.y, w, self.opts.lam, self.pen, self.K)

    def full_data_solution(self) -> torch.Tensor:
        """The model trained on every point: the warm start of every subset fit."""
        if self._W0 is None:
            kind = self.spec.training.trainer
            q = self.Xa.shape[1]
            zeros = (
                torch.zeros(self.n_classes, q, dtype=torch.float64, device=self.device)
                if kind == "multinomial"
                else torch.zeros(q, dtype=torch.float64, device=self.device)
            )
            ones = torch.ones(1, self.n_points, dtype=torch.float64, device=self.device)
            self._W0 = self._fit(ones, zeros)[0]
        return self._W0

    def fit_params(self, masks: npt.NDArray[np.bool_]) -> torch.Tensor:
        """Parameters of one model per mask (M, q) or (M, C, q), warm-started at full data."""
        w = torch.as_tensor(masks, device=self.device).to(torch.float64)
        return self._fit(w, self.full_data_solution())

    def output_tensor(self, V: torch.Tensor) -> torch.Tensor:
        """Outputs (M, T) of parameters V -- flat (M, D) or shaped (M, q) / (M, C, q) --
        as a differentiable torch map: binary/multiclass margins or predictions on the
        validation points, the optional mean, clipped to ``[-b, b]``."""
        kind = self.spec.training.trainer
        if kind == "multinomial":
            W = V.reshape(V.shape[0], -1, self.Xa_val.shape[1])
            Z = torch.einsum("mcq,nq->mnc", W, self.Xa_val)
            values = multiclass_margins(Z, self.yv_ids)
        elif kind == "logistic":
            values = binary_margins(V @ self.Xa_val.T, self.yv)
        else:
            values = V @ self.Xa_val.T
        return finish_outputs(values, self.spec.output.mean, self.spec.output.bound)

    def outputs_from_params(self, W: torch.Tensor) -> FloatArray:
        return self.output_tensor(W).cpu().numpy()

    def train_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        self._check_batch(masks, seeds)
        return self.outputs_from_params(self.fit_params(masks))


class MLPTask(_SupervisedTask):
    """A small MLP trained with torch.func (vmap over stacked parameters)."""

    def __init__(self, spec: TaskSpec, raw: RawData, device: torch.device) -> None:
        super().__init__(spec, raw, device)
        from attribution.training.mlp import MLPConfig

        tr = spec.training
        if spec.output.kind != "margin":
            raise UsageError("trainer 'mlp' needs output kind 'margin'")
        self.config = MLPConfig(
            hidden=tr.hidden,
            steps=tr.steps,
            lr=tr.lr,
            optimizer=tr.optimizer,
            l2=tr.l2,
            dtype=tr.dtype,
        )
        ids = _class_ids(np.concatenate([self.y_train, self.y_val]), spec.name)
        self.n_classes = int(ids.max()) + 1
        dt = torch.float64 if tr.dtype == "float64" else torch.float32
        self.Xt = torch.as_tensor(self.X_train, dtype=dt, device=device)
        self.Xv = torch.as_tensor(self.X_val, dtype=dt, device=device)
        self.yt_ids = torch.as_tensor(ids[: self.n_points], device=device)
        self.yv_ids = torch.as_tensor(ids[self.n_points :], device=device)

    def train_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        from attribution.training.mlp import train_mlp_batch

        return self._train(train_mlp_batch, masks, seeds)

    def train_batch_loop(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        """Reference: the same models trained one at a time in a python loop."""
        from attribution.training.mlp import train_mlp_loop

        return self._train(train_mlp_loop, masks, seeds)

    def fit_params(
        self,
        masks: npt.NDArray[np.bool_],
        seeds_u64: Sequence[int],
        trainer: Callable[..., dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Stacked parameters of one MLP per mask (the task's recipe; default trainer
        :func:`~attribution.training.mlp.train_mlp_batch`), seeds as u64 integers."""
        from attribution.training.mlp import train_mlp_batch

        w = torch.as_tensor(masks, device=self.device).to(self.Xt.dtype)
        return (trainer or train_mlp_batch)(
            self.Xt, self.yt_ids, w, list(seeds_u64), self.n_classes, self.config, self.device
        )

    def _train(
        self,
        trainer: Callable[..., dict[str, torch.Tensor]],
        masks: npt.NDArray[np.bool_],
        seeds: Sequence[bytes],
    ) -> FloatArray:
        from attribution.training.mlp import mlp_logits

        self._check_batch(masks, seeds)
        params = self.fit_params(masks, [seed_to_u64(s) for s in seeds], trainer)
        margins = multiclass_margins(mlp_logits(params, self.Xv), self.yv_ids)
        return finish_outputs(margins, self.spec.output.mean, self.spec.output.bound).cpu().numpy()


class OracleTask(Task):
    """The synthetic oracle: f computed directly from the subset, exact spectrum known."""

    def __init__(self, spec: TaskSpec, device: torch.device) -> None:
        from attribution.data.synthetic import SyntheticConfig, SyntheticOracle

        self.spec = spec
        self.device = device
        if spec.output.kind != "oracle" or spec.training.trainer != "oracle":
            raise UsageError("the synthetic source needs trainer = 'oracle' and kind = 'oracle'")
        params = dict(spec.data.synthetic)
        if "p" in params:
            raise UsageError("data.synthetic must not set p: the oracle uses sampling.p")
        known = set(SyntheticConfig.__dataclass_fields__) - {"p", "bound"}
        unknown = set(params) - known
        if unknown:
            raise UsageError(f"unknown data.synthetic key(s): {', '.join(sorted(unknown))}")
        try:
            config = SyntheticConfig(p=spec.p, bound=spec.output.bound, **params)
        except TypeError as exc:
            raise UsageError(f"bad data.synthetic parameters: {exc}") from exc
        self.oracle = SyntheticOracle(config)
        self.data_digest = arrays_digest("synthetic", self.oracle.content_arrays())
        if spec.data.digest is not None and spec.data.digest != self.data_digest:
            raise UsageError(
                f"task {spec.name!r}: data digest mismatch (spec says {spec.data.digest}, "
                f"the oracle's coefficients hash to {self.data_digest})"
            )
        self.n_points = config.n
        self.n_outputs = 1
        self.output_names = ["f"]

    def train_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        self._check_batch(masks, seeds)
        return np.asarray(self.oracle.evaluate(masks, seeds), dtype=np.float64)


def _resolve_plugin(ref: str) -> Callable[..., Any]:
    module_name, _, func_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import plug-in module {module_name!r}: {exc}") from exc
    func: Callable[..., Any] | None = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise UsageError(f"plug-in {ref!r}: {module_name} has no callable {func_name!r}")
    return func


def _source_digest(func: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(inspect.getmodule(func) or func)
    except (OSError, TypeError):
        source = getattr(func, "__qualname__", repr(func))
    return "sha256:" + hashlib.sha256(source.encode()).hexdigest()


class PluginTask(_SupervisedTask):
    """User trainer ``train(X, y, mask, seed) -> model`` and evaluator
    ``evaluate(model, X_val, y_val) -> (T,)``, run once per subset (no batching)."""

    def __init__(self, spec: TaskSpec, raw: RawData, device: torch.device) -> None:
        super().__init__(spec, raw, device)
        self.train_fn = _resolve_plugin(spec.training.trainer)
        if spec.output.kind in ("margin", "prediction", "oracle"):
            raise UsageError("a plug-in trainer needs a plug-in evaluator ('module:function')")
        self.eval_fn = _resolve_plugin(spec.output.kind)
        full = self._evaluate(np.ones(self.n_points, dtype=bool), b"\x00" * 32)
        self.n_outputs = full.shape[0]
        self.output_names = [f"out[{i}]" for i in range(self.n_outputs)]

    def _extra_digests(self) -> list[str]:
        return [_source_digest(self.train_fn), _source_digest(self.eval_fn)]

    def _evaluate(self, mask: npt.NDArray[np.bool_], seed: bytes) -> FloatArray:
        model = self.train_fn(self.X_train, self.y_train, mask, seed)
        out = np.asarray(self.eval_fn(model, self.X_val, self.y_val), dtype=np.float64).ravel()
        if not np.all(np.isfinite(out)):
            raise ValueError("plug-in evaluator returned non-finite outputs")
        b = self.spec.output.bound
        return np.clip(out, -b, b)

    def train_batch(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        self._check_batch(masks, seeds)
        rows = [self._evaluate(m, s) for m, s in zip(masks, seeds, strict=True)]
        return np.stack(rows) if rows else np.zeros((0, self.n_outputs))


def load_task(spec: TaskSpec, device: torch.device | None = None) -> Task:
    """Load the data of ``spec``, check its digest and return a ready :class:`Task`."""
    dev = device if device is not None else torch.device("cpu")
    trainer = spec.training.trainer
    if spec.data.source == "synthetic":
        return OracleTask(spec, dev)
    if trainer == "oracle":
        raise UsageError("trainer 'oracle' needs data.source = 'synthetic'")
    raw = load_source(spec.data.source, spec.base_dir)
    if trainer in ("logistic", "multinomial", "ridge"):
        return ConvexTask(spec, raw, dev)
    if trainer == "mlp":
        return MLPTask(spec, raw, dev)
    return PluginTask(spec, raw, dev)

"""``vattr bench retrain``: the batched trainer against a per-subset loop, side by side.

Both sides train the same subsets (the retrain plan with seed 0) in the same process and
thread setting. Batched: ``Task.train_batch`` over blocks of ``batch_size`` (the task's
one-off full-data warm start is computed before the clock starts). Reference: for convex
tasks a scikit-learn loop (``--solver``, default newton-cholesky at tol 1e-12) fitting
each subset; for the MLP the per-model python loop of the same update rule; for the
synthetic oracle one ``evaluate`` call per subset.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from attribution.errors import UsageError
from attribution.execution.plan import retrain_plan
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import ConvexTask, MLPTask, OracleTask, Task
from attribution.training.device import resolve_device


def _reference_outputs(
    task: Task, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes], solver: str
) -> npt.NDArray[np.float64]:
    if isinstance(task, ConvexTask):
        from attribution.training.reference import sklearn_outputs

        return np.stack([sklearn_outputs(task, m, solver=solver) for m in masks])
    if isinstance(task, MLPTask):
        return np.concatenate(
            [task.train_batch_loop(masks[i : i + 1], seeds[i : i + 1]) for i in range(len(masks))]
        )
    if isinstance(task, OracleTask):
        return np.concatenate(
            [task.train_batch(masks[i : i + 1], seeds[i : i + 1]) for i in range(len(masks))]
        )
    raise UsageError("no reference trainer for plug-in tasks")


def bench_retrain(
    task_name: str,
    overrides: Sequence[str],
    p: float | None,
    models: int,
    batch_size: int | None,
    device: str,
    solver: str,
    reference_models: int | None,
) -> dict[str, Any]:
    """Measure batched and reference models/s on the same subsets; see the module docstring."""
    if models < 1:
        raise UsageError("--models must be at least 1")
    spec = resolve_spec(task_name, overrides, p)
    task = load_task(spec, resolve_device(device))
    plan = retrain_plan(task.digest, task.n_points, models, spec.p, 0)
    rows = list(range(models))
    masks, seeds = plan.masks(rows), plan.seeds(rows)
    batch = batch_size or models
    if isinstance(task, ConvexTask):
        task.full_data_solution()
    task.train_batch(masks[:1], seeds[:1])  # warm-up (allocations, lazy imports)

    t0 = time.perf_counter()
    batched = task.train_chunked(masks, seeds, batch)
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    t_batched = time.perf_counter() - t0

    k = min(models, reference_models or models)
    t0 = time.perf_counter()
    reference = _reference_outputs(task, masks[:k], seeds[:k], solver)
    t_ref = time.perf_counter() - t0

    batched_rate = models / t_batched
    ref_rate = k / t_ref
    return {
        "task": spec.name,
        "models": models,
        "reference_models": k,
        "batch_size": batch,
        "device": str(task.device),
        "threads": torch.get_num_threads(),
        "reference": solver if isinstance(task, ConvexTask) else "per-model loop",
        "batched_seconds": round(t_batched, 4),
        "reference_seconds": round(t_ref, 4),
        "batched_models_per_s": round(batched_rate, 2),
        "reference_models_per_s": round(ref_rate, 2),
        "speedup": round(batched_rate / ref_rate, 2),
        "max_abs_diff": float(np.max(np.abs(batched[:k] - reference))),
    }

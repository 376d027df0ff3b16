"""Executors: who trains the blocks of a plan.

``Executor.run(spec, digest, plan, blocks)`` yields ``(rows, outputs)`` per block in
completion order. Workers get the task *spec* (a few hundred bytes), load the data once,
refuse to train if their task digest differs from the driver's, derive the masks and
seeds of their rows from the plan, and return arrays; only the driver writes the store.

* :class:`SerialExecutor` -- in-process, for tests and tiny runs.
* :class:`ProcessExecutor` -- the default: a ``spawn`` process pool (no fork: gRPC and
  CUDA do not survive it), each worker pinned to ``threads_per_worker`` torch threads.
* ``RayExecutor`` (:mod:`attribution.execution.ray_executor`, optional extra ``ray``):
  actors that keep the data resident (on their GPU when they have one).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch

from attribution.errors import UsageError
from attribution.execution.plan import SubsetPlan
from attribution.tasks.runtime import Task, load_task
from attribution.tasks.spec import TaskSpec
from attribution.training.device import resolve_device

Block = Sequence[int]
BlockResult = tuple[list[int], npt.NDArray[np.float64]]

_TASK_CACHE: dict[tuple[bytes, str], Task] = {}


def cached_task(spec: TaskSpec, digest: bytes, device: str) -> Task:
    """Load (once per process) the task of ``spec`` and check it has digest ``digest``."""
    key = (spec.canonical_json(), device)
    task = _TASK_CACHE.get(key)
    if task is None:
        task = load_task(spec, resolve_device(device))
        _TASK_CACHE[key] = task
    if task.digest != digest:
        raise RuntimeError(
            f"worker task digest {task.digest.hex()[:16]} != driver's {digest.hex()[:16]}"
        )
    return task


def train_block(
    spec: TaskSpec, digest: bytes, device: str, plan: SubsetPlan, rows: Sequence[int]
) -> BlockResult:
    """Train the rows of one block (runs inside a worker)."""
    task = cached_task(spec, digest, device)
    out = task.train_batch(plan.masks(rows), plan.seeds(rows))
    return list(rows), out


class Executor(Protocol):
    """Runs blocks of a plan and yields their outputs as they complete."""

    def run(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, blocks: Sequence[Block]
    ) -> Iterator[BlockResult]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Trains every block in the calling process, in order."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def run(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, blocks: Sequence[Block]
    ) -> Iterator[BlockResult]:
        for rows in blocks:
            yield train_block(spec, digest, self.device, plan, rows)

    def close(self) -> None:
        return None


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


class ProcessExecutor:
    """A spawn-based local process pool; at most ``max_workers`` blocks in flight at once
    (plus one queued per worker)."""

    def __init__(
        self,
        max_workers: int | None = None,
        threads_per_worker: int | None = None,
        device: str = "cpu",
    ) -> None:
        cpus = os.cpu_count() or 1
        self.max_workers = max_workers or cpus
        if self.max_workers < 1:
            raise UsageError("need at least one worker")
        self.threads = threads_per_worker or max(1, cpus // self.max_workers)
        self.device = device
        self._pool = ProcessPoolExecutor(
            self.max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads,),
        )

    def run(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, blocks: Sequence[Block]
    ) -> Iterator[BlockResult]:
        queue = list(blocks)[::-1]
        in_flight: set[Future[BlockResult]] = set()
        limit = 2 * self.max_workers
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    rows = queue.pop()
                    in_flight.add(
                        self._pool.submit(train_block, spec, digest, self.device, plan, rows)
                    )
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in in_flight:
                fut.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(kind: str, *, workers: int | None = None, device: str = "cpu") -> Executor:
    """``serial``, ``local`` (process pool, the default) or ``ray``."""
    if kind == "serial":
        return SerialExecutor(device)
    if kind == "local":
        return ProcessExecutor(max_workers=workers, device=device)
    if kind == "ray":
        from attribution.execution.ray_executor import RayExecutor

        return RayExecutor(num_actors=workers, device=device)
    raise UsageError(f"unknown executor {kind!r}: use serial, local or ray")

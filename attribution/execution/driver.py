"""The driver: partitions a plan into fixed blocks, runs them, writes the store.

Blocks are fixed index ranges ``[k*B, (k+1)*B)`` of the plan, so a resumed run trains
exactly the blocks (and batch compositions) an uninterrupted run would have trained for
the rows still missing, and gets bit-identical rows on the same machine and thread count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from attribution.execution.executors import Block, Executor
from attribution.execution.plan import SubsetPlan
from attribution.execution.store import ResultStore
from attribution.tasks.spec import TaskSpec


@dataclass(frozen=True)
class RetrainSummary:
    """What one call of :func:`run_plan` did."""

    rows_total: int
    rows_trained: int
    rows_skipped: int
    seconds: float
    outputs_sha256: str | None


def block_partition(pending: list[int], batch_size: int) -> list[list[int]]:
    """Group pending rows by their fixed block ``row // batch_size``."""
    blocks: dict[int, list[int]] = {}
    for r in pending:
        blocks.setdefault(r // batch_size, []).append(r)
    return [blocks[k] for k in sorted(blocks)]


def run_plan(
    spec: TaskSpec,
    digest: bytes,
    plan: SubsetPlan,
    store: ResultStore,
    executor: Executor,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> RetrainSummary:
    """Train every row of ``plan`` not yet complete in ``store``; resumable and idempotent."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    start = time.perf_counter()
    pending = store.pending_rows()
    skipped = plan.n_rows - len(pending)
    blocks: list[Block] = list(block_partition(pending, batch_size))
    trained = 0
    for rows, values in executor.run(spec, digest, plan, blocks):
        store.write_block(rows, values)
        trained += len(rows)
        if progress is not None:
            progress(len(rows))
    return RetrainSummary(
        rows_total=plan.n_rows,
        rows_trained=trained,
        rows_skipped=skipped,
        seconds=time.perf_counter() - start,
        outputs_sha256=store.finalize(),
    )

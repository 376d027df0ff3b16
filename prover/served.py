"""What a Prover serves: a task and the attribution it commits to, and how it is built.

The attribution is computed with one of the estimators
(:func:`attribution.estimators.sources.compute_attribution`) or loaded from a file, and
the planning hint (the Prover's own estimate of E[r^2] per output) is computed from it.
With a cache file (``vattr serve --store``: ``STORE/served-attribution.npz``) the result
is saved, keyed by the task digest, the source (method, or the file's SHA-256) and a
``variant`` label, and reused by a restart with the same key: sessions committed to it
can be resumed even when recomputing would be slow or not bit-reproducible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from attribution.estimators.sources import (
    compute_attribution,
    default_method,
    load_attribution,
    residual_hint,
)
from attribution.protocol.common import TaskInfo, task_info
from attribution.tasks.runtime import Task

FloatArray = npt.NDArray[np.float64]
log = logging.getLogger("vattr.prover")


@dataclass(frozen=True)
class ServedTask:
    """The task, the attribution matrix (outputs, 1 + N) the Prover commits to, and its
    residual hint (one E[r^2] estimate per output; the Verifier may ignore it)."""

    task: Task
    attribution: FloatArray
    residual_hint: tuple[float, ...]

    @property
    def info(self) -> TaskInfo:
        return task_info(self.task)


def build_served(
    task: Task,
    method: str | None,
    attributions: Path | None,
    cache: Path | None = None,
    *,
    variant: str = "honest",
    transform: Callable[[FloatArray], FloatArray] | None = None,
) -> ServedTask:
    """The attribution from ``attributions`` (a file) or ``method``, passed through
    ``transform`` when given (the caller names it by ``variant`` in the cache key), with
    its residual hint; saved to / reused from ``cache`` when given (a damaged or
    mismatching cache is recomputed, never trusted)."""
    method = method or default_method(task)
    key = _cache_key(task, method, attributions, variant)
    if cache is not None and cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    log.info("served attribution from %s", cache)
                    hint = tuple(float(h) for h in z["hint"])
                    return ServedTask(task, np.array(z["A"], dtype=np.float64), hint)
        except Exception as exc:  # a damaged cache is recomputed, never trusted
            log.warning("ignoring unreadable %s: %s", cache, exc)
    if attributions is not None:
        A = load_attribution(task, attributions)
    else:
        A = compute_attribution(task, method)
    if transform is not None:
        A = transform(A)
    served = ServedTask(task, A, residual_hint(task, A))
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, key=np.array(key), A=A, hint=np.array(served.residual_hint))
        os.replace(tmp, cache)
    return served


def _cache_key(task: Task, method: str, attributions: Path | None, variant: str) -> str:
    source = (
        "file:" + hashlib.sha256(attributions.read_bytes()).hexdigest()
        if attributions is not None
        else "method:" + method
    )
    return json.dumps([task.digest.hex(), source, variant])

"""What attribution an (honest) Prover serves, and its planning hint for the Verifier.

Sources: ``exact`` (the synthetic oracle's optimum), ``datamodel[:R]`` (least squares on R
of the Prover's own B_p runs, R defaults to max(4 N, 2000)), ``empirical-influence[:R]``,
or a ``.npy`` file holding the matrix (outputs, 1 + N) in the protocol convention.
The residual hint is the Prover's estimate of E[(f - g)^2] per output on fresh runs of its
own; the Verifier only uses it to size a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.estimators.datamodel import fit_datamodel
from attribution.estimators.empirical_influence import empirical_influence
from attribution.execution.plan import retrain_plan
from attribution.protocol.common import g_values
from attribution.tasks.runtime import OracleTask, Task

FloatArray = npt.NDArray[np.float64]
FIT_SEED, HINT_SEED = 1_000_000, 2_000_000


def _runs(task: Task, count: int, seed: int) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    plan = retrain_plan(task.digest, task.n_points, count, task.spec.p, seed)
    rows = list(range(count))
    masks = plan.masks(rows)
    seeds = plan.seeds(rows)
    out = np.concatenate(
        [task.train_batch(masks[i : i + 512], seeds[i : i + 512]) for i in range(0, count, 512)]
    )
    return masks, out


def compute_attribution(task: Task, method: str) -> FloatArray:
    """The attribution matrix (T, 1 + N) for ``method`` (see the module docstring)."""
    name, _, arg = method.partition(":")
    if name == "exact":
        if not isinstance(task, OracleTask):
            raise UsageError("method 'exact' needs the synthetic task (exact spectrum)")
        ex = task.oracle.exact()
        return np.concatenate([[ex.theta0], ex.theta])[None, :]
    if name in ("datamodel", "empirical-influence"):
        try:
            runs = int(arg) if arg else max(4 * task.n_points, 2000)
        except ValueError as exc:
            raise UsageError(f"method {method!r}: R must be an integer") from exc
        masks, outputs = _runs(task, runs, FIT_SEED)
        if name == "datamodel":
            return fit_datamodel(masks, outputs)
        attr = empirical_influence(masks, outputs, task.spec.p)
        return np.column_stack([attr.a0, attr.a])
    path = Path(method)
    if path.suffix == ".npy" and path.is_file():
        return load_attribution(task, path)
    raise UsageError(
        f"unknown attribution source {method!r}: use exact, datamodel[:R], "
        "empirical-influence[:R] or a .npy file"
    )


def load_attribution(task: Task, path: Path) -> FloatArray:
    A = np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    if A.shape != (task.n_outputs, task.n_points + 1):
        raise UsageError(
            f"{path}: attribution of shape {A.shape}, expected ({task.n_outputs}, "
            f"{task.n_points + 1}) = (outputs, 1 + N)"
        )
    if not np.all(np.isfinite(A)):
        raise UsageError(f"{path}: attribution has non-finite values")
    return A


def residual_hint(task: Task, A: FloatArray, runs: int = 1000) -> tuple[float, ...]:
    """The Prover's estimate of E[(f - g_a)^2] per output (exact for the oracle)."""
    if isinstance(task, OracleTask):
        ex = task.oracle.exact()
        return tuple(
            ex.B_ge2 + task.oracle.err(float(A[o, 0]), A[o, 1:]) for o in range(A.shape[0])
        )
    masks, f = _runs(task, runs, HINT_SEED)
    return tuple(float(np.mean((f[:, o] - g_values(A[o], masks)) ** 2)) for o in range(A.shape[0]))

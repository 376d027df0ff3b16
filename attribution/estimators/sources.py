"""What attribution an (honest) Prover serves, and its planning hint for the Verifier.

Sources: any method of :mod:`attribution.estimators.registry` as ``NAME[:R]`` (R = the
runs it may use: ``exact`` for the synthetic oracle, ``datamodel``, ``empirical-influence``,
``if-exact``, ``newton-step``, ``rif``, ``random``), an ``.npz`` written by
``vattr attribute`` (its task digest must match), or a ``.npy`` matrix (outputs, 1 + N)
in the protocol convention.
The residual hint is the Prover's estimate of E[(f - g)^2] per output on fresh runs of its
own; the Verifier only uses it to size a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.protocol.common import g_values
from attribution.tasks.runtime import OracleTask, Task

FloatArray = npt.NDArray[np.float64]
FIT_SEED, HINT_SEED = 1_000_000, 2_000_000


def compute_attribution(task: Task, method: str) -> FloatArray:
    """The attribution matrix (T, 1 + N) for ``method`` (see the module docstring)."""
    from attribution.estimators.files import load_attribution_file
    from attribution.estimators.registry import METHODS, compute

    path = Path(method)
    if path.suffix in (".npy", ".npz"):
        if path.suffix == ".npy":
            return load_attribution(task, path)
        f = load_attribution_file(path)
        meta = f.metadata or {}
        if meta.get("task_digest") != task.digest.hex():
            raise UsageError(
                f"{path}: computed for task {meta.get('task')!r} (another digest), "
                f"not for {task.spec.name!r}"
            )
        return checked_attribution(task, f.attribution, str(path))
    name, _, arg = method.partition(":")
    if name not in METHODS:
        raise UsageError(
            f"unknown attribution source {method!r}: use one of "
            f"{', '.join(sorted(METHODS))} (optionally NAME:R), or a .npz/.npy file"
        )
    try:
        budget = int(arg) if arg else None
    except ValueError as exc:
        raise UsageError(f"method {method!r}: R must be an integer") from exc
    attribution, _meta = compute(task, name, budget, FIT_SEED)
    return checked_attribution(task, attribution, method)


def load_attribution(task: Task, path: Path) -> FloatArray:
    """A bare ``.npy`` attribution matrix, shape- and finiteness-checked."""
    try:
        A = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from exc
    return checked_attribution(task, A, str(path))


def checked_attribution(task: Task, A: npt.ArrayLike, where: str) -> FloatArray:
    arr = np.asarray(A, dtype=np.float64)
    if arr.shape != (task.n_outputs, task.n_points + 1):
        raise UsageError(
            f"{where}: attribution of shape {arr.shape}, expected ({task.n_outputs}, "
            f"{task.n_points + 1}) = (outputs, 1 + N)"
        )
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{where}: attribution has non-finite values")
    return arr


def residual_hint(task: Task, A: FloatArray, runs: int = 1000) -> tuple[float, ...]:
    """The Prover's estimate of E[(f - g_a)^2] per output (exact for the oracle)."""
    if isinstance(task, OracleTask):
        ex = task.oracle.exact()
        return tuple(
            ex.B_ge2 + task.oracle.err(float(A[o, 0]), A[o, 1:]) for o in range(A.shape[0])
        )
    from attribution.estimators.registry import fit_runs

    masks, f = fit_runs(task, runs, HINT_SEED)
    return tuple(float(np.mean((f[:, o] - g_values(A[o], masks)) ** 2)) for o in range(A.shape[0]))


def honest_attribution(task: Task, how: str | None) -> FloatArray:
    """The honest Prover's attribution matrix (T, 1 + N): what ``vattr serve`` would serve
    (:func:`compute_attribution`); by default the exact optimum on the synthetic task and
    a least-squares datamodel otherwise."""
    return compute_attribution(task, how or default_method(task))


def default_method(task: Task) -> str:
    """``exact`` on the synthetic oracle (its optimum is known), a least-squares
    ``datamodel`` otherwise."""
    return "exact" if isinstance(task, OracleTask) else "datamodel"


def claimed_mse(
    task: Task, A: FloatArray, outputs: tuple[int, ...], runs: int = 2000
) -> FloatArray:
    """What a Prover claims as its MSE for the naive baseline: its own residual estimate
    (:func:`residual_hint`; exact on the synthetic oracle)."""
    return np.asarray(residual_hint(task, A, runs), dtype=np.float64)[list(outputs)]

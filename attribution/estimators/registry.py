"""Named attribution methods: ``METHODS[name](task, budget, seed) -> (attribution, metadata)``.

Every method returns the protocol attribution (T, 1 + N) = ``[a0 | a]``: the affine
datamodel in +-1 encoding, one row per output, positive ``a_i`` = including point i
raises the output (docs/protocol.md section 1.1), and a JSON-ready metadata dict of its parameters.

``budget`` is the number of training runs on random subsets ``x ~ B_p`` the method may
use (``None``: the method's default); ``seed`` the root seed of those runs. They come
from the *fitting* plan :func:`attribution.execution.plan.retrain_plan` (derivation
domain ``b"retrain"``), rows ``0..budget-1``, so any evaluation must draw its subsets
elsewhere (:func:`attribution.metrics.lds.evaluation_plan`, domain ``b"evaluate"``).

Methods (default budget in brackets):

* ``datamodel`` [max(4N, 2000); needs budget > N + 1]: least squares on the +-1 design
  with intercept, lam = 0 (:func:`~attribution.estimators.datamodel.fit_datamodel`);
* ``datamodel-lasso`` [max(2N, 1000)]: Lasso on the +-1 design, lambda chosen by 5-fold
  cross-validation per output (works with fewer runs than points);
* ``empirical-influence`` [max(4N, 2000)]: Feldman-Zhang difference of means, halved
  (:func:`~attribution.estimators.empirical_influence.empirical_influence`);
* ``if-exact`` [256]: influence function with the exact Hessian. Convex tasks:
  ``Delta_i = f(theta + H^-1 g_i) - f(theta)`` (:mod:`~attribution.estimators.convex`);
  MLP tasks: the linearised ``Delta_i = s grad f^T (H + lambda I)^-1 g_i`` with the
  explicit Hessian (``torch.func.hessian``; P up to a few thousand), calibrated;
* ``if-ggn``, ``if-cg``, ``if-lissa``, ``if-arnoldi``, ``if-kfac``, ``if-ekfac`` [256]:
  the same linearised IF with the curvature backend of
  :mod:`~attribution.estimators.curvature` (explicit Gauss-Newton, conjugate gradients
  on Hessian-vector products, LiSSA, Arnoldi top-eigenspace, K-FAC, EK-FAC), for MLP
  and convex tasks (on a convex task the model is linear and GGN = Hessian), with the
  damping and options of :data:`~attribution.estimators.gradient.DEFAULT_DAMPING` /
  ``DEFAULT_OPTIONS`` (:func:`~attribution.estimators.gradient.influence_effects`);
* ``grad-dot`` [256]: ``Delta_i = s grad f^T g_i`` (curvature = identity), calibrated;
* ``trak`` [256]: TRAK over 10 checkpoints (fitting-plan rows 0..9, the task's recipe),
  projection dimension 512, ``Delta = -tau``, calibrated
  (:mod:`~attribution.estimators.trak`; classification tasks only);
* ``newton-step`` [256]: single-point Newton step ``H_{-i}^-1 g_i``, calibrated;
* ``rif`` [256]: rescaled IF ``H^-1 g_i / (1 - h_i)``, calibrated (for one point of a
  binary/ridge model it equals the Newton step);
* ``random`` [256]: scores ``U(-1, 1)`` of shape (T, N) from
  ``numpy.random.default_rng(seed)``, calibrated -- the baseline, LDS zero line;
* ``exact`` [no runs]: the synthetic oracle's optimum theta* (synthetic task only).

Convex methods (``newton-step``, ``rif``; ``if-exact`` on convex tasks) need a convex
task (logistic, multinomial or ridge trainer); gradient methods (``if-*``, ``grad-dot``,
``trak``) an MLP or convex task. All of them train the full-data model once (MLP: seed
:func:`~attribution.estimators.gradient.full_data_seed`), turn the removal effects
``Delta`` (T, N) into contributions ``c = -Delta`` and calibrate ``f_t ~ alpha_t +
beta_t <c_t, x>`` on the budget's B_p runs; ``beta`` is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.estimators.calibration import Calibration, calibrate
from attribution.estimators.convex import ConvexInfluence, PointMethod
from attribution.estimators.datamodel import fit_datamodel
from attribution.estimators.empirical_influence import empirical_influence
from attribution.estimators.gradient import grad_dot_effects, influence_effects
from attribution.estimators.trak import trak_effects
from attribution.execution.plan import retrain_plan
from attribution.tasks.runtime import ConvexTask, MLPTask, OracleTask, Task

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MethodResult = tuple[FloatArray, dict[str, Any]]
MethodFn = Callable[[Task, int | None, int], MethodResult]

CONVENTION = "affine +-1, (outputs, 1+N), positive = including raises the output"
FIT_DOMAIN = "retrain"
CALIBRATION_RUNS = 256
PENDING: tuple[str, ...] = ()
"""Methods that are planned but not implemented yet (none at present)."""
IF_BACKENDS: dict[str, str] = {
    "if-exact": "explicit",
    "if-ggn": "ggn",
    "if-cg": "cg",
    "if-lissa": "lissa",
    "if-arnoldi": "arnoldi",
    "if-kfac": "kfac",
    "if-ekfac": "ekfac",
}
"""Influence-function methods and their curvature backends."""


def fit_runs(task: Task, count: int, seed: int) -> tuple[BoolArray, FloatArray]:
    """Rows ``0..count-1`` of the fitting plan ``retrain_plan(task, count, p, seed)``:
    masks (count, N) and trained outputs (count, T)."""
    plan = retrain_plan(task.digest, task.n_points, count, task.spec.p, seed)
    rows = list(range(count))
    masks = plan.masks(rows)
    return masks, task.train_chunked(masks, plan.seeds(rows))


def _runs_meta(count: int, seed: int) -> dict[str, Any]:
    return {"fit_runs": count, "fit_seed": seed, "fit_domain": FIT_DOMAIN}


def _budget(budget: int | None, default: int, minimum: int, method: str) -> int:
    runs = default if budget is None else budget
    if runs < minimum:
        raise UsageError(f"method {method!r} needs --budget >= {minimum} runs, got {runs}")
    return runs


def _datamodel(task: Task, budget: int | None, seed: int) -> MethodResult:
    n = task.n_points
    runs = _budget(budget, max(4 * n, 2000), n + 2, "datamodel")
    masks, outputs = fit_runs(task, runs, seed)
    try:
        A = fit_datamodel(masks, outputs, device=task.device)
    except (ValueError, np.linalg.LinAlgError, RuntimeError) as exc:  # torch LinAlgError
        raise UsageError(f"datamodel: {exc}") from exc
    return A, {**_runs_meta(runs, seed), "lam": 0.0, "fit": "least squares, +-1 design"}


def _datamodel_lasso(task: Task, budget: int | None, seed: int) -> MethodResult:
    runs = _budget(budget, max(2 * task.n_points, 1000), 20, "datamodel-lasso")
    masks, outputs = fit_runs(task, runs, seed)
    A = fit_datamodel(masks, outputs, method="lasso", device=task.device)
    return A, {**_runs_meta(runs, seed), "fit": "Lasso, lambda by 5-fold CV per output, +-1 design"}


def _empirical_influence(task: Task, budget: int | None, seed: int) -> MethodResult:
    runs = _budget(budget, max(4 * task.n_points, 2000), 8, "empirical-influence")
    masks, outputs = fit_runs(task, runs, seed)
    try:
        attr = empirical_influence(masks, outputs, task.spec.p)
    except ValueError as exc:
        raise UsageError(f"empirical-influence with {runs} runs: {exc}") from exc
    meta = {
        **_runs_meta(runs, seed),
        "fit": "difference of means / 2",
        "stderr_mean": float(attr.stderr.mean()),
    }
    return np.ascontiguousarray(np.column_stack([attr.a0, attr.a])), meta


def _calibrated(
    task: Task, scores: FloatArray, runs: int, seed: int, extra: dict[str, Any]
) -> MethodResult:
    masks, outputs = fit_runs(task, runs, seed)
    cal: Calibration = calibrate(scores, masks, outputs)
    meta = {
        **_runs_meta(runs, seed),
        **extra,
        "calibration": "f_t ~ alpha_t + beta_t <c_t, x> (least squares on the fit runs)",
        "calibration_beta": [float(b) for b in cal.beta],
        "calibration_r2_mean": float(np.nanmean(cal.r2)) if np.any(np.isfinite(cal.r2)) else None,
    }
    return cal.attribution, meta


def _convex(method: str, removal: PointMethod) -> MethodFn:
    def run(task: Task, budget: int | None, seed: int) -> MethodResult:
        if not isinstance(task, ConvexTask):
            raise UsageError(
                f"method {method!r} needs a convex task (trainer logistic, multinomial or "
                f"ridge); task {task.spec.name!r} uses {task.spec.training.trainer!r}"
            )
        runs = _budget(budget, CALIBRATION_RUNS, 3, method)
        est = ConvexInfluence.from_task(task)
        delta = est.removal_effects(removal, "evaluated")
        extra = {"removal": removal, "output_mode": "evaluated", "hessian": "exact"}
        return _calibrated(task, -delta, runs, seed, extra)

    return run


def _gradient_task(task: Task, method: str) -> MLPTask | ConvexTask:
    if not isinstance(task, MLPTask | ConvexTask):
        raise UsageError(
            f"method {method!r} needs an MLP or convex task; task {task.spec.name!r} uses "
            f"{task.spec.training.trainer!r}"
        )
    return task


def _influence(method: str) -> MethodFn:
    backend = IF_BACKENDS[method]
    convex_exact = _convex(method, "if") if method == "if-exact" else None

    def run(task: Task, budget: int | None, seed: int) -> MethodResult:
        if convex_exact is not None and isinstance(task, ConvexTask):
            return convex_exact(task, budget, seed)
        t = _gradient_task(task, method)
        runs = _budget(budget, CALIBRATION_RUNS, 3, method)
        try:
            delta, extra = influence_effects(t, backend, seed)
        except ValueError as exc:
            raise UsageError(f"{method}: {exc}") from exc
        return _calibrated(t, -delta, runs, seed, extra)

    return run


def _grad_dot(task: Task, budget: int | None, seed: int) -> MethodResult:
    t = _gradient_task(task, "grad-dot")
    runs = _budget(budget, CALIBRATION_RUNS, 3, "grad-dot")
    delta, extra = grad_dot_effects(t, seed)
    return _calibrated(t, -delta, runs, seed, extra)


def _trak(task: Task, budget: int | None, seed: int) -> MethodResult:
    t = _gradient_task(task, "trak")
    runs = _budget(budget, CALIBRATION_RUNS, 3, "trak")
    try:
        delta, extra = trak_effects(t, seed)
    except ValueError as exc:
        raise UsageError(f"trak: {exc}") from exc
    return _calibrated(t, -delta, runs, seed, extra)


def _random(task: Task, budget: int | None, seed: int) -> MethodResult:
    runs = _budget(budget, CALIBRATION_RUNS, 3, "random")
    scores = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(task.n_outputs, task.n_points))
    return _calibrated(task, scores, runs, seed, {"scores": "uniform(-1, 1), default_rng(seed)"})


def _exact(task: Task, budget: int | None, seed: int) -> MethodResult:
    if not isinstance(task, OracleTask):
        raise UsageError("method 'exact' needs the synthetic task (known spectrum)")
    ex = task.oracle.exact()
    A = np.concatenate([[ex.theta0], ex.theta])[None, :].astype(np.float64)
    return A, {"fit_runs": 0, "fit": "exact optimum theta* of the oracle"}


METHODS: dict[str, MethodFn] = {
    "datamodel": _datamodel,
    "datamodel-lasso": _datamodel_lasso,
    "empirical-influence": _empirical_influence,
    **{method: _influence(method) for method in IF_BACKENDS},
    "newton-step": _convex("newton-step", "ns"),
    "rif": _convex("rif", "rif"),
    "grad-dot": _grad_dot,
    "trak": _trak,
    "random": _random,
    "exact": _exact,
}


def get_method(name: str) -> MethodFn:
    """The method called ``name``; :class:`UsageError` if unknown or not yet available."""
    if name in METHODS:
        return METHODS[name]
    available = ", ".join(METHODS)
    if name in PENDING:
        raise UsageError(
            f"method {name!r} is not yet available (planned: {', '.join(PENDING)}); "
            f"available: {available}"
        )
    raise UsageError(f"unknown method {name!r}; available: {available}")


def compute(task: Task, name: str, budget: int | None = None, seed: int = 0) -> MethodResult:
    """Run method ``name`` and return ``(attribution (T, 1 + N), metadata)``.

    The metadata holds the method's parameters plus ``method``, ``budget`` (as given),
    ``seed`` and ``convention``; the shape and finiteness are checked here.
    """
    fn = get_method(name)
    if budget is not None and budget < 1:
        raise UsageError("--budget must be at least 1")
    A, meta = fn(task, budget, seed)
    want = (task.n_outputs, task.n_points + 1)
    if A.shape != want:
        raise RuntimeError(f"method {name!r} returned shape {A.shape}, expected {want}")
    if not np.all(np.isfinite(A)):
        raise UsageError(f"method {name!r} produced non-finite values")
    return np.ascontiguousarray(A, dtype=np.float64), {
        "method": name,
        "budget": budget,
        "seed": seed,
        "convention": CONVENTION,
        **meta,
    }

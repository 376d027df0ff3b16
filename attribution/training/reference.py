"""Independent references: the same objective fitted by scikit-learn, one subset at a time.

Used by the tests (batched trainers must agree to 1e-6 in every output) and by
``vattr bench retrain`` as the per-subset baseline. ``LogisticRegression(C=1/l2)`` and
``Ridge(alpha=l2)`` fitted on the included points minimise exactly the objective of
:mod:`attribution.training.newton` (scikit-learn does not penalise the intercept).
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import torch

from attribution.tasks.runtime import ConvexTask
from attribution.training.outputs import binary_margins, finish_outputs, multiclass_margins


def sklearn_outputs(
    task: ConvexTask,
    mask: npt.NDArray[np.bool_],
    solver: str = "newton-cholesky",
    tol: float = 1e-12,
) -> npt.NDArray[np.float64]:
    """Outputs (T,) of the model scikit-learn fits on the points of ``mask``."""
    from sklearn.linear_model import LogisticRegression, Ridge

    tr = task.spec.training
    X, y = task.X_train[mask], task.y_train[mask]
    if tr.trainer == "ridge":
        model = Ridge(alpha=tr.l2, fit_intercept=tr.fit_intercept, solver="cholesky").fit(X, y)
        pred = model.predict(task.X_val)[None, :]
        values = torch.as_tensor(pred)
    else:
        model = LogisticRegression(
            C=1.0 / tr.l2, solver=solver, tol=tol, max_iter=1000, fit_intercept=tr.fit_intercept
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        Z = model.decision_function(task.X_val)
        if tr.trainer == "logistic":
            values = binary_margins(torch.as_tensor(Z)[None, :], torch.as_tensor(task.y_val))
        else:
            ids = torch.as_tensor(task.y_val.astype(np.int64))
            full = np.zeros((Z.shape[0], task.n_classes))
            full[:, model.classes_.astype(np.int64)] = Z
            if len(model.classes_) < task.n_classes:
                full[:, np.setdiff1d(np.arange(task.n_classes), model.classes_)] = -np.inf
            values = multiclass_margins(torch.as_tensor(full)[None], ids)
    out = finish_outputs(values, task.spec.output.mean, task.spec.output.bound)
    return np.asarray(out[0].numpy(), dtype=np.float64)

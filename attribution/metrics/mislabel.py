"""Mislabel-detection AUC via the Mann-Whitney statistic.

Inputs: ``scores`` (N,), larger = more suspicious (e.g. self-influence
``g_i^T H^{-1} g_i``, or the harm a point does to validation outputs, ``-sum_t a_ti``);
``is_mislabeled`` (N,) bool (True = the label was flipped). With ``n1`` flipped and
``n0`` clean points and average ranks ``rank_i`` of the scores (ties share the mean
rank)::

    U   = sum_{i flipped} rank_i - n1 (n1 + 1) / 2
    AUC = U / (n1 n0)
        = P(score of a flipped point > score of a clean one) + P(tie) / 2

equal to ``sklearn.metrics.roc_auc_score(is_mislabeled, scores)``. 1 = every flipped
point ranks above every clean one, 0.5 = chance (random scores), 0 = exactly reversed
(a sign error). Its standard error is Hanley and McNeil's (1982)::

    Q1 = AUC / (2 - AUC),  Q2 = 2 AUC^2 / (1 + AUC)
    SE = sqrt((AUC (1 - AUC) + (n1 - 1)(Q1 - AUC^2) + (n0 - 1)(Q2 - AUC^2)) / (n1 n0))

The AUC is undefined without at least one flipped and one clean point: ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata


@dataclass(frozen=True)
class AUCResult:
    """``value`` (AUC), Hanley-McNeil ``stderr``, ``n_mislabeled`` (n1), ``n_clean`` (n0)."""

    value: float
    stderr: float
    n_mislabeled: int
    n_clean: int


def mislabel_auc(scores: npt.ArrayLike, is_mislabeled: npt.ArrayLike) -> AUCResult:
    """AUC of ``scores`` (N,) for detecting ``is_mislabeled`` (N,) bool (module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_mislabeled)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"need scores (N,) and is_mislabeled (N,), got {s.shape} and {y.shape}")
    if y.dtype != np.bool_:
        raise ValueError("is_mislabeled must be a bool array")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores have non-finite values")
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    if n1 == 0 or n0 == 0:
        raise ValueError("the AUC needs at least one mislabeled and one clean point")
    ranks = np.asarray(rankdata(s, method="average"), dtype=np.float64)
    u = float(ranks[y].sum()) - n1 * (n1 + 1) / 2.0
    auc = u / (n1 * n0)
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    return AUCResult(value=auc, stderr=math.sqrt(max(var, 0.0)), n_mislabeled=n1, n_clean=n0)

"""Evaluation metrics for attributions: small pure functions on arrays.

Orientation is (outputs, N) throughout; the protocol attribution is ``[a0 | a]`` in +-1
encoding with positive ``a_i`` = including point i raises the output; removal effects
``Delta_i = f(A(D \\ {i})) - f(A(D))`` have the opposite sign. Each function returns a
frozen dataclass holding the value and, where it has one, its uncertainty.
"""

from attribution.metrics.brittleness import BrittlenessResult, brittleness
from attribution.metrics.fit import FitResult, heldout_fit
from attribution.metrics.lds import LDSResult, evaluation_plan, lds, predict
from attribution.metrics.loo import LOOResult, loo_correlation
from attribution.metrics.mislabel import AUCResult, mislabel_auc
from attribution.metrics.removal import GroupRemovalResult, group_removal_error

__all__ = [
    "AUCResult",
    "BrittlenessResult",
    "FitResult",
    "GroupRemovalResult",
    "LDSResult",
    "LOOResult",
    "brittleness",
    "evaluation_plan",
    "group_removal_error",
    "heldout_fit",
    "lds",
    "loo_correlation",
    "mislabel_auc",
    "predict",
]

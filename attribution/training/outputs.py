"""Output functions f(theta): per-validation-point values, their mean, and the clip.

Orientation: outputs are (M, T) for M models; column t < n_val is validation point t,
the optional last column is the mean over validation points. Every value is clipped to
``[-b, b]`` after the mean is taken (the clip is part of f, docs/protocol.md section 1.1).

* binary margin: ``log p_y - log(1 - p_y) = (2y - 1) * z`` with ``z = x.w``;
* multiclass margin: ``z_y - logsumexp_{k != y} z_k`` (= ``log p_y - log(1 - p_y)``);
* prediction (regression): ``x.w``.
Positive margins mean the validation point is classified correctly.
"""

from __future__ import annotations

import torch
from torch import Tensor


def binary_margins(Z: Tensor, y: Tensor) -> Tensor:
    """``Z`` (M, n_val) logits, ``y`` (n_val,) in {0, 1} -> margins (M, n_val)."""
    return Z * (2.0 * y - 1.0)


def multiclass_margins(Z: Tensor, y: Tensor) -> Tensor:
    """``Z`` (M, n_val, C) logits, ``y`` (n_val,) int64 -> margins (M, n_val)."""
    correct = Z.gather(2, y.view(1, -1, 1).expand(Z.shape[0], -1, 1)).squeeze(2)
    others = Z.scatter(2, y.view(1, -1, 1).expand(Z.shape[0], -1, 1), float("-inf"))
    return correct - torch.logsumexp(others, dim=2)


def finish_outputs(values: Tensor, with_mean: bool, bound: float) -> Tensor:
    """Append the mean column if asked, clip to [-bound, bound]; returns float64."""
    v = values.to(torch.float64)
    if with_mean:
        v = torch.cat([v, v.mean(dim=1, keepdim=True)], dim=1)
    return v.clamp(-bound, bound)

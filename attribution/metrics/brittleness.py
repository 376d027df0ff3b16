"""Brittleness: top-k removal against random-k removal.

Inputs: ``scores`` (N,) for one output t in contribution orientation (positive =
including the point raises f_t; e.g. row t of the attribution without its intercept,
``attribution[t, 1:]``, or ``-Delta_t``); ``retrain(masks) -> outputs``, a caller-supplied
function training one model per mask, masks (M, N) bool (True = kept) -> outputs (M, T)
(for a task: ``lambda m: task.train_batch(m, seeds_for(m))``); ``ks`` the removal sizes.

Let ``top_k`` be the k highest-scoring points (sorted by score descending; ties broken
by the lower index) and ``R_kj`` (j = 1..n_random) uniformly random k-subsets drawn
without replacement from ``numpy.random.default_rng(seed)``. One batched call to
``retrain`` trains the full set D, each ``D \\ top_k`` and each ``D \\ R_kj``::

    base              = f_t(D)
    top_effect_k      = f_t(D \\ top_k) - base         (good scores: strongly negative)
    random_effect_kj  = f_t(D \\ R_kj) - base
    advantage_k       = mean_j random_effect_kj - top_effect_k   (> 0: the scores find
                                                                  points that matter more
                                                                  than random ones)
    flipped           = sign(f_t(D \\ .)) != sign(base)            (the prediction flips)

``random_effect_se`` is ``std_j(ddof=1) / sqrt(n_random)`` (NaN for one repeat);
``min_flip_k`` the smallest k in ``ks`` whose top-k removal flips the output (None if
none does; lower = better for margins of correctly classified targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
RetrainFn = Callable[[BoolArray], npt.ArrayLike]
"""masks (M, N) bool, True = kept -> outputs (M, T)."""


@dataclass(frozen=True)
class BrittlenessResult:
    """Removal sizes ``ks`` (K,), ``base`` output, ``top_effect`` (K,), ``random_effect``
    (K, n_random) with mean and standard error (K,), ``advantage`` (K,), flips
    (``top_flipped`` (K,) bool, ``random_flip_rate`` (K,)) and ``min_flip_k``."""

    ks: IntArray
    output: int
    base: float
    top_effect: FloatArray
    random_effect: FloatArray
    random_effect_mean: FloatArray
    random_effect_se: FloatArray
    advantage: FloatArray
    top_flipped: BoolArray
    random_flip_rate: FloatArray
    min_flip_k: int | None


def brittleness(
    scores: npt.ArrayLike,
    retrain: RetrainFn,
    ks: Sequence[int],
    *,
    output: int = 0,
    n_random: int = 5,
    seed: int = 0,
) -> BrittlenessResult:
    """Top-k vs random-k removal for output ``output`` (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise ValueError("scores must be a finite (N,) array")
    N = s.shape[0]
    k_arr = np.asarray(list(ks), dtype=np.int64)
    if k_arr.ndim != 1 or k_arr.size == 0:
        raise ValueError("ks must be a non-empty sequence of integers")
    if np.any(k_arr < 0) or np.any(k_arr >= N):
        raise ValueError(f"every k must lie in [0, {N})")
    if n_random < 1:
        raise ValueError("n_random must be >= 1")
    order = np.argsort(-s, kind="stable")
    rng = np.random.default_rng(seed)
    rows = [np.ones(N, dtype=bool)]
    for k in k_arr:
        keep = np.ones(N, dtype=bool)
        keep[order[:k]] = False
        rows.append(keep)
    for k in k_arr:
        for _ in range(n_random):
            keep = np.ones(N, dtype=bool)
            keep[rng.choice(N, int(k), replace=False)] = False
            rows.append(keep)
    masks = np.stack(rows)
    out = np.asarray(retrain(masks), dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != masks.shape[0]:
        raise ValueError(f"retrain returned shape {out.shape} for {masks.shape[0]} masks")
    if not 0 <= output < out.shape[1]:
        raise ValueError(f"output {output} outside the {out.shape[1]} outputs")
    f = out[:, output]
    if not np.all(np.isfinite(f)):
        raise ValueError("retrain returned non-finite outputs")
    K = k_arr.size
    base = float(f[0])
    top = f[1 : 1 + K]
    rand = f[1 + K :].reshape(K, n_random)
    top_effect = top - base
    random_effect = rand - base
    mean_r = random_effect.mean(axis=1)
    se_r = (
        random_effect.std(axis=1, ddof=1) / np.sqrt(n_random)
        if n_random > 1
        else np.full(K, np.nan)
    )
    sign0 = np.sign(base)
    top_flipped = np.sign(top) != sign0
    flips = [int(k) for k, fl in zip(k_arr, top_flipped, strict=True) if fl]
    return BrittlenessResult(
        ks=k_arr,
        output=output,
        base=base,
        top_effect=top_effect,
        random_effect=random_effect,
        random_effect_mean=mean_r,
        random_effect_se=se_r,
        advantage=mean_r - top_effect,
        top_flipped=top_flipped,
        random_flip_rate=(np.sign(rand) != sign0).mean(axis=1),
        min_flip_k=min(flips) if flips else None,
    )

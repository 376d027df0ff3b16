"""Shared helpers for the tests (imported as ``tests.helpers``)."""

from __future__ import annotations

import numpy as np

from attribution.subsets import bernoulli_mask, int_seed, prob_to_u32, training_seed
from attribution.tasks.spec import TaskSpec, parse_spec


def convex_spec(
    source: str,
    trainer: str,
    *,
    l2: float = 1.0,
    kind: str | None = None,
    bound: float = 10.0,
    name: str = "test-task",
) -> TaskSpec:
    """A small convex task spec on a scikit-learn data set (no data digest pinned)."""
    out_kind = kind or ("prediction" if trainer == "ridge" else "margin")
    return parse_spec(f"""
name = "{name}"
[data]
source = "{source}"
[training]
trainer = "{trainer}"
l2 = {l2}
[output]
kind = "{out_kind}"
mean = true
bound = {bound}
[equivalence]
mode = "atol"
atol = 1e-9
""")


def random_subsets(
    n_points: int,
    count: int,
    p: float = 0.5,
    seed: int = 1,
) -> tuple[np.ndarray, list[bytes]]:
    """``count`` B_p masks and training seeds derived from ``seed``."""
    s = int_seed(seed)
    masks = np.stack([bernoulli_mask(s, b"t", [i], n_points, prob_to_u32(p)) for i in range(count)])
    return masks, [training_seed(s, b"t", [i]) for i in range(count)]

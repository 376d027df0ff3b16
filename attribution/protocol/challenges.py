"""Challenge set E, spot-check set C and MSE set M from SHAKE-256 (docs/protocol.md section 4).

Layout of E (``ChallengeLayout``): for each noise level t in (0, rho, 2 rho), ``n_t`` pairs
stored as consecutive rows ``x, x'``; then ``n_single`` singletons (paper estimator).
Row indices are what the Prover trains, commits and streams, in this order.

Derivation, with ``bind = bind_digest(task_digest, params_digest, session_id, nonce_P,
root_a)`` and level codes 0, 1, 2 for (0, rho, 2 rho) and 3 for singletons, role codes
0 = x, 1 = x', 2 = single:

* anchor ``x`` of pair j at level t: ``bernoulli_mask(seed_E, bind, [t, j, 0])``;
* partner at level 0: an independent draw ``bernoulli_mask(seed_E, bind, [0, j, 1])``;
* partner at level rho / 2 rho: ``correlated_mask(x, seed_E, bind, [t, j, 1], P32, R32_t)``;
* singleton j: ``bernoulli_mask(seed_E, bind, [3, j, 2])``;
* training seed of any row: ``training_seed(seed_E, bind, [t, j, role])``.

Spot checks: a partial Fisher-Yates shuffle of ``range(|E|)`` whose i-th swap index is
``i + uniform_index("spot", seed_C, bind, [i], |E| - i)``; C = the first k entries.
MSE subsets: ``bernoulli_mask(seed_M, bind, [m], label="mse_subset")`` with training
seed ``training_seed(seed_M, bind, [m], label="mse_seed")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.subsets import (
    bernoulli_mask,
    correlated_mask,
    training_seed,
    uniform_index,
)

LEVELS = ("0", "rho", "2rho")
SINGLE = "single"
ROLE_X, ROLE_XP, ROLE_SINGLE = 0, 1, 2


@dataclass(frozen=True)
class ChallengeLayout:
    """Sizes of E: pairs per level (0, rho, 2 rho) and singletons."""

    n_pairs: tuple[int, int, int]
    n_single: int = 0

    @property
    def n_rows(self) -> int:
        return 2 * sum(self.n_pairs) + self.n_single

    def level_start(self, level: int) -> int:
        return 2 * sum(self.n_pairs[:level])

    def level_rows(self, level: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Row indices of (x, x') for every pair of ``level`` (0, 1, 2)."""
        start = self.level_start(level)
        j = np.arange(self.n_pairs[level], dtype=np.int64)
        return start + 2 * j, start + 2 * j + 1

    def single_rows(self) -> npt.NDArray[np.int64]:
        start = 2 * sum(self.n_pairs)
        return np.arange(start, start + self.n_single, dtype=np.int64)

    def decode(self, row: int) -> tuple[int, int, int]:
        """Row -> (level code, pair or singleton index, role code)."""
        if not 0 <= row < self.n_rows:
            raise IndexError(f"row {row} outside E of {self.n_rows} rows")
        offset = row
        for level, n in enumerate(self.n_pairs):
            if offset < 2 * n:
                return level, offset // 2, offset % 2
            offset -= 2 * n
        return 3, offset, ROLE_SINGLE


@dataclass(frozen=True)
class ChallengePlan:
    """E as a :class:`~attribution.execution.plan.SubsetPlan` (masks never shipped)."""

    n_points: int
    layout: ChallengeLayout
    p32: int
    r32: tuple[int, int]  # keep probabilities of the rho and 2 rho levels
    seed: bytes
    bind: bytes

    @property
    def n_rows(self) -> int:
        return self.layout.n_rows

    def mask(self, row: int) -> npt.NDArray[np.bool_]:
        level, j, role = self.layout.decode(row)
        if level == 3:
            return bernoulli_mask(
                self.seed, self.bind, [3, j, ROLE_SINGLE], self.n_points, self.p32
            )
        if role == ROLE_X or level == 0:
            return bernoulli_mask(self.seed, self.bind, [level, j, role], self.n_points, self.p32)
        anchor = bernoulli_mask(self.seed, self.bind, [level, j, ROLE_X], self.n_points, self.p32)
        return correlated_mask(
            anchor, self.seed, self.bind, [level, j, ROLE_XP], self.p32, self.r32[level - 1]
        )

    def masks(self, rows: Sequence[int]) -> npt.NDArray[np.bool_]:
        if len(rows) == 0:
            return np.zeros((0, self.n_points), dtype=bool)
        return np.stack([self.mask(int(r)) for r in rows])

    def seeds(self, rows: Sequence[int]) -> list[bytes]:
        out = []
        for r in rows:
            level, j, role = self.layout.decode(int(r))
            out.append(training_seed(self.seed, self.bind, [level, j, role]))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "challenge",
            "n_points": self.n_points,
            "n_rows": self.n_rows,
            "n_pairs": list(self.layout.n_pairs),
            "n_single": self.layout.n_single,
            "p32": self.p32,
            "r32": list(self.r32),
            "seed": self.seed.hex(),
            "bind": self.bind.hex(),
        }


@dataclass(frozen=True)
class MsePlan:
    """M: fresh B_p subsets with fresh seeds for the Verifier's local MSE estimate."""

    n_points: int
    n_rows: int
    p32: int
    seed: bytes
    bind: bytes

    def masks(self, rows: Sequence[int]) -> npt.NDArray[np.bool_]:
        if len(rows) == 0:
            return np.zeros((0, self.n_points), dtype=bool)
        return np.stack(
            [
                bernoulli_mask(
                    self.seed, self.bind, [int(m)], self.n_points, self.p32, "mse_subset"
                )
                for m in rows
            ]
        )

    def seeds(self, rows: Sequence[int]) -> list[bytes]:
        return [training_seed(self.seed, self.bind, [int(m)], "mse_seed") for m in rows]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "mse",
            "n_points": self.n_points,
            "n_rows": self.n_rows,
            "p32": self.p32,
            "seed": self.seed.hex(),
            "bind": self.bind.hex(),
        }


def spot_check_rows(seed: bytes, bind: bytes, n_rows: int, k: int) -> list[int]:
    """The secret spot-check set C: k distinct rows of E by partial Fisher-Yates."""
    k = min(k, n_rows)
    perm = list(range(n_rows))
    for i in range(k):
        j = i + uniform_index("spot", seed, bind, [i], n_rows - i)
        perm[i], perm[j] = perm[j], perm[i]
    return sorted(perm[:k])

"""Subset plans: which subset and training seed each row of a run gets.

A plan never ships masks: it is a few bytes of parameters from which any worker (or any
third party) re-derives row ``i``'s mask and training seed with SHAKE-256
(:mod:`attribution.subsets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from attribution.subsets import bernoulli_mask, bind_digest, int_seed, prob_to_u32, training_seed


class SubsetPlan(Protocol):
    """Row ``i`` -> (mask of length ``n_points``, 32-byte training seed)."""

    @property
    def n_points(self) -> int: ...

    @property
    def n_rows(self) -> int: ...

    def masks(self, rows: Sequence[int]) -> npt.NDArray[np.bool_]: ...

    def seeds(self, rows: Sequence[int]) -> list[bytes]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BernoulliPlan:
    """Independent subsets ``x ~ B_p``: row i uses ``XOF("subset", seed, bind, [i])`` for its
    mask and ``XOF("seed", seed, bind, [i])`` for its training seed."""

    n_points: int
    n_rows: int
    p32: int
    seed: bytes
    bind: bytes

    def masks(self, rows: Sequence[int]) -> npt.NDArray[np.bool_]:
        self._check(rows)
        if len(rows) == 0:
            return np.zeros((0, self.n_points), dtype=bool)
        return np.stack(
            [bernoulli_mask(self.seed, self.bind, [i], self.n_points, self.p32) for i in rows]
        )

    def seeds(self, rows: Sequence[int]) -> list[bytes]:
        self._check(rows)
        return [training_seed(self.seed, self.bind, [i]) for i in rows]

    def _check(self, rows: Sequence[int]) -> None:
        for i in rows:
            if not 0 <= i < self.n_rows:
                raise IndexError(f"row {i} outside the plan's {self.n_rows} rows")

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "bernoulli",
            "n_points": self.n_points,
            "n_rows": self.n_rows,
            "p32": self.p32,
            "seed": self.seed.hex(),
            "bind": self.bind.hex(),
        }


def retrain_plan(
    task_digest: bytes, n_points: int, count: int, p: float, seed: int
) -> BernoulliPlan:
    """The plan of ``vattr retrain``: ``seed`` bytes ``u64be(seed)``, ``bind =
    bind_digest(task_digest, b"retrain")`` (so another task gets other subsets)."""
    return BernoulliPlan(
        n_points=n_points,
        n_rows=count,
        p32=prob_to_u32(p),
        seed=int_seed(seed),
        bind=bind_digest(task_digest, b"retrain"),
    )


@dataclass(frozen=True)
class RowSubset:
    """Rows ``rows`` of another plan, renumbered 0..len(rows)-1 (e.g. the Verifier's spot
    checks: a few rows of the challenge set E)."""

    plan: Any
    rows: tuple[int, ...]

    @property
    def n_points(self) -> int:
        return int(self.plan.n_points)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def masks(self, rows: Sequence[int]) -> npt.NDArray[np.bool_]:
        return np.asarray(self.plan.masks([self.rows[i] for i in rows]), dtype=bool)

    def seeds(self, rows: Sequence[int]) -> list[bytes]:
        return list(self.plan.seeds([self.rows[i] for i in rows]))

    def describe(self) -> dict[str, Any]:
        import hashlib

        inner = self.plan.describe()
        digest = hashlib.sha256(np.asarray(self.rows, dtype=">u8").tobytes()).hexdigest()
        return {
            **inner,
            "kind": f"rows-of-{inner['kind']}",
            "n_rows": len(self.rows),
            "rows_sha256": digest,
        }

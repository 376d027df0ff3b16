"""Brute-force adversaries against the banded corruption charges (docs/protocol.md section 6.13).

Every honest value lies in a band ``[lower, upper]`` fixed before the values are seen
(here: the committed band ``clip(g +- R, -b, b)``), the Verifier clips what it receives into
the band, so a corrupted value is any point of its band. For every corrupted set of size
``m`` the shift of the residual estimate must be at most the sum of the ``m`` largest
charges computed on the *observed* values.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from attribution.fourier import estimation as est
from attribution.protocol.decision import committed_band


class _Banded:
    def __init__(self, rng: np.random.Generator, rho: float, b: float, radius: float) -> None:
        self.rho, self.b = rho, b
        n_t = rng.integers(1, 4, size=3)
        self.n_t = tuple(int(x) for x in n_t)
        size = 2 * sum(self.n_t)
        # some g near or beyond the output bound, so that clipped bands occur
        self.g = rng.normal(scale=0.8 * b, size=size)
        self.lo, self.hi = committed_band(self.g, radius, b)
        u = rng.uniform(size=size)
        honest = self.lo + u * (self.hi - self.lo)
        edge = rng.random(size) < 0.3  # honest values on the band's edges too
        honest[edge] = np.where(rng.random(size) < 0.5, self.lo, self.hi)[edge]
        self.honest = honest
        self.coefs = est.fit_coefficients(rho, "residual")
        self.pairs = []
        pos = 0
        for key, count in zip(est.LEVELS, self.n_t, strict=True):
            first = np.arange(pos, pos + count)
            self.pairs.append((key, first, first + count))
            pos += 2 * count

    def value(self, vals: np.ndarray) -> np.ndarray:
        r = vals - self.g
        total = np.zeros(vals.shape[0])
        for key, i, j in self.pairs:
            total += self.coefs[key] * np.mean(r[:, i] * r[:, j], axis=1)
        return total

    def _split(self, arr: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {key: (arr[i], arr[j]) for key, i, j in self.pairs}

    def charges(self, observed: np.ndarray) -> np.ndarray:
        return est.banded_corruption_charges(
            self._split(observed),
            self._split(self.g),
            self._split(self.lo),
            self._split(self.hi),
            self.rho,
        )

    def grid(self, index: int) -> np.ndarray:
        return np.linspace(self.lo[index], self.hi[index], 5)


def _check(inst: _Banded, rows: np.ndarray, m: int) -> None:
    shifts = np.abs(inst.value(rows) - inst.value(inst.honest[None, :]))
    for row, shift in zip(rows, shifts, strict=True):
        bound = est.corruption_shift_bound(inst.charges(row), m)
        assert shift <= bound * (1 + 1e-12) + 1e-12, (shift, bound)


@pytest.mark.parametrize(("rho", "radius", "seed"), [(0.1, 0.3, 1), (0.38, 0.8, 2), (0.5, 3.0, 3)])
def test_banded_charges_exhaustive_small_adversaries(rho: float, radius: float, seed: int) -> None:
    """Every corrupted set of size 1 or 2 with values on a 5-point grid of each band; some
    single corruption reaches 90 % of its own charge (the charge is not vacuous)."""
    rng = np.random.default_rng(seed)
    b = 1.5
    tightest = 0.0
    for _ in range(3):
        inst = _Banded(rng, rho, b, radius)
        size = inst.honest.size
        base = float(inst.value(inst.honest[None, :])[0])
        for m in (1, 2):
            rows = []
            for subset in itertools.combinations(range(size), m):
                for vals in itertools.product(*(inst.grid(i) for i in subset)):
                    row = inst.honest.copy()
                    row[list(subset)] = vals
                    rows.append(row)
                    if m == 1:
                        own = inst.charges(row)[subset[0]]
                        shift = abs(float(inst.value(row[None, :])[0]) - base)
                        if own > 0:
                            tightest = max(tightest, shift / own)
            _check(inst, np.array(rows), m)
    assert tightest > 0.9


@pytest.mark.parametrize("seed", [4, 5])
def test_banded_charges_random_and_greedy_adversaries(seed: int) -> None:
    rng = np.random.default_rng(seed)
    b = 1.0
    for _ in range(8):
        inst = _Banded(rng, 0.3, b, float(rng.uniform(0.05, 2.5)))
        size = inst.honest.size
        for m in sorted({min(m, size) for m in (1, 2, 3, 5, size)}):
            rows = []
            for _ in range(20):
                subset = rng.choice(size, size=m, replace=False)
                row = inst.honest.copy()
                row[subset] = rng.uniform(inst.lo[subset], inst.hi[subset])
                rows.append(row)
            _check(inst, np.array(rows), m)
        # greedy: the m largest charges moved jointly to band edges, both directions
        for m in (1, 2, 3):
            m = min(m, size)
            for direction in (1.0, -1.0):
                row = inst.honest.copy()
                for _ in range(2):
                    chosen = np.argsort(inst.charges(row))[::-1][:m]
                    edges = [(inst.lo[i], inst.hi[i]) for i in chosen]
                    rows = []
                    for vals in itertools.product(*edges):
                        trial = inst.honest.copy()
                        trial[chosen] = vals
                        rows.append(trial)
                    batch = np.array(rows)
                    _check(inst, batch, m)
                    row = batch[int(np.argmax(direction * inst.value(batch)))]


def test_banded_charges_never_exceed_the_task_band_charges() -> None:
    """With the band [-b, b] the banded charges are at most today's worst-case charges."""
    rng = np.random.default_rng(6)
    b = 2.0
    for _ in range(20):
        inst = _Banded(rng, 0.25, b, 10 * b)  # radius beyond b: every band is [-b, b]
        assert np.all(inst.lo == -b)
        assert np.all(inst.hi == b)
        observed = rng.uniform(-b, b, size=inst.honest.size)
        banded = inst.charges(observed)
        split = inst._split
        today = est.corruption_charges(split(observed), split(inst.g), None, 0.25, "residual", b)
        assert np.all(banded <= today * (1 + 1e-12))


def test_banded_charges_reject_values_outside_their_band() -> None:
    rng = np.random.default_rng(7)
    inst = _Banded(rng, 0.3, 1.0, 0.2)
    bad = inst.honest.copy()
    bad[0] = inst.hi[0] + 0.5
    with pytest.raises(ValueError, match="bands"):
        inst.charges(bad)

"""SHAKE-256 subset derivation: golden vectors, an independent re-derivation, statistics."""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import pytest

from attribution.errors import UsageError
from attribution.subsets import (
    bernoulli_mask,
    bind_digest,
    correlated_mask,
    from_pm1,
    int_seed,
    prob_to_u32,
    seed_to_u64,
    to_pm1,
    training_seed,
    u32_to_prob,
    uniform_index,
    xof,
)

SEED = int_seed(7)
BIND = bind_digest(b"golden")


def bits(mask: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in mask)


def test_golden_vectors() -> None:
    # Fixed outputs: any change here breaks re-derivation by third parties.
    assert BIND.hex() == "1ca9db2a95e84eed837b32399e64f2931c4302d27522fe099d1f8914a7afb745"
    assert xof("subset", SEED, BIND, [0], 16).hex() == "f2f241631f8a27271d89f87307228705"
    anchor = bernoulli_mask(SEED, BIND, [0], 24, prob_to_u32(0.5))
    assert bits(anchor) == "111110001101110100001001"
    assert bits(bernoulli_mask(SEED, BIND, [3, 1], 24, prob_to_u32(0.3))) == (
        "001100001010000100001001"
    )
    partner = correlated_mask(anchor, SEED, BIND, [0], prob_to_u32(0.5), prob_to_u32(0.25))
    assert bits(partner) == "100100110000010010000011"
    seed = training_seed(SEED, BIND, [0])
    assert seed.hex() == "46c75afdecdf798a3f8eadb74d68f6e4644f2a610786e1e4aa88af8c6285b95c"
    assert seed_to_u64(seed) == 9978252658371905350
    assert uniform_index("spot", SEED, BIND, [0], 1000) == 198


def test_independent_rederivation() -> None:
    """Re-derive a mask from the documented byte layout with hashlib alone."""
    n, p32 = 50, prob_to_u32(0.3)
    h = hashlib.shake_256(b"attribution.v1/subset\x00" + SEED + BIND + struct.pack(">QQ", 5, 2))
    stream = h.digest(4 * n)
    expected = [int.from_bytes(stream[4 * i : 4 * i + 4], "little") < p32 for i in range(n)]
    assert bernoulli_mask(SEED, BIND, [5, 2], n, p32).tolist() == expected
    bind = hashlib.sha256(b"attribution.v1/bind" + struct.pack(">Q", 6) + b"golden").digest()
    assert bind == BIND


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_bernoulli_rate(p: float) -> None:
    """Inclusion rate within 5 standard errors of p over 200k coordinates (fixed seeds;
    a 5-sigma normal bound has two-sided level 6e-7, so this is not flaky)."""
    masks = np.stack([bernoulli_mask(SEED, BIND, [i], 2000, prob_to_u32(p)) for i in range(100)])
    n = masks.size
    assert abs(masks.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize(("p", "rho"), [(0.5, 0.2), (0.3, 0.4)])
def test_rho_correlation(p: float, rho: float) -> None:
    """x' is marginally B_p and E[phi_i(x) phi_i(x')] = rho (5-sigma bounds, fixed seeds)."""
    mu, sigma = 2 * p - 1, 2 * math.sqrt(p * (1 - p))
    p32, r32 = prob_to_u32(p), prob_to_u32(rho)
    xs, ys = [], []
    for i in range(100):
        x = bernoulli_mask(SEED, BIND, [i], 2000, p32)
        xs.append(x)
        ys.append(correlated_mask(x, SEED, BIND, [i], p32, r32))
    x = to_pm1(np.stack(xs)).astype(float)
    y = to_pm1(np.stack(ys)).astype(float)
    n = x.size
    assert abs((y > 0).mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    prod = ((x - mu) / sigma) * ((y - mu) / sigma)
    assert abs(prod.mean() - rho) < 5 * prod.std() / math.sqrt(n)


def test_seeds_differ_per_index_and_role() -> None:
    assert training_seed(SEED, BIND, [0, 1]) != training_seed(SEED, BIND, [0, 2])
    assert training_seed(SEED, BIND, [1]) != training_seed(SEED, b"", [1])


def test_pm1_roundtrip_and_errors() -> None:
    m = np.array([True, False, True])
    assert to_pm1(m).tolist() == [1, -1, 1]
    assert from_pm1([1, -1, 1]).tolist() == m.tolist()
    with pytest.raises(ValueError, match="-1 and"):
        from_pm1([1, 0])


def test_probability_validation() -> None:
    assert u32_to_prob(prob_to_u32(0.5)) == 0.5
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(UsageError):
            prob_to_u32(bad)
    assert prob_to_u32(1.0, allow_one=True) == 1 << 32
    with pytest.raises(UsageError):
        int_seed(-1)


def test_uniform_index_range_and_spread() -> None:
    draws = [uniform_index("spot", SEED, BIND, [i], 7) for i in range(700)]
    assert set(draws) == set(range(7))
    counts = np.bincount(draws, minlength=7)
    # chi-square with 6 dof: the 99.9% quantile is 22.46
    chi2 = float(((counts - 100) ** 2 / 100).sum())
    assert chi2 < 22.46

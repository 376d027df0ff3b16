"""Subsets of the training set, derived reproducibly with SHAKE-256.

Encoding: a subset is a vector ``x`` in ``{-1, +1}^N`` (``+1`` = point included). In
memory we hold it as a boolean mask ``mask = (x == +1)``; :func:`to_pm1` converts.

Every random object (anchor subsets, rho-correlated partners, training seeds) is a pure
function of ``(seed, bind, idx...)`` through the extendable-output function::

    XOF(label, seed, bind, idx...) = SHAKE-256(
        b"attribution.v1/" || label || 0x00 || seed || bind || u64be(idx_0) || u64be(idx_1) ...)

so any party, on any machine and in any language, re-derives the same subsets. NumPy
random streams are never part of the definition (NEP 19 only promises them per build).

* ``p`` is stored as the integer ``P32 = round(p * 2**32)``; the effective inclusion
  probability is ``P32 / 2**32``.
* Anchor subset: ``u_i = u32le(bytes[4i:4i+4])`` of ``XOF("subset", ...)``;
  ``x_i = +1  <=>  u_i < P32``.
* rho-correlated partner: keep stream ``k_i`` from ``XOF("keep", ...)``, redraw stream
  ``d_i`` from ``XOF("redraw", ...)``; ``x'_i = x_i`` if ``k_i < R32`` else
  ``(+1 <=> d_i < P32)``. Marginally ``x' ~ B_p`` and ``E[phi_i(x) phi_i(x')] = rho``.
* Training seed: the first 32 bytes of ``XOF("seed", ...)``; frameworks take
  :func:`seed_to_u64` (the first 8 bytes, little-endian).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from attribution.encoding import DOMAIN as DOMAIN  # re-export; defined once there
from attribution.encoding import TAG_BIND, domain_prefix
from attribution.errors import UsageError

TWO32 = 1 << 32

BoolArray = npt.NDArray[np.bool_]


def prob_to_u32(p: float, *, name: str = "p", allow_one: bool = False) -> int:
    """Return ``round(p * 2**32)`` after checking ``p`` lies in (0, 1) (or (0, 1])."""
    if not isinstance(p, int | float) or not np.isfinite(p):
        raise UsageError(f"{name} must be a finite number, got {p!r}")
    upper_ok = p <= 1.0 if allow_one else p < 1.0
    if not (p > 0.0 and upper_ok):
        interval = "(0, 1]" if allow_one else "(0, 1)"
        raise UsageError(f"{name} must lie in {interval}, got {p}")
    return round(p * TWO32)


def u32_to_prob(p32: int) -> float:
    """The effective probability ``P32 / 2**32`` that derivations really use."""
    return p32 / TWO32


def xof(label: str, seed: bytes, bind: bytes, idx: Sequence[int], n_bytes: int) -> bytes:
    """``n_bytes`` of ``SHAKE-256(DOMAIN || label || 0x00 || seed || bind || u64be(idx)...)``."""
    h = hashlib.shake_256()
    h.update(domain_prefix(label))
    h.update(seed)
    h.update(bind)
    for i in idx:
        if i < 0 or i >= 1 << 64:
            raise ValueError(f"index {i} does not fit in u64")
        h.update(struct.pack(">Q", i))
    return h.digest(n_bytes)


def _uniform_u32(label: str, seed: bytes, bind: bytes, idx: Sequence[int], n: int) -> np.ndarray:
    return np.frombuffer(xof(label, seed, bind, idx, 4 * n), dtype="<u4")


def bernoulli_mask(
    seed: bytes, bind: bytes, idx: Sequence[int], n: int, p32: int, label: str = "subset"
) -> BoolArray:
    """Anchor subset ``x ~ B_p`` as a mask of length ``n`` (True = included)."""
    return _uniform_u32(label, seed, bind, idx, n) < p32


def correlated_mask(
    anchor: BoolArray, seed: bytes, bind: bytes, idx: Sequence[int], p32: int, r32: int
) -> BoolArray:
    """Partner of ``anchor``: keep each coordinate w.p. ``R32/2**32``, else redraw from B_p."""
    n = anchor.shape[0]
    keep = _uniform_u32("keep", seed, bind, idx, n) < r32
    redraw = _uniform_u32("redraw", seed, bind, idx, n) < p32
    return np.where(keep, anchor, redraw)


def training_seed(seed: bytes, bind: bytes, idx: Sequence[int], label: str = "seed") -> bytes:
    """32-byte training seed of one subset (never shared between the members of a pair)."""
    return xof(label, seed, bind, idx, 32)


def seed_to_u64(seed: bytes) -> int:
    """Framework seed: the first 8 bytes of a training seed as an unsigned little-endian int."""
    return int.from_bytes(seed[:8], "little")


def uniform_index(label: str, seed: bytes, bind: bytes, idx: Sequence[int], n: int) -> int:
    """An unbiased integer in ``[0, n)`` by rejection sampling on u64 draws.

    Draw ``u`` (u64, big-endian) from successive 8-byte blocks of the XOF output and
    accept the first ``u < 2**64 - (2**64 mod n)``; return ``u mod n``.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    limit = (1 << 64) - ((1 << 64) % n)
    blocks = 4
    while True:
        stream = xof(label, seed, bind, idx, 8 * blocks)
        for k in range(blocks):
            u = int.from_bytes(stream[8 * k : 8 * k + 8], "big")
            if u < limit:
                return u % n
        blocks *= 2


def to_pm1(mask: BoolArray) -> npt.NDArray[np.int8]:
    """Boolean mask -> ``{-1, +1}`` encoding (int8)."""
    return np.where(mask, np.int8(1), np.int8(-1)).astype(np.int8)


def from_pm1(x: npt.ArrayLike) -> BoolArray:
    """``{-1, +1}`` vector -> boolean mask; raises on any other value."""
    arr = np.asarray(x)
    if not np.all((arr == 1) | (arr == -1)):
        raise ValueError("a +-1 subset vector may hold only -1 and +1")
    return np.asarray(arr == 1, dtype=np.bool_)


def int_seed(value: int) -> bytes:
    """The root seed bytes used for a user-given integer seed: ``u64be(value)``."""
    if value < 0 or value >= 1 << 64:
        raise UsageError(f"seed must be an integer in [0, 2**64), got {value}")
    return struct.pack(">Q", value)


def bind_digest(*parts: bytes) -> bytes:
    """``SHA-256("attribution.v1/bind" || part_0 || part_1 ...)`` for binding a derivation."""
    h = hashlib.sha256(domain_prefix(TAG_BIND, terminated=False))
    for part in parts:
        h.update(struct.pack(">Q", len(part)))
        h.update(part)
    return h.digest()

"""Synthetic "training" oracle whose Fourier spectrum under B_p is known exactly.

Notation (docs/protocol.md sections 1.1-1.2): a subset is ``x`` in ``{-1, +1}^N``
(``x_i = +1`` <=> point ``i`` included; arrays hold the boolean mask ``x == +1``), ``mu = 2p - 1``,
``sigma = sqrt(4p(1-p))``, ``phi_i(x) = (x_i - mu)/sigma``, ``phi_T = prod_{i in T} phi_i``.

Oracle
------
The points split into a *heavy* set ``Q = {0, .., heavy-1}`` and the *light* rest
``R = {heavy, .., N-1}`` (``m = |R|``, possibly 0). The pre-clip value is::

    a(x) = c0 + sum_{i in Q} c_i phi_i(x) + c_R sum_{j in R} phi_j(x)
              + sum_{(i,j) in P2} c_ij phi_i phi_j(x)
              + sum_{(i,j,l) in P3} c_ijl phi_i phi_j phi_l(x)

with pairs ``P2`` and triples ``P3`` inside ``Q``, and the output for training seed ``r``::

    f(x; r) = clip(a(x) + eta * s(r), -b, b),     s(r) = +1 if r[0] & 1 else -1

(``r`` is the 32-byte training seed of :func:`attribution.subsets.training_seed`).

Because ``f`` depends on ``R`` only through ``K = #{j in R: x_j = +1}``
(``K ~ Binomial(m, p)``; ``sum_{j in R} phi_j = sqrt(m) Z(K)`` with
``Z(K) = (K phi(+1) + (m - K) phi(-1)) / sqrt(m)``, ``E Z = 0``, ``E Z² = 1``), every
expectation is a finite sum over ``2**heavy`` states of ``Q``, ``K = 0..m`` and ``s = ±1``.
For fixed ``(q, s)`` the map ``K -> f`` is ``-b``, then affine in ``Z``, then ``+b``
(``c_R >= 0``); sums of ``pmf(K) * polynomial(Z(K))`` over each piece come from prefix
sums, so :meth:`SyntheticOracle.exact` costs ``O(m + 2**heavy log m)``.

Coefficient derivation (re-derivable in any language; never NumPy random streams)
---------------------------------------------------------------------------------
All bytes come from ``XOF("synthetic", u64be(seed), b"", idx...)`` of
:func:`attribution.subsets.xof`. A *signed magnitude* from an 8-byte block read as a
big-endian u64 ``w`` is ``(-1 if w >> 63 else +1) * (0.5 + (w mod 2**53) / 2**53)``
(magnitude uniform in ``[0.5, 1.5)``). A list of signed magnitudes ``v`` (block ``k`` of
``XOF(.., idx, 8 * count)`` for entry ``k``) normalised to mass ``M`` is
``v * sqrt(M / sum v²)``.

* ``c_i`` (``i in Q``): idx ``(0,)``, normalised to ``heavy_share * linear_mass``.
* ``c_R = sqrt((1 - heavy_share) * linear_mass / m)`` (0 when ``m = 0``).
* Pairs: all ``C(heavy, 2)`` pairs ``(i < j)`` in lexicographic order, then a partial
  Fisher-Yates shuffle: for ``t = 0 .. n_pairs-1`` swap entry ``t`` with entry
  ``t + uniform_index("synthetic", u64be(seed), b"", (1, t), C - t)``; the first
  ``n_pairs`` entries, sorted lexicographically, form ``P2``. Coefficients: idx ``(2,)``,
  normalised to ``pair_mass``, in that sorted order.
* Triples likewise with idx ``(3, t)`` for the shuffle and ``(4,)`` for the coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binom

from attribution.errors import UsageError
from attribution.fourier import exact as fx
from attribution.subsets import prob_to_u32, u32_to_prob, uniform_index, xof

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LABEL = "synthetic"
MAX_HEAVY = 12
NOISE_STABILITY_MAX_LIGHT = 2000
"""Largest ``|R|`` for which :meth:`SyntheticSpectrum.noise_stability` is available."""

_PMF_TOL = 1e-40  # K states with Binomial pmf below this are dropped in noise_stability only


# --------------------------------------------------------------------------- config


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a :class:`SyntheticOracle` (validated on construction).

    ``linear_mass`` is the pre-clip ``sum_{i in Q} c_i² + |R| c_R²``; ``heavy_share`` of it
    sits on ``Q``. ``pair_mass`` / ``triple_mass`` are the pre-clip ``sum c_ij²`` /
    ``sum c_ijl²``. ``noise`` is ``eta``; ``seed`` drives the coefficient derivation.
    The effective inclusion probability is ``round(p * 2**32) / 2**32``.
    """

    n: int = 1000
    p: float = 0.5
    bound: float = 1.0
    intercept: float = 0.1
    linear_mass: float = 0.5
    heavy: int = 8
    heavy_share: float = 0.5
    pair_mass: float = 0.03
    triple_mass: float = 0.01
    n_pairs: int = 8
    n_triples: int = 4
    noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "heavy", "n_pairs", "n_triples", "seed"):
            if not _is_int(getattr(self, name)):
                raise UsageError(
                    f"synthetic {name} must be an integer, got {getattr(self, name)!r}"
                )
        for name in (
            "p",
            "bound",
            "intercept",
            "linear_mass",
            "heavy_share",
            "pair_mass",
            "triple_mass",
            "noise",
        ):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise UsageError(f"synthetic {name} must be a finite number, got {value!r}")
        if self.n < 1:
            raise UsageError(f"synthetic n must be >= 1, got {self.n}")
        p32 = prob_to_u32(self.p, name="synthetic p")
        if not 0 < p32 < 1 << 32:
            raise UsageError(f"synthetic p = {self.p} rounds to 0 or 1 at 2**-32 resolution")
        if self.bound <= 0:
            raise UsageError(f"synthetic bound must be > 0, got {self.bound}")
        for name in ("linear_mass", "pair_mass", "triple_mass", "noise"):
            if getattr(self, name) < 0:
                raise UsageError(f"synthetic {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.heavy_share <= 1.0:
            raise UsageError(f"synthetic heavy_share must lie in [0, 1], got {self.heavy_share}")
        if not 0 <= self.heavy <= min(MAX_HEAVY, self.n):
            raise UsageError(
                f"synthetic heavy must lie in [0, min({MAX_HEAVY}, n) = "
                f"{min(MAX_HEAVY, self.n)}], got {self.heavy}"
            )
        light = self.n - self.heavy
        if self.linear_mass > 0 and self.heavy_share > 0 and self.heavy == 0:
            raise UsageError("synthetic heavy_share > 0 needs heavy >= 1 (or linear_mass = 0)")
        if self.linear_mass > 0 and self.heavy_share < 1 and light == 0:
            raise UsageError(
                "synthetic heavy = n leaves no light points: set heavy_share = 1 "
                "(or linear_mass = 0)"
            )
        max_pairs = math.comb(self.heavy, 2)
        max_triples = math.comb(self.heavy, 3)
        if not 0 <= self.n_pairs <= max_pairs:
            raise UsageError(
                f"synthetic n_pairs must lie in [0, C(heavy, 2) = {max_pairs}], got {self.n_pairs}"
            )
        if not 0 <= self.n_triples <= max_triples:
            raise UsageError(
                f"synthetic n_triples must lie in [0, C(heavy, 3) = {max_triples}], "
                f"got {self.n_triples}"
            )
        if self.pair_mass > 0 and self.n_pairs == 0:
            raise UsageError("synthetic pair_mass > 0 needs n_pairs >= 1")
        if self.triple_mass > 0 and self.n_triples == 0:
            raise UsageError("synthetic triple_mass > 0 needs n_triples >= 1")
        if not 0 <= self.seed < 1 << 64:
            raise UsageError(f"synthetic seed must lie in [0, 2**64), got {self.seed}")


# --------------------------------------------------------------------------- coefficients


@dataclass(frozen=True, eq=False)
class SyntheticCoefficients:
    """Pre-clip coefficients: ``c0``, ``c_i`` on Q, ``c_R``, pairs and triples inside Q."""

    intercept: float
    heavy_linear: FloatArray  # (heavy,)
    light_linear: float  # c_R >= 0
    pairs: IntArray  # (n_pairs, 2), i < j, sorted
    pair_coefs: FloatArray  # (n_pairs,)
    triples: IntArray  # (n_triples, 3), i < j < l, sorted
    triple_coefs: FloatArray  # (n_triples,)


def _signed_magnitudes(seed: bytes, idx: Sequence[int], count: int) -> FloatArray:
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    stream = xof(LABEL, seed, b"", idx, 8 * count)
    out = np.empty(count, dtype=np.float64)
    for k in range(count):
        w = int.from_bytes(stream[8 * k : 8 * k + 8], "big")
        sign = -1.0 if w >> 63 else 1.0
        out[k] = sign * (0.5 + (w & ((1 << 53) - 1)) / float(1 << 53))
    return out


def _normalised(seed: bytes, idx: Sequence[int], count: int, mass: float) -> FloatArray:
    v = _signed_magnitudes(seed, idx, count)
    if count == 0:
        return v
    return np.asarray(v * math.sqrt(mass / float(np.sum(v * v))), dtype=np.float64)


def _choose_tuples(seed: bytes, tag: int, heavy: int, size: int, count: int) -> IntArray:
    pool = list(combinations(range(heavy), size))
    for t in range(count):
        j = t + uniform_index(LABEL, seed, b"", (tag, t), len(pool) - t)
        pool[t], pool[j] = pool[j], pool[t]
    chosen = sorted(pool[:count])
    return np.array(chosen, dtype=np.int64).reshape(count, size)


def derive_coefficients(config: SyntheticConfig) -> SyntheticCoefficients:
    """The coefficients of ``config`` (see the module docstring for the derivation)."""
    seed = config.seed.to_bytes(8, "big")
    light = config.n - config.heavy
    heavy_mass = config.heavy_share * config.linear_mass
    c_light = (
        math.sqrt((1.0 - config.heavy_share) * config.linear_mass / light) if light > 0 else 0.0
    )
    return SyntheticCoefficients(
        intercept=float(config.intercept),
        heavy_linear=_normalised(seed, (0,), config.heavy, heavy_mass),
        light_linear=c_light,
        pairs=_choose_tuples(seed, 1, config.heavy, 2, config.n_pairs),
        pair_coefs=_normalised(seed, (2,), config.n_pairs, config.pair_mass),
        triples=_choose_tuples(seed, 3, config.heavy, 3, config.n_triples),
        triple_coefs=_normalised(seed, (4,), config.n_triples, config.triple_mass),
    )


# --------------------------------------------------------------------------- helpers


def light_single_moment(k: npt.ArrayLike, m: int, p: float) -> FloatArray:
    """``E[phi_j | K = k]`` for ``j in R`` when ``k`` of the ``m`` light points are included.

    Given ``K = k`` the included set is uniform among the ``C(m, k)`` choices, so
    ``Pr[x_j = +1 | K = k] = k / m`` and the moment is ``(k phi(+1) + (m - k) phi(-1)) / m``.
    """
    kk = np.asarray(k, dtype=np.float64)
    if m < 1:
        raise ValueError("m must be >= 1")
    lo, hi = fx.basis_values(p)
    return np.asarray((kk * hi + (m - kk) * lo) / m, dtype=np.float64)


def light_pair_moment(k: npt.ArrayLike, m: int, p: float) -> FloatArray:
    """``E[phi_j phi_l | K = k]`` for ``j != l`` in ``R``, from the hypergeometric law.

    With ``k`` included among ``m``: ``Pr[both in] = k(k-1)/(m(m-1))``,
    ``Pr[exactly one in] = 2k(m-k)/(m(m-1))``, ``Pr[both out] = (m-k)(m-k-1)/(m(m-1))``,
    so the moment is ``(k(k-1) phi+² + 2k(m-k) phi+ phi- + (m-k)(m-k-1) phi-²) / (m(m-1))``.
    Equivalently ``(Z² - 1 + 2 mu Z / (sigma sqrt m)) / (m - 1)`` with ``Z = Z(k)``.
    """
    kk = np.asarray(k, dtype=np.float64)
    if m < 2:
        raise ValueError("m must be >= 2")
    lo, hi = fx.basis_values(p)
    num = kk * (kk - 1) * hi * hi + 2 * kk * (m - kk) * hi * lo + (m - kk) * (m - kk - 1) * lo * lo
    return np.asarray(num / (m * (m - 1)), dtype=np.float64)


def _poly_mul_linear(poly: FloatArray, const: FloatArray, slope: FloatArray) -> FloatArray:
    """``poly * (const + slope Z)``; ``poly`` has shape (G, d) (coefficients of Z**0..)."""
    out = np.zeros((poly.shape[0], poly.shape[1] + 1), dtype=np.float64)
    out[:, :-1] += poly * const[:, None]
    out[:, 1:] += poly * slope[:, None]
    return out


def _poly_mul_const(poly: FloatArray, weight: Sequence[float]) -> FloatArray:
    out = np.zeros((poly.shape[0], poly.shape[1] + len(weight) - 1), dtype=np.float64)
    for k, w in enumerate(weight):
        out[:, k : k + poly.shape[1]] += w * poly
    return out


# --------------------------------------------------------------------------- spectrum


@dataclass(frozen=True, eq=False)
class SyntheticSpectrum:
    """Exact ground truth of a :class:`SyntheticOracle`.

    Fourier quantities refer to the seed-averaged function ``fbar(x) = E_r f(x; r)``:

    * ``f0 = f̂_∅``, ``f1[i] = f̂_{i}``; ``theta[i] = f1[i] / sigma``,
      ``theta0 = f0 - mu * sum(theta)`` (optimal affine datamodel, ±1 encoding).
    * ``B0 = f0²``, ``B1 = sum f1²``, ``B2 = sum_{|T|=2} f̂_T²`` (heavy-heavy, heavy-light
      and light-light pairs), ``B_ge3 = E[fbar²] - B0 - B1 - B2``.
    * ``E_f2 = E_x E_r f(x; r)²``, ``E_fbar2 = E_x fbar(x)²``,
      ``seed_variance = E_x Var_r f(x; r) = E_f2 - E_fbar2``.
    * ``B_ge2 = E_f2 - B0 - B1 = B2 + B_ge3 + seed_variance``: the least affine MSE against
      fresh-seed evaluations (docs/protocol.md section 5.1), which is what the protocol estimates.
    * ``clip_probability = Pr_{x, r}[|a(x) + eta s(r)| > b]``.
    """

    f0: float
    f1: FloatArray
    theta0: float
    theta: FloatArray
    B0: float
    B1: float
    B2: float
    B_ge3: float
    E_f2: float
    E_fbar2: float
    seed_variance: float
    B_ge2: float
    clip_probability: float
    _stability: Callable[[float], float] = field(repr=False)

    def noise_stability(self, rho: float) -> float:
        """``h(rho) = E[f(x; r) f(x'; r')]``, ``x'`` rho-correlated to ``x``, seeds independent.

        For ``0 <= rho < 1`` this is ``E[fbar(x) fbar(x')] = sum_k rho**k B_k(fbar)``,
        computed exactly as a finite sum (heavy part: the per-coordinate kernel on all
        ``2**heavy`` states; light part: the exact joint law of ``(K, K')``, where
        ``K' | K = Bin(K, rho + (1-rho)p) + Bin(m - K, (1-rho)p)``; ``K`` states with
        ``Binomial(m, p)`` pmf below 1e-40 are dropped). At ``rho = 1`` it returns ``E_f2``,
        the convention of docs/protocol.md section 5.1 (the same training run), so ``h`` jumps by
        ``seed_variance`` at 1. Raises :class:`UsageError` when ``|R|`` exceeds
        :data:`NOISE_STABILITY_MAX_LIGHT` (the ``(K, K')`` table would be too large).
        """
        if not _is_number(rho) or not 0.0 <= rho <= 1.0:
            raise UsageError(f"rho must lie in [0, 1], got {rho!r}")
        if rho == 1.0:
            return self.E_f2
        return self._stability(float(rho))


# --------------------------------------------------------------------------- oracle


class SyntheticOracle:
    """The synthetic oracle ``f(x; r)`` of the module docstring.

    Attributes: ``config``, ``coefficients``, ``n_points`` (``N``), ``n_heavy``,
    ``n_light`` (``m``), ``p32``, ``p`` (effective), ``mu``, ``sigma``.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        if not isinstance(config, SyntheticConfig):
            raise UsageError("SyntheticOracle needs a SyntheticConfig")
        self.config = config
        self.coefficients = derive_coefficients(config)
        self.n_points = config.n
        self.n_heavy = config.heavy
        self.n_light = config.n - config.heavy
        self.p32 = prob_to_u32(config.p, name="synthetic p")
        self.p = u32_to_prob(self.p32)
        self.mu = 2.0 * self.p - 1.0
        self.sigma = math.sqrt(4.0 * self.p * (1.0 - self.p))
        self.bound = float(config.bound)
        self.noise = float(config.noise)
        self._phi_lo, self._phi_hi = fx.basis_values(self.p)
        self._heavy_table = self._build_heavy_table()
        self._bit_weights = (1 << np.arange(self.n_heavy, dtype=np.int64)).astype(np.int64)
        m = self.n_light
        k = np.arange(m + 1, dtype=np.float64)
        # Z(K) = (sum_{j in R} phi_j) / sqrt(m); light term = c_R sqrt(m) Z(K).
        self._z = (k * self._phi_hi + (m - k) * self._phi_lo) / math.sqrt(m) if m else np.zeros(1)
        self._c_z = self.coefficients.light_linear * math.sqrt(m)
        self._light_table = self._c_z * self._z
        self._spectrum: SyntheticSpectrum | None = None

    # ----------------------------------------------------------------- evaluation

    def _build_heavy_table(self) -> FloatArray:
        """``g(q) = c0 + heavy linear + pairs + triples`` for every state ``q`` of ``Q``."""
        c = self.coefficients
        phi = np.where(fx.all_subsets(self.n_heavy), self._phi_hi, self._phi_lo)
        g = c.intercept + phi @ c.heavy_linear
        for (i, j), cij in zip(c.pairs.tolist(), c.pair_coefs.tolist(), strict=True):
            g = g + cij * phi[:, i] * phi[:, j]
        for (i, j, k), cijk in zip(c.triples.tolist(), c.triple_coefs.tolist(), strict=True):
            g = g + cijk * phi[:, i] * phi[:, j] * phi[:, k]
        return np.asarray(g, dtype=np.float64)

    def _seed_signs(self, seeds: Sequence[bytes], count: int) -> FloatArray:
        if len(seeds) != count:
            raise ValueError(f"got {len(seeds)} seeds for {count} masks")
        out = np.empty(count, dtype=np.float64)
        for k, s in enumerate(seeds):
            if not isinstance(s, bytes | bytearray) or len(s) == 0:
                raise ValueError("each training seed must be non-empty bytes (32 bytes)")
            out[k] = 1.0 if s[0] & 1 else -1.0
        return out

    def evaluate(self, masks: npt.NDArray[np.bool_], seeds: Sequence[bytes]) -> FloatArray:
        """``f(x_m; r_m)`` for each row: ``masks`` (M, N) bool (True = included) -> (M, 1).

        Row ``m`` depends only on ``(masks[m], seeds[m])`` (elementwise arithmetic; the
        result does not depend on the batch). Cost ``O(M N)``.
        """
        arr = np.asarray(masks)
        if arr.dtype != np.bool_ or arr.ndim != 2 or arr.shape[1] != self.n_points:
            raise ValueError(
                f"masks must be a boolean array of shape (M, {self.n_points}), "
                f"got {arr.dtype} {arr.shape}"
            )
        signs = self._seed_signs(seeds, arr.shape[0])
        h = self.n_heavy
        q = arr[:, :h].astype(np.int64) @ self._bit_weights if h else np.zeros(len(arr), np.int64)
        k = np.count_nonzero(arr[:, h:], axis=1)
        pre = self._heavy_table[q] + self._light_table[k] + self.noise * signs
        out = np.clip(pre, -self.bound, self.bound).reshape(-1, 1)
        return np.asarray(out, dtype=np.float64)

    # ----------------------------------------------------------------- exact spectrum

    @cached_property
    def _pmf(self) -> FloatArray:
        """``Pr[K = k]``, ``k = 0..m`` (Binomial(m, p))."""
        m = self.n_light
        return np.asarray(binom.pmf(np.arange(m + 1), m, self.p), dtype=np.float64)

    @cached_property
    def _prefix_sums(self) -> list[FloatArray]:
        """``P_j[K] = sum_{K' < K} pmf(K') Z(K')**j`` for ``j = 0..4`` (length m + 2)."""
        pmf = self._pmf
        out = []
        zj = np.ones_like(self._z)
        for _ in range(5):
            out.append(np.concatenate(([0.0], np.cumsum(pmf * zj))))
            zj = zj * self._z
        return out

    def _thresholds(self, v: FloatArray) -> tuple[IntArray, IntArray]:
        """``lo = #{K: v + L(K) < -b}``, ``hi = #{K: v + L(K) <= b}`` (``L`` nondecreasing)."""
        lo = np.searchsorted(self._light_table, -self.bound - v, side="left")
        hi = np.searchsorted(self._light_table, self.bound - v, side="right")
        return lo.astype(np.int64), hi.astype(np.int64)

    def _integrate(self, vs: Sequence[FloatArray], weight: Sequence[float]) -> FloatArray:
        """``sum_K pmf(K) prod_i clip(v_i + c_z Z(K)) * w(Z(K))`` for each row.

        ``vs`` are arrays (G,) of offsets; ``weight`` holds the coefficients of the
        polynomial ``w`` in ``Z`` (lowest first).
        """
        b = self.bound
        g = vs[0].shape[0]
        m1 = self.n_light + 1
        bounds = [self._thresholds(v) for v in vs]
        cuts = [np.zeros(g, np.int64), np.full(g, m1, np.int64)]
        for lo, hi in bounds:
            cuts += [lo, hi]
        edges = np.sort(np.stack(cuts, axis=1), axis=1)
        total = np.zeros(g, dtype=np.float64)
        for t in range(edges.shape[1] - 1):
            start, stop = edges[:, t], edges[:, t + 1]
            poly = np.ones((g, 1), dtype=np.float64)
            for v, (lo, hi) in zip(vs, bounds, strict=True):
                linear = (start >= lo) & (start < hi)
                const = np.where(start < lo, -b, np.where(linear, v, b))
                slope = np.where(linear, self._c_z, 0.0)
                poly = _poly_mul_linear(poly, const, slope)
            poly = _poly_mul_const(poly, weight)
            for j in range(poly.shape[1]):
                pj = self._prefix_sums[j]
                total += poly[:, j] * (pj[stop] - pj[start])
        return total

    def exact(self) -> SyntheticSpectrum:
        """The exact spectrum (computed once, then cached)."""
        if self._spectrum is None:
            self._spectrum = self._compute_exact()
        return self._spectrum

    def _compute_exact(self) -> SyntheticSpectrum:
        h, m, p = self.n_heavy, self.n_light, self.p
        w_q = fx.bp_probabilities(fx.all_subsets(h), p)
        eta = self.noise
        v_plus = self._heavy_table + eta
        v_minus = self._heavy_table - eta
        gamma = 2.0 * self.mu / (self.sigma * math.sqrt(m)) if m else 0.0
        mean_f: dict[str, FloatArray] = {}
        for name, weight in (("M0", [1.0]), ("M1", [0.0, 1.0]), ("M2", [-1.0, gamma, 1.0])):
            mean_f[name] = 0.5 * (
                self._integrate([v_plus], weight) + self._integrate([v_minus], weight)
            )
        pp = self._integrate([v_plus, v_plus], [1.0])
        mm = self._integrate([v_minus, v_minus], [1.0])
        pm = self._integrate([v_plus, v_minus], [1.0])
        e_f2 = float(np.dot(w_q, 0.5 * (pp + mm)))
        e_fbar2 = float(np.dot(w_q, 0.25 * (pp + mm + 2.0 * pm)))

        p0 = self._prefix_sums[0]
        clip_q = np.zeros(1 << h, dtype=np.float64)
        for v in (v_plus, v_minus):
            lo, hi = self._thresholds(v)
            clip_q += 0.5 * (p0[lo] + (p0[-1] - p0[hi]))
        clip_probability = float(np.dot(w_q, clip_q))

        spec0 = fx.fourier_spectrum(mean_f["M0"], p)
        spec1 = fx.fourier_spectrum(mean_f["M1"], p)
        sizes = fx.popcounts(h)
        singles = 1 << np.arange(h, dtype=np.int64)
        f0 = float(spec0[0])
        f1 = np.empty(self.n_points, dtype=np.float64)
        f1[:h] = spec0[singles]
        if m:
            f1[h:] = spec1[0] / math.sqrt(m)
        b0 = f0 * f0
        b1 = float(np.sum(spec0[singles] ** 2) + spec1[0] ** 2)
        b2_qq = float(np.sum(spec0[sizes == 2] ** 2))
        b2_qr = float(np.sum(spec1[singles] ** 2))
        b2_rr = 0.0
        if m >= 2:
            e2 = float(np.dot(w_q, mean_f["M2"]))
            b2_rr = m / (2.0 * (m - 1)) * e2 * e2
        b2 = b2_qq + b2_qr + b2_rr
        theta = f1 / self.sigma
        return SyntheticSpectrum(
            f0=f0,
            f1=f1,
            theta0=float(f0 - self.mu * theta.sum()),
            theta=theta,
            B0=b0,
            B1=b1,
            B2=b2,
            B_ge3=e_fbar2 - b0 - b1 - b2,
            E_f2=e_f2,
            E_fbar2=e_fbar2,
            seed_variance=e_f2 - e_fbar2,
            B_ge2=e_f2 - b0 - b1,
            clip_probability=clip_probability,
            _stability=self._noise_stability,
        )

    # ----------------------------------------------------------------- noise stability

    def _light_transition(self, support: IntArray, rho: float) -> FloatArray:
        """``T[a, c] = Pr[K' = support[c] | K = support[a]]`` for the rho-correlated pair."""
        m, p = self.n_light, self.p
        up = rho + (1.0 - rho) * p  # an included light point stays included
        new = (1.0 - rho) * p  # an excluded light point becomes included
        lo_k, hi_k = int(support[0]), int(support[-1])
        out = np.zeros((support.size, support.size), dtype=np.float64)
        for a, k in enumerate(support.tolist()):
            kept = binom.pmf(np.arange(k + 1), k, up)
            fresh = binom.pmf(np.arange(m - k + 1), m - k, new)
            row = np.convolve(kept, fresh)  # length m + 1
            out[a] = row[lo_k : hi_k + 1]
        return out

    def _noise_stability(self, rho: float) -> float:
        m = self.n_light
        if m > NOISE_STABILITY_MAX_LIGHT:
            raise UsageError(
                f"exact noise stability needs |R| = n - heavy <= {NOISE_STABILITY_MAX_LIGHT}, "
                f"got {m}"
            )
        pmf = self._pmf
        keep = np.flatnonzero(pmf >= _PMF_TOL) if m else np.zeros(1, dtype=np.int64)
        support = keep.astype(np.int64)
        light = self._light_table[support]
        pre = self._heavy_table[:, None] + light[None, :]
        fbar = 0.5 * (
            np.clip(pre + self.noise, -self.bound, self.bound)
            + np.clip(pre - self.noise, -self.bound, self.bound)
        )
        moved = fbar @ self._light_transition(support, rho).T
        moved = fx.noise_operator(moved, self.p, rho)
        w_q = fx.bp_probabilities(fx.all_subsets(self.n_heavy), self.p)
        weights = w_q[:, None] * pmf[support][None, :]
        return float(np.sum(weights * fbar * moved))

    # ----------------------------------------------------------------- err, digest

    def err(self, a0: float, a: npt.ArrayLike) -> float:
        """Exact ``err(a0, a) = (a0 + mu sum a - f0)² + sigma² sum (a - theta*)²``.

        ``a`` (N,) in the ±1 encoding (positive ``a_i`` = including ``i`` raises f);
        equals the excess affine MSE over the optimum, against fresh-seed evaluations.
        """
        spec = self.exact()
        vec = np.asarray(a, dtype=np.float64)
        if vec.shape != (self.n_points,):
            raise ValueError(f"a must have shape ({self.n_points},), got {vec.shape}")
        shift = float(a0) + self.mu * float(vec.sum()) - spec.f0
        return float(shift * shift + self.sigma**2 * float(np.sum((vec - spec.theta) ** 2)))

    def noise_stability(self, rho: float) -> float:
        """Shortcut for ``self.exact().noise_stability(rho)``."""
        return self.exact().noise_stability(rho)

    def content_arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """Every number that defines the oracle, as float64 / int64 arrays (task digest)."""
        c = self.coefficients
        cfg = self.config
        return {
            "shape": np.array([self.n_points, self.n_heavy, self.p32], dtype=np.int64),
            "bound": np.array([self.bound], dtype=np.float64),
            "noise": np.array([self.noise], dtype=np.float64),
            "intercept": np.array([c.intercept], dtype=np.float64),
            "heavy_linear": c.heavy_linear.astype(np.float64),
            "light_linear": np.array([c.light_linear], dtype=np.float64),
            "pairs": c.pairs.astype(np.int64),
            "pair_coefs": c.pair_coefs.astype(np.float64),
            "triples": c.triples.astype(np.int64),
            "triple_coefs": c.triple_coefs.astype(np.float64),
            "seed": np.array([cfg.seed], dtype=np.uint64).view(np.int64),
        }


__all__ = [
    "MAX_HEAVY",
    "NOISE_STABILITY_MAX_LIGHT",
    "SyntheticCoefficients",
    "SyntheticConfig",
    "SyntheticOracle",
    "SyntheticSpectrum",
    "derive_coefficients",
    "light_pair_moment",
    "light_single_moment",
]

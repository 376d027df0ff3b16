"""How a Prover behaves: honest, or one of the dishonest strategies of the red-team suite.

Spelling (``parse_strategy``): ``honest``, ``scale:C``, ``boost:BETA``, ``zero:FRACTION``,
``noise:SIGMA``, ``corrupt:FRACTION``, ``corrupt-targeted:FRACTION``,
``inflate-residual``, ``plan-aware``, ``swap``, ``bad-length``, ``non-finite``, ``refuse-verdict``,
``never-finish``, ``slow-drip``.

Attribution attacks (docs/protocol.md sections 1.3, 6.12) keep the mean prediction ``a0 + mu sum a``
fixed (the intercept is re-fitted), so their error is exactly the degree-1 change:

* ``scale:C``  -- ``a_i <- C a_i``: err = (1 - C)^2 B_1 for the exact optimum;
* ``boost:BETA`` -- ``a_i += BETA`` on the favoured group (the first 10 % of points);
* ``zero:FRACTION`` -- ``a_i = 0`` on the first FRACTION of the points;
* ``noise:SIGMA`` -- ``a_i += N(0, SIGMA^2)`` (seeded).

f-value attacks hide a bad attribution (scale 0.5) by committing altered f-values of E:
``corrupt:Q`` alters a uniformly random fraction Q of the rows, ``corrupt-targeted:Q``
alters rows of the rho and 2 rho levels whose partners have the largest |r|, and
``inflate-residual`` alters every row, and ``plan-aware`` knows the plan: it alters exactly
as many values as the Verifier's spot checks tolerate (``m_tolerated`` of the plan, from
|E|, k and delta), chosen where ``|c_t r(partner)|`` is largest over all three levels.
Each altered value is set to the end of [-b, b]
that moves the Verifier's statistic most in the Prover's favour (lower err estimate for
the residual estimator, higher B_>=2 estimate for the paper estimator).
``swap`` streams another attribution than the one committed; ``bad-length`` and
``non-finite`` stream malformed vectors; ``refuse-verdict`` (gRPC only) is honest but
refuses to take the verdict, hoping to suppress the non-ACCEPT ones; ``never-finish``
(gRPC only) reports a training job that never ends, to hold the Verifier; ``slow-drip``
(gRPC only) is honest but streams its attribution one value a second, to hold it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.fourier.estimation import fit_coefficients
from attribution.protocol.challenges import LEVELS, ChallengeLayout, ChallengePlan
from attribution.protocol.common import g_values
from attribution.protocol.params import ProtocolParams
from attribution.stats import max_undetected

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EvalContext:
    """What a corrupting Prover knows when it commits f-values (everything but C and M)."""

    params: ProtocolParams
    layout: ChallengeLayout
    bound: float
    g: FloatArray  # (|E|, outputs) predictions of the committed attribution on E


@dataclass(frozen=True)
class Strategy:
    name: str
    kind: str = "honest"
    value: float = 0.0
    seed: int = 0

    @property
    def corrupts(self) -> bool:
        return self.kind in _CORRUPTING

    def attribution(self, honest: FloatArray, p: float) -> FloatArray:
        """The attribution matrix to commit, from the honest one (T, 1 + N)."""
        A = np.array(honest, dtype=np.float64, copy=True)
        mu = 2 * p - 1
        n = A.shape[1] - 1
        kind, v = self.kind, self.value
        if kind in _CORRUPTING:
            kind, v = "scale", 0.5
        if kind in _PLAIN:  # the corrupting ones became "scale" above: the honest A
            return A
        before = A[:, 0] + mu * A[:, 1:].sum(axis=1)
        if kind == "scale":
            A[:, 1:] *= v
        elif kind == "boost":
            A[:, 1 : 1 + max(1, n // 10)] += v
        elif kind == "zero":
            A[:, 1 : 1 + round(v * n)] = 0.0
        elif kind == "noise":
            rng = np.random.default_rng(self.seed)
            A[:, 1:] += rng.normal(0.0, v, size=A[:, 1:].shape)
        A[:, 0] = before - mu * A[:, 1:].sum(axis=1)
        return A

    def stream_attribution(self, committed: FloatArray) -> FloatArray:
        flat = np.array(committed, dtype=np.float64).ravel()
        if self.kind == "swap":
            alt = committed.copy()
            alt[:, 1:] *= 0.5
            return alt.ravel()
        if self.kind == "bad-length":
            return flat[:-1]
        if self.kind == "non-finite":
            flat[len(flat) // 2] = np.nan
        return flat

    def stream_evaluations(self, committed: FloatArray) -> FloatArray:
        """The f-values streamed after their commitment (the committed ones, flat)."""
        return np.asarray(committed, dtype=np.float64).ravel()

    def committed(
        self,
        trained: FloatArray,
        attribution: FloatArray,
        plan: ChallengePlan,
        params: ProtocolParams,
        bound: float,
        masks: npt.NDArray[np.bool_] | None = None,
    ) -> FloatArray:
        """The f-values of E this Prover commits to, from the ones it trained: the
        committed attribution's predictions g on E (``masks``: E's masks, derived from
        ``plan`` when not given) are what a corrupting Prover aims at."""
        if not self.corrupts:
            return trained
        if masks is None:
            masks = plan.masks(range(plan.n_rows))
        g = np.column_stack([g_values(attribution[o], masks) for o in range(attribution.shape[0])])
        return self.evaluations(trained, EvalContext(params, plan.layout, bound, g))

    def evaluations(self, values: FloatArray, ctx: EvalContext) -> FloatArray:
        """The f-values to commit (altered rows for the corrupting strategies)."""
        if not self.corrupts:
            return values
        F = np.array(values, dtype=np.float64, copy=True)
        layout, b = ctx.layout, ctx.bound
        n_rows = layout.n_rows
        if self.kind == "inflate-residual":
            rows = np.arange(n_rows)
        elif self.kind == "corrupt":
            rng = np.random.default_rng(self.seed)
            rows = rng.choice(n_rows, size=round(self.value * n_rows), replace=False)
        elif self.kind == "plan-aware":
            p = ctx.params
            m = max_undetected(n_rows, p.k, p.split.corruption * p.delta) if p.k else 0
            rows = self._plan_aware_rows(F, ctx, m)
        else:
            rows = self._targeted_rows(F, ctx, round(self.value * n_rows))
        partner = _partners(layout)
        coefs = fit_coefficients(ctx.params.rho, ctx.params.estimator)
        level_of = _levels(layout)
        residual = ctx.params.estimator == "residual"
        for o in ctx.params.outputs:
            g = ctx.g[:, o] if residual else np.zeros(n_rows)
            for v in rows:
                u = partner[v]
                key = level_of[v]
                if u < 0:  # singleton square (paper): as large as possible
                    F[v, o] = b
                    continue
                c = coefs[key]
                r_u = F[u, o] - g[u]
                # residual: lower c * r_v r_u; paper: raise c * f_v f_u
                sign = -np.sign(c * r_u) if residual else np.sign(c * r_u)
                F[v, o] = b if sign >= 0 else -b
        return F

    def _targeted_rows(self, F: FloatArray, ctx: EvalContext, m: int) -> npt.NDArray[np.int64]:
        layout = ctx.layout
        rows, weight = [], []
        o = ctx.params.outputs[0]
        g = ctx.g[:, o] if ctx.params.estimator == "residual" else np.zeros(layout.n_rows)
        r = np.abs(F[:, o] - g)
        for level in (1, 2):
            xs, xps = layout.level_rows(level)
            rows += [xs, xps]
            weight += [r[xps], r[xs]]
        cand, w = np.concatenate(rows), np.concatenate(weight)
        return cand[np.argsort(-w, kind="stable")[:m]]

    def _plan_aware_rows(self, F: FloatArray, ctx: EvalContext, m: int) -> npt.NDArray[np.int64]:
        """The ``m`` pair members whose alteration moves the statistic most: weight
        ``|c_t| |r(partner)|`` (first output), every level."""
        layout, o = ctx.layout, ctx.params.outputs[0]
        residual = ctx.params.estimator == "residual"
        g = ctx.g[:, o] if residual else np.zeros(layout.n_rows)
        r = np.abs(F[:, o] - g)
        coefs = fit_coefficients(ctx.params.rho, ctx.params.estimator)
        partner = _partners(layout)
        weight = np.zeros(layout.n_rows)
        for level, key in enumerate(LEVELS):
            xs, xps = layout.level_rows(level)
            members = np.concatenate([xs, xps])
            weight[members] = abs(coefs[key]) * r[partner[members]]
        return np.argsort(-weight, kind="stable")[:m]


def _partners(layout: ChallengeLayout) -> npt.NDArray[np.int64]:
    partner = np.full(layout.n_rows, -1, dtype=np.int64)
    for level in range(3):
        xs, xps = layout.level_rows(level)
        partner[xs], partner[xps] = xps, xs
    return partner


def _levels(layout: ChallengeLayout) -> list[str]:
    out = ["single"] * layout.n_rows
    for level, key in enumerate(LEVELS):
        xs, xps = layout.level_rows(level)
        for i in np.concatenate([xs, xps]):
            out[int(i)] = key
    return out


_CORRUPTING = ("corrupt", "corrupt-targeted", "inflate-residual", "plan-aware")
_VALUED = {"scale", "boost", "zero", "noise", "corrupt", "corrupt-targeted"}
_PLAIN = {
    "honest",
    "inflate-residual",
    "plan-aware",
    "swap",
    "bad-length",
    "non-finite",
    "refuse-verdict",
    "never-finish",
    "slow-drip",
}


def parse_strategy(text: str, seed: int = 0) -> Strategy:
    """``honest``, ``scale:C``, ... (see the module docstring)."""
    kind, sep, value = text.partition(":")
    if kind in _PLAIN and not sep:
        return Strategy(text, kind, 0.0, seed)
    if kind in _VALUED and sep:
        try:
            v = float(value)
        except ValueError as exc:
            raise UsageError(f"strategy {text!r}: {value!r} is not a number") from exc
        if kind in ("zero", "corrupt", "corrupt-targeted") and not 0 < v <= 1:
            raise UsageError(f"strategy {text!r}: the fraction must lie in (0, 1]")
        return Strategy(text, kind, v, seed)
    raise UsageError(
        f"unknown strategy {text!r}: use honest, scale:C, boost:BETA, zero:FRACTION, "
        "noise:SIGMA, corrupt:FRACTION, corrupt-targeted:FRACTION, inflate-residual, plan-aware, "
        "swap, bad-length, non-finite, refuse-verdict, never-finish or slow-drip"
    )

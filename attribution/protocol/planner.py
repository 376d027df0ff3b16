"""Sizes of a verification run, chosen and printed before any training.

Accuracy budget. For an honest Prover with err <= eta the Verifier accepts when the upper
confidence bound ``err_hat + w + bias + corruption + tolerance <= eps`` (see
:mod:`attribution.protocol.decision`), and ``err_hat <= eta + w`` with high probability, so the
planner sizes the run for ``2 w + bias + corruption + tolerance <= eps - eta`` with the
shares ``2 w: 50 %``, ``bias: 20 %``, ``corruption: 20 %``, ``tolerance: <= 5 %``
(5 % slack); with the committed band (docs/protocol.md section 6.13) ``2 w: 40 %`` and
``corruption: 30 %``, and the pilot M of :data:`PILOT_SIZE` trainings fixes its radius.

* ``practical`` (variance-aware): the number of pairs per level ``n`` makes the CLT
  half-width ``w = z sqrt(sum_t c_t^2 V / n)`` fit its share, with ``V = 2 h^2`` the
  planning variance of a product (``h`` = the hint for E[r^2], residual estimator, or
  E[f^2], paper estimator); ``k`` is the smallest spot-check count that catches, with
  probability >= 1 - delta_c, any corruption of more values than the corruption share
  tolerates (per-value worst-case charge, :mod:`attribution.fourier.estimation`).
  The real decision uses the observed variances and charges: a wrong hint costs
  efficiency (or gives INCONCLUSIVE with the budget that would decide), never soundness.
* ``theory``: the worst-case constants of docs/protocol.md section 7.3 (Hoeffding, ranges only).
* ``explicit``: sizes given by the user.

Every plan also states the cost of the alternatives: the non-interactive protocol (the
Verifier retrains E itself, |E| + |M| trainings) and computing an attribution oneself
(a least-squares datamodel with err <= eps/2 needs about 2 N B_>=2 / eps runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from attribution.errors import UsageError
from attribution.fourier.estimation import bias_coefficient, fit_coefficients
from attribution.protocol.common import TaskInfo
from attribution.protocol.params import BAND_DEFAULTS, ProtocolParams
from attribution.stats import miss_probability, normal_quantile, spot_checks_needed

SHARE_NOISE, SHARE_BIAS, SHARE_CORRUPTION, SHARE_TOLERANCE = 0.5, 0.2, 0.2, 0.05
# With the committed band the spot checks, not E, are the Verifier's cost: 10 % of the
# budget moves from the noise to the corruption share (fewer spot checks for a larger E;
# breast_cancer-logreg at eps 0.03: k 4,959 -> 4,577, |E| 15,096 -> 19,110; measured in
# docs/benchmarks.md, "Protocol: sizes from the Verifier's pilot").
BAND_SHARE_NOISE, BAND_SHARE_CORRUPTION = 0.40, 0.30
# No CLT interval rests on a handful of values: every level of a planned (non-explicit)
# run has at least this many pairs, whatever the hint says.
MIN_PAIRS_PER_LEVEL = 50
# A hint (E[r^2] or E[f^2], in units of b^2) is clamped into this range before planning;
# it only ever sizes the run. The floor is far below any residual float64 training
# resolves but not zero: randhie-logreg's mean margin has E[r^2] / b^2 ~ 3e-9.
HINT_RANGE = (1e-12, 4.0)
# Planning "pilot": the pilot's sizes are capped at this many times the forecast's
# trainings unless a budget is given (docs/protocol.md section 6.14).
BUDGET_FACTOR = 2
# Local trainings of the pilot M that fixes the committed band's radius (band "committed").
PILOT_SIZE = 100
RHO_GRID = tuple(round(0.5 - 0.01 * i, 2) for i in range(49))  # 0.50 .. 0.02


@dataclass(frozen=True)
class Plan:
    """Parameters plus the implied costs, printed before training."""

    params: ProtocolParams
    prover_trainings: int
    verifier_trainings: int
    m_tolerated: int
    detection_probability: float
    noninteractive_trainings: int
    self_attribution_trainings: int
    recommendation: str
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        p = self.params
        return {
            "estimator": p.estimator,
            "preset": p.preset,
            "mode": p.mode,
            "epsilon": p.epsilon,
            "delta": p.delta,
            "rho": p.rho,
            "E": p.n_challenges,
            "pairs_per_level": list(p.n_pairs),
            "singletons": p.n_single,
            "k": p.k,
            "M": p.m,
            "prover_trainings": self.prover_trainings,
            "verifier_trainings": self.verifier_trainings,
            "m_tolerated": self.m_tolerated,
            "detection_probability": self.detection_probability,
            "noninteractive_trainings": self.noninteractive_trainings,
            "self_attribution_trainings": self.self_attribution_trainings,
            "recommendation": self.recommendation,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        s = self.summary()
        lines = [
            f"plan ({s['preset']}, {s['estimator']} estimator, {s['mode']}): "
            f"eps={s['epsilon']:g} delta={s['delta']:g} rho={s['rho']:g}",
            f"  Prover trainings |E| = {s['E']} ({s['pairs_per_level']} pairs per level "
            f"0/rho/2rho, {s['singletons']} singletons)",
            f"  Verifier trainings = {s['verifier_trainings']} (k = {s['k']} spot checks, "
            f"|M| = {s['M']} local MSE samples)",
            f"  a Prover corrupting more than {s['m_tolerated']} values is caught with "
            f"probability >= {s['detection_probability']:.4f}",
            f"  alternatives: non-interactive {s['noninteractive_trainings']} Verifier "
            f"trainings; fitting a datamodel oneself ~{s['self_attribution_trainings']} runs",
            f"  recommendation: {s['recommendation']}",
        ]
        lines += [f"  note: {n}" for n in s["notes"]]
        return "\n".join(lines)


def _auto_rho(budget: float, b3_hint: float) -> float:
    for rho in RHO_GRID:
        if bias_coefficient(rho) * b3_hint <= budget:
            return rho
    return RHO_GRID[-1]


def plan_run(
    task: TaskInfo,
    epsilon: float,
    delta: float,
    *,
    estimator: str = "residual",
    preset: str = "practical",
    mode: str = "interactive",
    rho: float | None = None,
    eta: float = 0.0,
    outputs: tuple[int, ...] | None = None,
    hint: float | None = None,
    fit: str = "interp",
    explicit: dict[str, int] | None = None,
    mse_source: str = "local",
    band: str | None = None,
    planning: str | None = None,
    budget: int | None = None,
    radius_scale: float = BAND_DEFAULTS["radius_scale"],
    clip_level: float = BAND_DEFAULTS["clip_level"],
) -> Plan:
    """Choose the sizes of a run (see the module docstring).

    ``band``: the audited target (:data:`attribution.protocol.params.BANDS`, docs/protocol.md
    section 6.13); ``"committed"`` needs the residual estimator, not naive mode and not
    the theory preset, and adds the pilot M of :data:`PILOT_SIZE` local trainings. Default:
    ``"committed"`` wherever it applies, else ``"task"``.

    ``planning`` (docs/protocol.md section 6.14): ``"pilot"`` fixes rho, the pairs per level
    and k after the attribution commitment from the committed attribution's residual on
    the pilot M (:func:`replan_from_pilot`); the sizes planned here from ``hint`` are then
    only a forecast, and ``budget`` caps the pilot's plan at that many trainings (0: no
    cap; default :data:`BUDGET_FACTOR` times the forecast's trainings: a Prover whose
    committed attribution is far off cannot make the Verifier's run grow without bound).
    Default: ``"pilot"`` for the committed band in interactive mode with the practical
    preset and no given ``rho``, else ``"fixed"``.
    """
    if band is None:
        fits = estimator == "residual" and mode != "naive" and preset != "theory"
        band = "committed" if fits else "task"
    if planning is None:
        pilot = band == "committed" and mode == "interactive" and preset == "practical"
        planning = "pilot" if pilot and rho is None else "fixed"
    if planning == "pilot" and (band != "committed" or mode != "interactive"):
        raise UsageError("planning 'pilot' needs band 'committed' and interactive mode")
    if planning == "pilot" and preset != "practical":
        raise UsageError("planning 'pilot' needs the practical preset")
    b, tau = task.bound, task.tau
    for name, value in (("epsilon", epsilon), ("delta", delta)):
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"{name} must be a positive finite number, not {value!r}")
    if not delta < 1:
        raise UsageError(f"delta must lie in (0, 1), not {delta!r}")
    if hint is not None:
        if not math.isfinite(hint) or hint < 0:
            raise UsageError(f"the planning hint must be a finite E[r^2] >= 0, not {hint!r}")
        hint = min(max(hint, HINT_RANGE[0] * b * b), HINT_RANGE[1] * b * b)
    if band == "committed" and (estimator != "residual" or mode == "naive" or preset == "theory"):
        raise UsageError(
            "band 'committed' needs the residual estimator, not naive mode, not the theory preset"
        )
    outs = outputs if outputs is not None else tuple(range(task.n_outputs))
    if not outs or any(not 0 <= o < task.n_outputs for o in outs):
        raise UsageError(f"outputs must be indices in [0, {task.n_outputs})")
    base = ProtocolParams(
        epsilon=epsilon,
        delta=delta,
        estimator=estimator,
        preset=preset,
        mode=mode,
        rho=rho or 0.25,
        eta=eta,
        fit=fit,
        outputs=outs,
        mse_source=mse_source if estimator == "paper" else "local",
        band="task",
    )
    Z = len(outs)
    split = base.split
    base_radius_scale = radius_scale
    spare = epsilon - eta
    notes: list[str] = []
    # hints: E[r^2] of an honest residual (residual estimator), E[f^2] (paper estimator)
    h_f2 = b * b
    h = hint if hint is not None else (0.1 * b * b if estimator == "residual" else h_f2)
    if preset == "explicit":
        ex = explicit or {}
        try:
            n = int(ex["n"])
        except KeyError as exc:
            raise UsageError("the explicit preset needs at least n (pairs per level)") from exc
        r = rho or 0.25
        n_single = int(ex.get("n_single", n if estimator == "paper" else 0))
        k = int(ex.get("k", 0))
        m_default = n if estimator == "paper" or mode == "naive" else 0
        m = int(ex.get("m", PILOT_SIZE if band == "committed" else m_default))
    elif preset == "theory":
        et = epsilon / (b * b)
        r = rho or math.sqrt(et / 32)
        n = math.ceil(409600 * math.log(32 / delta) / et**3)
        n_single = n if estimator == "paper" else 0
        m_star = et * r * n / 160
        k = math.ceil((6 * n + n_single) / max(m_star, 1e-300) * math.log(4 / delta))
        m = math.ceil(128 * math.log(8 / delta) / et**2) if estimator == "paper" else 0
        notes.append("theory preset: worst-case constants of docs/protocol.md section 7.3")
    else:
        target = "residual" if estimator == "residual" else "paper"
        b3_hint = h if estimator == "residual" else h_f2
        r = rho or _auto_rho(SHARE_BIAS * spare, b3_hint)
        if bias_coefficient(r) * b3_hint > SHARE_BIAS * spare:
            notes.append(
                f"the degree>=3 bias bound at rho={r:g} may exceed its share; expect "
                "INCONCLUSIVE unless the observed residual is small"
            )
        coefs = fit_coefficients(r, target)
        s2 = sum(coefs[t] ** 2 for t in ("0", "rho", "2rho"))
        z = normal_quantile(1 - split.noise * delta / (2 * Z))
        banded = estimator == "residual" and band == "committed"
        share_noise = BAND_SHARE_NOISE if banded else SHARE_NOISE
        share_corruption = BAND_SHARE_CORRUPTION if banded else SHARE_CORRUPTION
        w = share_noise * spare / 2
        v_prod = 2 * h * h
        if estimator == "paper":
            v_prod = 2 * h_f2 * h_f2
            # half of the variance budget to B_>=2 (incl. singletons), half to the MSE
            n = math.ceil(z * z * (s2 * v_prod + h_f2 * h_f2) / (w * w / 2))
            m = math.ceil(z * z * (2 * h * h) / (w * w / 2))
        else:
            n = math.ceil(z * z * s2 * v_prod / (w * w))
            m = 0
        n = max(n, MIN_PAIRS_PER_LEVEL)
        m = max(m, MIN_PAIRS_PER_LEVEL) if m else 0
        n_single = n if estimator == "paper" else 0
        c_max = max(abs(coefs[t]) for t in ("0", "rho", "2rho"))
        if banded:
            # planning radius: the hint's rms residual times the radius scale (the real R
            # comes from the pilot, decision.band_radius); the charges of
            # fourier.estimation.banded_corruption_charges with honest |r| ~ sqrt(h)
            r_plan = min(base_radius_scale * math.sqrt(h), 2 * b)
            charge = _banded_planning_charge(c_max, n, h, r_plan, share_corruption * spare)
            m = PILOT_SIZE
        elif estimator == "residual":
            charge = c_max / n * max(2 * b * math.sqrt(h), ((2 * b) ** 2 + h) / 2)
        else:
            charge = c_max / n * 2 * b * math.sqrt(h_f2)
        m_tol = int(share_corruption * spare / charge)
        k = spot_checks_needed(6 * n + n_single, m_tol, split.corruption * delta)
        # the decision charges |c| (2 r tau + tau^2) with r the largest observed |f - g| +
        # tau: at most 2 b, and with the band about its radius
        r_tol = (min(base_radius_scale * math.sqrt(h), 2 * b) if banded else 2 * b) + tau
        tol_term = sum(abs(coefs[t]) for t in ("0", "rho", "2rho")) * (2 * r_tol * tau + tau**2)
        if tol_term > SHARE_TOLERANCE * spare:
            notes.append(f"the tolerance tau={tau:g} costs {tol_term:.3g} of the budget")
    if mode == "naive":
        n, n_single, k = 0, 0, 0
        m = m or math.ceil(normal_quantile(1 - delta / 2) ** 2 * 2 * h * h / (spare / 4) ** 2)
    if base.mse_source == "delegated":
        m = 0  # the Prover's singletons serve as the MSE sample
    if band == "committed" and preset != "explicit":
        # the clip rate of the band is measured on the spot checks: enough of them that a
        # rate below clip_level / 2 gives an upper confidence bound below clip_level
        k = max(k, math.ceil(2 * math.log(1 / delta) / clip_level))
    k_interactive = k
    if mode == "noninteractive":
        k = 0
    params = replace(base, rho=r, n_pairs=(n, n, n), n_single=n_single, k=k, m=m, band=band)
    if band == "committed":
        params = replace(params, radius_scale=radius_scale, clip_level=clip_level)
    if planning == "pilot":
        if budget is None:
            budget = BUDGET_FACTOR * (params.n_challenges + k + m)
        if budget < 0:
            raise UsageError(f"budget must be >= 0 (0: no cap), not {budget}")
        params = replace(params, planning="pilot", budget=budget)
        notes.append(
            "sizes planned from the hint are a forecast: the Verifier fixes rho, the pairs "
            f"and k after the commitment, from the residual on its pilot of {m} trainings"
        )
    E = params.n_challenges
    if mode == "interactive" and k >= E:
        notes.append("k >= |E|: every challenge is spot-checked (as costly as non-interactive)")
        params = replace(params, k=E)
        k = E
    m_tol = _m_tolerated(E, k, split.corruption * delta) if mode == "interactive" else 0
    # (more than |E| corruptions cannot happen: vacuously detected)
    detect = 1 - miss_probability(E, k, m_tol + 1) if mode == "interactive" and m_tol < E else 1.0
    verifier = {"interactive": k + m, "noninteractive": E + m, "naive": m}[mode]
    nonint = E + m
    # a least-squares datamodel on R runs has err ~ N B_>=2 / R (docs/protocol.md section 7.6):
    # with the residual hint standing in for B_>=2, err <= eps/2 needs about 2 N B_>=2 / eps runs
    h_res = h if estimator == "residual" else 0.1 * b * b
    self_fit = math.ceil(2 * task.n_points * h_res / epsilon)
    if mode == "naive":
        rec = "naive mode is a baseline only: it certifies MSE <= claimed + eps, not optimality"
    elif self_fit < min(verifier, nonint):
        rec = (
            f"at this N, fitting a datamodel yourself (~{self_fit} runs) is cheaper than "
            "verifying; verification pays off when N * B_>=2 / eps exceeds k"
        )
    elif mode == "interactive" and k + m >= 0.9 * nonint:
        rec = "non-interactive: retraining E yourself costs about as much as the spot checks"
    elif mode == "noninteractive" and k_interactive + m < nonint:
        rec = f"interactive: about {k_interactive + m} Verifier trainings instead of {nonint}"
    else:
        rec = f"{mode}: cheapest sound mode for these sizes"
    return Plan(
        params=params,
        prover_trainings=E if mode == "interactive" else 0,
        verifier_trainings=verifier,
        m_tolerated=m_tol,
        detection_probability=detect,
        noninteractive_trainings=nonint,
        self_attribution_trainings=self_fit,
        recommendation=rec,
        notes=tuple(notes),
    )


def replan_from_pilot(
    task: TaskInfo, opened: ProtocolParams, residual_sq: float
) -> tuple[ProtocolParams, float]:
    """The sizes of a pilot-planned session (docs/protocol.md section 6.14), fixed after the
    attribution commitment: :func:`plan_run` at the hint ``residual_sq`` (the largest mean
    squared residual ``(f - g)^2`` of an audited output on the pilot M). When that plan
    needs more than ``opened.budget`` trainings, the plan of the largest hint whose plan
    fits the budget (bisection in log h; the smallest hint's plan if none fits): a run the
    budget cannot size for ``residual_sq`` is sized consistently (rho, pairs and k of one
    hint) for the largest residual it can afford, so a far-off attribution still meets the
    rho and pairs that reject it. Returns the sized parameters and the hint they were
    planned at (``< residual_sq`` when the budget bound). Deterministic in its inputs, so a
    replay reproduces it; it only sizes the run (E and C are drawn afterwards from seeds
    fixed at open), never soundness.
    """
    if opened.planning != "pilot":
        raise UsageError("only a pilot-planned session is sized from its pilot")
    b2 = task.bound * task.bound
    hint = residual_sq if math.isfinite(residual_sq) and residual_sq >= 0 else HINT_RANGE[1] * b2
    hint = min(max(hint, HINT_RANGE[0] * b2), HINT_RANGE[1] * b2)

    def sized(h: float) -> ProtocolParams:
        p = plan_run(
            task,
            opened.epsilon,
            opened.delta,
            estimator=opened.estimator,
            mode=opened.mode,
            eta=opened.eta,
            outputs=opened.outputs,
            hint=h,
            fit=opened.fit,
            band="committed",
            planning="fixed",
            radius_scale=opened.radius_scale,
            clip_level=opened.clip_level,
        ).params
        n = p.n_pairs[0]
        sizes = {"rho": p.rho, "n_pairs": [n, n, n], "n_single": p.n_single, "k": p.k}
        return opened.opening().sized(sizes)

    def fits(p: ProtocolParams) -> bool:
        return not opened.budget or p.total_trainings <= opened.budget

    best = sized(hint)
    if fits(best):
        return best, hint
    lo, hi = math.log(HINT_RANGE[0] * b2), math.log(hint)
    best, planned = sized(math.exp(lo)), math.exp(lo)
    if not fits(best):
        return best, planned
    for _ in range(60):
        mid = (lo + hi) / 2
        candidate = sized(math.exp(mid))
        if fits(candidate):
            lo, best, planned = mid, candidate, math.exp(mid)
        else:
            hi = mid
    return best, planned


def _banded_planning_charge(c_max: float, n: int, h: float, radius: float, share: float) -> float:
    """The mean of the m largest banded charges (what the decision's corruption bound sums,
    :func:`attribution.fourier.estimation.banded_corruption_charges`), for planning: a value
    ``v`` whose partner has ``|r(w)| = q sqrt(h)`` is charged ``|c| / n * max((R + |r(v)|)
    |r(w)|, (R^2 + |r(v) r(w)|) / 2)``. The m largest charges are those of the top fraction
    ``m / 6n`` of ``|r(w)|``: for Gaussian residuals their mean ``q`` is about
    ``Phi^-1(1 - m / 12 n) + 0.3`` (the quantile plus the mean excess above it), at most
    ``R / sqrt(h)`` (the band clips beyond). ``m = share / charge`` and the charge depend
    on each other: three fixed-point steps from ``m / 6n = 1e-3``."""
    sd = math.sqrt(h)
    top = 1e-3
    charge = 0.0
    for _ in range(3):
        q = min(normal_quantile(1 - top / 2) + 0.3, radius / sd if sd > 0 else 0.0)
        r_top = q * sd
        charge = c_max / n * max((radius + sd) * r_top, (radius**2 + sd * r_top) / 2)
        m = max(share / charge, 1.0)
        top = min(m / (6 * n), 0.5)
    return charge


def _m_tolerated(E: int, k: int, delta_c: float) -> int:
    from attribution.stats import max_undetected

    return max_undetected(E, k, delta_c) if E else 0

"""Sizes of a verification run, chosen and printed before any training.

Accuracy budget. For an honest Prover with err <= eta the Verifier accepts when the upper
confidence bound ``err_hat + w + bias + corruption + tolerance <= eps`` (see
:mod:`attribution.protocol.decision`), and ``err_hat <= eta + w`` with high probability, so the
planner sizes the run for ``2 w + bias + corruption + tolerance <= eps - eta`` with the
shares ``2 w: 50 %``, ``bias: 20 %``, ``corruption: 20 %``, ``tolerance: <= 5 %``
(5 % slack); with the committed band (docs/protocol.md section 6.13) ``2 w: 45 %`` and
``corruption: 25 %``, and the pilot M of :data:`PILOT_SIZE` trainings fixes its radius.

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
# With the committed band the spot checks, not E, are the Verifier's cost: 5 % of the
# budget moves from the noise to the corruption share (fewer spot checks for a larger E;
# breast_cancer-logreg at eps 0.03: k 3,498 -> 2,969, |E| 12,228 -> 15,096).
BAND_SHARE_NOISE, BAND_SHARE_CORRUPTION = 0.45, 0.25
# No CLT interval rests on a handful of values: every level of a planned (non-explicit)
# run has at least this many pairs, whatever the hint says.
MIN_PAIRS_PER_LEVEL = 50
# A hint (E[r^2] or E[f^2], in units of b^2) is clamped into this range before planning;
# it only ever sizes the run, and a hint outside it is not a plausible honest residual.
HINT_RANGE = (1e-4, 4.0)
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
    band: str = "task",
) -> Plan:
    """Choose the sizes of a run (see the module docstring).

    ``band``: the audited target (:data:`attribution.protocol.params.BANDS`, docs/protocol.md
    section 6.13); ``"committed"`` needs the residual estimator, not naive mode and not
    the theory preset, and adds the pilot M of :data:`PILOT_SIZE` local trainings.
    """
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
    base_radius_scale = BAND_DEFAULTS["radius_scale"]
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
            charge = c_max / n * max((r_plan + math.sqrt(h)) * math.sqrt(h), (r_plan**2 + h) / 2)
            m = PILOT_SIZE
        elif estimator == "residual":
            charge = c_max / n * max(2 * b * math.sqrt(h), ((2 * b) ** 2 + h) / 2)
        else:
            charge = c_max / n * 2 * b * math.sqrt(h_f2)
        m_tol = int(share_corruption * spare / charge)
        k = spot_checks_needed(6 * n + n_single, m_tol, split.corruption * delta)
        tol_term = sum(abs(coefs[t]) for t in ("0", "rho", "2rho")) * (4 * b * tau + tau * tau)
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
        k = max(k, math.ceil(2 * math.log(1 / delta) / BAND_DEFAULTS["clip_level"]))
    k_interactive = k
    if mode == "noninteractive":
        k = 0
    params = replace(base, rho=r, n_pairs=(n, n, n), n_single=n_single, k=k, m=m, band=band)
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


def _m_tolerated(E: int, k: int, delta_c: float) -> int:
    from attribution.stats import max_undetected

    return max_undetected(E, k, delta_c) if E else 0

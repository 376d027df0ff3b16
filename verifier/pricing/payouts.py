"""Turning a certified attribution into payouts, and what the certificate says in money.

Everything here is a pure function of a report's committed attribution matrix
``A`` of shape ``(T, 1 + N)`` (row ``t`` = ``[a0 | a_1 .. a_N]`` of output ``t``) and of
the budget. Contributors are the ``N`` training points; the intercept ``a0`` is never paid.

Rules (``O`` = the priced outputs, by default the outputs the audit verified)::

    proportional-positive (default)   s_i = (1/|O|) sum_{t in O} a_{t,i}
                                      u_i = max(s_i, 0)
                                      pay_i = B * u_i / sum_j u_j
    proportional                      as above with u_i = |s_i|
                                      (pays influence magnitude, helpful or harmful)
    weights                           B_t = B * w_t / sum_k w_k     (w_t >= 0 per output)
                                      pay_i = sum_t B_t * max(a_{t,i}, 0) / S_t,
                                      S_t = sum_j max(a_{t,j}, 0)

The shares are computed *exactly*: every float64 is an integer multiple of a power of
two, so ``pay_i = X_i / D`` with integers ``X_i``, ``D`` and ``sum_i X_i = B * D`` (``B`` in
cents). No floating-point sum ever decides a cent, and the result is the same on every
platform.

Rounding to the cent (largest-remainder method, Hamilton's method)::

    f_i = floor(X_i / D)            r_i = X_i mod D            R = B - sum_i f_i
    pay_i = f_i + 1   for the R contributors with the largest r_i
                      (ties: the smaller contributor index first)
    pay_i = f_i       otherwise

``0 <= R < #{i : r_i > 0}`` because ``sum_i r_i = R * D`` and ``r_i < D``, so the rounded
payouts sum *exactly* to the budget, each differs from its exact value by less than one
cent, and nobody with ``u_i = 0`` is paid.

Money guarantee (docs/protocol.md sections 1.4, 9). An ACCEPT certifies, with probability
``>= 1 - delta`` over the Verifier's randomness, for every verified output::

    err(a) = (a0 + mu sum_i a_i - f0)^2 + sigma^2 sum_i (a_i - theta*_i)^2 <= eps,
    sigma^2 = 4 p (1 - p)

so ``||a - theta*||_2 <= D := sqrt(eps) / sigma`` over the contributors (the intercept
term is non-negative and only uses up part of the budget). It is an *aggregate* l2 bound:
it says nothing about any one contributor beyond ``|a_i - theta*_i| <= D``, the case
where the whole budget sits on one coordinate. Because ``max(., 0)`` and ``|.|`` are
1-Lipschitz coordinate-wise, ``||u - u*||_2 <= ||s - s*||_2 <= D`` (the mean of the
outputs' deviations is no longer than the longest).

* Fixed rate (the linear rule). Pay the optimum at the rate ``r = B / U`` fixed by this
  report (``U = sum_i u_i``): ``||pay - pay*||_2 = r ||u - u*||_2 <= B D / U``, exact, and
  the largest single deviation consistent with it is the same ``B D / U`` (all of the l2
  budget on one contributor).
* Renormalised budget (what the rule pays). With ``q = u / U`` the certified shares,
  ``d = u - u*`` and ``U* = U - 1^T d``::

      q - q* = (I - q 1^T) d / U*,    ||I - q 1^T||_2 = sqrt(N sum_i q_i^2)

  (an oblique projection: its norm equals that of ``q 1^T``), and
  ``U* >= U - ||d||_1 >= U - sqrt(N) D``. Hence, when ``U > sqrt(N) D``::

      ||pay - pay*||_2 <= B sqrt(N sum q_i^2) D / (U - sqrt(N) D)
      |pay_i - pay*_i|  <= B D sqrt((1 - q_i)^2 + (N - 1) q_i^2) / (U - sqrt(N) D)

  and *no* bound otherwise: the certificate lets a Prover move the normaliser by up to
  ``sqrt(N) D`` (e.g. ``D / sqrt(N)`` on every contributor), which rescales every share.
  The first-order estimate (``U*`` ~ ``U``) replaces the denominator by ``U``. For the
  weights rule the per-output bounds add (triangle inequality, budgets ``B_t``).

Rounding adds less than one cent per contributor on top of either bound.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError

FloatArray = npt.NDArray[np.float64]

RULES = ("proportional-positive", "proportional", "weights")
DEFAULT_RULE = "proportional-positive"
ROUNDING = (
    "largest remainder: every contributor gets floor(exact payout in cents); the cents "
    "left over go, one each, to the largest fractional remainders (ties: smaller "
    "contributor index first); payouts sum exactly to the budget"
)
AGGREGATE_NOTE = (
    "The guarantee is aggregate, not per contributor: it bounds the l2 norm of the "
    "whole payout deviation, and all of it may fall on a single contributor."
)


class ReportRefused(Exception):
    """A report that must not be priced (failed check, or not ACCEPT without --force)."""


# -- money ------------------------------------------------------------------------------
def parse_budget(text: str, *, in_cents: bool = False) -> int:
    """The budget in integer cents: ``"1234.5"`` -> 123450; with ``in_cents`` the text is
    already a whole number of cents. Raises :class:`UsageError` for anything else."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise UsageError(f"--budget: {text!r} is not a number") from exc
    if not value.is_finite() or value < 0:
        raise UsageError(f"--budget must be a finite non-negative amount, got {text!r}")
    cents = value if in_cents else value * 100
    if cents != cents.to_integral_value():
        unit = "a whole number of cents" if in_cents else "at most 2 decimals (cents)"
        raise UsageError(f"--budget {text!r} must be {unit}")
    return int(cents)


def format_money(cents: int, in_cents: bool = False) -> str:
    """``12345 -> "123.45"`` (or ``"12345"`` with ``in_cents``); exact, no float."""
    if in_cents:
        return str(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def parse_weights(text: str) -> list[Fraction]:
    """Comma-separated non-negative decimals, exactly (``"1,0.5"`` -> [1, 1/2])."""
    out: list[Fraction] = []
    for part in text.split(","):
        try:
            w = Fraction(Decimal(part.strip()))
        except (InvalidOperation, ValueError, OverflowError) as exc:
            raise UsageError(f"--weights: {part!r} is not a finite number") from exc
        if w < 0:
            raise UsageError(f"--weights must be >= 0, got {part.strip()}")
        out.append(w)
    if not out or sum(out) == 0:
        raise UsageError("--weights must have a positive sum")
    return out


# -- exact arithmetic -------------------------------------------------------------------
def exact_integers(values: FloatArray) -> tuple[list[int], int]:
    """``(n, D)`` with ``values[i] == n[i] / D`` exactly, ``D`` a power of two."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(flat)):
        raise UsageError("the attribution has non-finite values")
    ratios = [float(x).as_integer_ratio() for x in flat.tolist()]
    den = max((d for _, d in ratios), default=1)
    return [n * (den // d) for n, d in ratios], den


def largest_remainder(numerators: Sequence[int], denominator: int, total: int) -> list[int]:
    """Round ``x_i = numerators[i] / denominator`` (``sum x_i == total``, all ``>= 0``) to
    integers summing to ``total``: floors, then one more for the ``R`` largest remainders,
    ties by index (see the module docstring)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if any(x < 0 for x in numerators):
        raise ValueError("largest_remainder needs non-negative numerators")
    if sum(numerators) != total * denominator:
        raise ValueError("the exact amounts do not sum to the total")
    floors = [x // denominator for x in numerators]
    rems = [x % denominator for x in numerators]
    left = total - sum(floors)
    order = sorted(range(len(numerators)), key=lambda i: (-rems[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors


# -- payouts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One normalised block of the rule: budget share, normaliser U (attribution units,
    of the score actually paid on) and the certified shares q."""

    budget_cents: Fraction
    normaliser: float
    shares: FloatArray
    output: int | None = None


@dataclass(frozen=True)
class Pricing:
    """Payouts of one rule on one attribution.

    ``shares[i] / denominator`` is contributor ``i``'s exact share of the budget
    (integers, ``sum(shares) == denominator``); the exact payout in cents is
    ``budget_cents * shares[i] / denominator`` and ``cents`` the rounded payouts.
    """

    rule: str
    outputs: tuple[int, ...]
    weights: tuple[Fraction, ...] | None
    budget_cents: int
    scores: FloatArray  # s_i (proportional rules) or the weighted score (weights rule)
    shares: list[int]
    denominator: int
    cents: list[int]
    groups: tuple[Group, ...] = field(default=())
    normalisers: tuple[Fraction, ...] = field(default=())
    """Exact normalisers: ``(sum_j u_j,)`` with ``u_j`` computed on the *sum* over the
    priced outputs (proportional rules; the same shares as the mean), or ``S_t`` per
    priced output (weights rule; 0 where ``w_t = 0``)."""

    @property
    def n(self) -> int:
        return len(self.cents)

    def exact_cents(self, i: int) -> Fraction:
        return Fraction(self.budget_cents * self.shares[i], self.denominator)

    def share(self, i: int) -> float:
        return float(Fraction(self.shares[i], self.denominator))


def _shares_single(u: list[int]) -> tuple[list[int], int]:
    total = sum(u)
    if total == 0:
        raise UsageError("no contributor has a positive weight under this rule: nothing to pay")
    return u, total


def compute_payouts(
    attribution: FloatArray,
    outputs: Sequence[int],
    budget_cents: int,
    rule: str = DEFAULT_RULE,
    weights: Sequence[Fraction] | None = None,
) -> Pricing:
    """Payouts in cents for ``rule`` on rows ``outputs`` of ``attribution`` (T, 1 + N).

    Raises :class:`UsageError` for an unknown rule, mismatched weights, or when no
    contributor has positive weight.
    """
    A = np.asarray(attribution, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] < 2:
        raise UsageError(f"attribution of shape {A.shape} is not (T, 1 + N)")
    if rule not in RULES:
        raise UsageError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")
    outs = tuple(int(o) for o in outputs)
    if not outs or len(set(outs)) != len(outs):
        raise UsageError("give each priced output once")
    for o in outs:
        if not 0 <= o < A.shape[0]:
            raise UsageError(f"output {o} outside 0..{A.shape[0] - 1}")
    if budget_cents < 0:
        raise UsageError("the budget must be non-negative")
    if rule == "weights":
        if weights is None:
            raise UsageError("--rule weights needs --weights (one per priced output)")
    elif weights is not None:
        raise UsageError("--weights goes with --rule weights")
    rows = A[list(outs), 1:]
    n = rows.shape[1]
    ints, den = exact_integers(rows)
    per_out = [ints[k * n : (k + 1) * n] for k in range(len(outs))]
    groups: list[Group] = []
    if rule != "weights":
        summed = [sum(col) for col in zip(*per_out, strict=True)]
        u = [max(x, 0) for x in summed] if rule == DEFAULT_RULE else [abs(x) for x in summed]
        unit, unit_den = _shares_single(u)
        normalisers = [Fraction(unit_den, den)]
        scores = rows.mean(axis=0)
        su = np.maximum(scores, 0.0) if rule == DEFAULT_RULE else np.abs(scores)
        q = np.array([float(Fraction(x, unit_den)) for x in unit])
        groups.append(Group(Fraction(budget_cents), float(su.sum()), q))
    else:
        w = list(weights or ())
        if len(w) != len(outs):
            raise UsageError(f"--weights has {len(w)} values for {len(outs)} priced output(s)")
        wsum = sum(w)
        coefs: list[tuple[Fraction, list[int]]] = []
        normalisers = []
        for k, (o, wt) in enumerate(zip(outs, w, strict=True)):
            pos = [max(x, 0) for x in per_out[k]]
            s_t = sum(pos)
            normalisers.append(Fraction(s_t, den))
            if wt == 0:
                continue
            if s_t == 0:
                raise UsageError(f"output {o} has no positive attribution to pay on")
            coefs.append((wt / (wsum * s_t), pos))
            qt = np.array([float(Fraction(x, s_t)) for x in pos])
            groups.append(
                Group(
                    Fraction(budget_cents) * wt / wsum,
                    float(np.maximum(rows[k], 0.0).sum()),
                    qt,
                    o,
                )
            )
        unit_den = math.lcm(*(c.denominator for c, _ in coefs))
        unit = [0] * n
        for c, pos in coefs:
            m = c.numerator * (unit_den // c.denominator)
            for i, x in enumerate(pos):
                if x:
                    unit[i] += m * x
        wf = np.array([float(x / wsum) for x in w])
        scores = wf @ rows
    cents = largest_remainder([budget_cents * x for x in unit], unit_den, budget_cents)
    return Pricing(
        rule,
        outs,
        tuple(weights) if weights is not None else None,
        budget_cents,
        np.asarray(scores, dtype=np.float64),
        unit,
        unit_den,
        cents,
        tuple(groups),
        tuple(normalisers),
    )


# -- the guarantee ----------------------------------------------------------------------
def attribution_radius(epsilon: float, p: float) -> float:
    """``sqrt(eps) / sqrt(4 p (1 - p))``: the l2 radius around the best attribution that an
    ACCEPT at ``eps`` certifies (module docstring)."""
    return math.sqrt(epsilon) / math.sqrt(4 * p * (1 - p))


def money_guarantee(
    pricing: Pricing, epsilon: float, delta: float, p: float, in_cents: bool = False
) -> dict[str, Any]:
    """What an ACCEPT certificate implies for these payouts (module docstring).

    Amounts are in currency units (or cents with ``in_cents``); ``None`` where the
    renormalised bound is vacuous (``U <= sqrt(N) D`` for some block).
    """
    scale = 1.0 if in_cents else 0.01
    sigma = math.sqrt(4 * p * (1 - p))
    radius = attribution_radius(epsilon, p)
    n = pricing.n
    root_n = math.sqrt(n)
    fixed = 0.0
    norm: float | None = 0.0
    norm_first = 0.0
    single: float | None = 0.0
    single_first = 0.0
    blocks = []
    for g in pricing.groups:
        b = float(g.budget_cents)
        fixed_g = b * radius / g.normaliser
        q = g.shares
        op = math.sqrt(n * float(q @ q))
        one = float(np.max(np.sqrt((1 - q) ** 2 + (n - 1) * q**2)))
        first_g = b * op * radius / g.normaliser
        first_single_g = b * radius * one / g.normaliser
        room = g.normaliser - root_n * radius
        fixed += fixed_g
        norm_first += first_g
        single_first += first_single_g
        if room > 0 and norm is not None and single is not None:
            norm += b * op * radius / room
            single += b * radius * one / room
        else:
            norm = single = None
        blocks.append(
            {
                "output": g.output,
                "budget": b * scale,
                "normaliser_U": g.normaliser,
                "sqrt_n_radius": root_n * radius,
                "effective_contributors": 1.0 / float(q @ q) if float(q @ q) > 0 else 0.0,
            }
        )
    paid = sum(1 for c in pricing.cents if c > 0)
    mean = pricing.budget_cents / paid if paid else 0.0
    return {
        "holds": True,
        "probability": 1 - delta,
        "epsilon": epsilon,
        "delta": delta,
        "p": p,
        "sigma": sigma,
        "attribution_l2_radius": radius,
        "fixed_rate": {
            "rate_per_attribution_unit": [
                float(g.budget_cents) * scale / g.normaliser for g in pricing.groups
            ],
            "payout_l2": fixed * scale,
            "single_contributor_max": fixed * scale,
            "exact": True,
        },
        "renormalised": {
            "payout_l2": None if norm is None else norm * scale,
            "single_contributor_max": None if single is None else single * scale,
            "first_order_payout_l2": norm_first * scale,
            "first_order_single_contributor_max": single_first * scale,
            "vacuous": norm is None,
        },
        "blocks": blocks,
        "mean_payout": mean * scale,
        "rounding_per_contributor": "< 1 cent",
        "statement": guarantee_statement(pricing, radius, fixed * scale, norm, mean * scale),
    }


def guarantee_statement(
    pricing: Pricing, radius: float, fixed: float, norm: float | None, mean: float
) -> str:
    """The plain-words summary printed with the payouts."""
    ratio = f" ({fixed / mean:.1f}x the mean payout)" if mean > 0 else ""
    renorm = (
        "With the budget renormalised as the rule does, the certificate gives no bound: "
        "it lets the attribution's total mass move by up to sqrt(N) * D, which can "
        "rescale every share."
        if norm is None
        else "With the budget renormalised as the rule does, the l2 deviation is bounded "
        "as stated under 'renormalised'."
    )
    return (
        f"The certified attribution is within l2 distance D = sqrt(eps)/sigma = "
        f"{radius:.4g} of the optimal one (all contributors together). At the rate fixed "
        f"by this report, the payout vector is within {fixed:.2f} (l2) of paying the "
        f"optimal attribution; one contributor alone may be off by up to {fixed:.2f}"
        f"{ratio}. {renorm} {AGGREGATE_NOTE}"
    )


NO_GUARANTEE = {
    "holds": False,
    "statement": "none: the attribution was not accepted, so nothing bounds its error",
}


# -- report-level helpers ---------------------------------------------------------------
@dataclass
class LoadedReport:
    """A report that passed ``check_report`` (plus the policy decision on its verdict)."""

    path: Path
    report: dict[str, Any]
    values: dict[str, FloatArray]
    warning: str | None

    @property
    def certificate(self) -> dict[str, Any]:
        cert: dict[str, Any] = self.report["certificate"]
        return cert

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])

    @property
    def attribution(self) -> FloatArray:
        t = self.certificate["task"]
        return self.values["attribution"].reshape(int(t["n_outputs"]), int(t["n_points"]) + 1)

    @property
    def verified_outputs(self) -> tuple[int, ...]:
        return tuple(int(o) for o in self.certificate["params"]["outputs"])


def open_report(path: Path, *, force: bool = False, need_accept: bool = True) -> LoadedReport:
    """``check_report`` then load; refuses (``ReportRefused``) a report that fails the
    check, and a non-ACCEPT one when ``need_accept`` and not ``force`` (with ``force`` a
    warning is returned, to be printed *inside* the output)."""
    from verifier.reports.report import check_report

    res = check_report(path)
    if not res.ok:
        raise ReportRefused(
            f"{path} fails the offline check ({len(res.problems)} problem(s)): "
            + "; ".join(res.problems)
        )
    report, values = res.report, res.values  # what was checked, not a second read
    warning = None
    verdict = report["verdict"]
    if verdict != "ACCEPT":
        why = f"{verdict}{' (' + report['reason'] + ')' if report.get('reason') else ''}"
        if need_accept and not force:
            raise ReportRefused(
                f"{path}: the verdict is {why}, not ACCEPT; the attribution is not certified "
                "(use --force to price it anyway, with a warning in the output)"
            )
        warning = (
            f"WARNING: the audit's verdict is {why}, not ACCEPT: this attribution is NOT "
            "certified and these figures carry no guarantee (--force)"
        )
    return LoadedReport(path, report, values, warning)


def parse_outputs(text: str | None, loaded: LoadedReport) -> tuple[int, ...]:
    """``--output`` (comma-separated indices) or the verified outputs; each must be one
    the audit verified."""
    verified = loaded.verified_outputs
    if text is None:
        return verified
    try:
        outs = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise UsageError(f"--output: {text!r} is not a list of integers") from exc
    for o in outs:
        if o not in verified:
            raise UsageError(
                f"output {o} was not verified by this audit (verified: "
                f"{', '.join(map(str, verified))})"
            )
    return outs


def price_report(
    loaded: LoadedReport,
    budget_cents: int,
    rule: str = DEFAULT_RULE,
    weights: Sequence[Fraction] | None = None,
    outputs: Sequence[int] | None = None,
    in_cents: bool = False,
) -> tuple[Pricing, dict[str, Any]]:
    """Payouts and the JSON document ``vattr price --json`` prints."""
    cert = loaded.certificate
    outs = tuple(outputs) if outputs is not None else loaded.verified_outputs
    pricing = compute_payouts(loaded.attribution, outs, budget_cents, rule, weights)
    params, task = cert["params"], cert["task"]
    if loaded.verdict == "ACCEPT":
        guarantee = money_guarantee(
            pricing, float(params["epsilon"]), float(params["delta"]), float(task["p"]), in_cents
        )
    else:
        guarantee = dict(NO_GUARANTEE)
    doc: dict[str, Any] = {}
    if loaded.warning:
        doc["warning"] = loaded.warning
    doc.update(
        {
            "report": str(loaded.path),
            "verdict": loaded.verdict,
            "reason": loaded.report.get("reason", ""),
            "task": task["name"],
            "n_points": int(task["n_points"]),
            "session_id": cert["session_id"],
            "attribution_root": cert["attribution_root"],
            "rule": rule,
            "outputs": list(outs),
            "weights": None if weights is None else [str(w) for w in weights],
            "currency_cents": in_cents,
            "budget": format_money(budget_cents, in_cents),
            "budget_cents": budget_cents,
            "total_paid_cents": sum(pricing.cents),
            "paid_contributors": sum(1 for c in pricing.cents if c > 0),
            "rounding": ROUNDING,
            "guarantee": guarantee,
            "payouts": [
                {
                    "contributor": i,
                    "score": float(pricing.scores[i]),
                    "share": pricing.share(i),
                    "exact_cents": float(pricing.exact_cents(i)),
                    "payout_cents": c,
                    "payout": format_money(c, in_cents),
                }
                for i, c in enumerate(pricing.cents)
            ],
        }
    )
    return pricing, doc


def payouts_csv(doc: dict[str, Any]) -> str:
    """CSV of the payouts; ``#`` comment lines first (the warning, when forced, first)."""
    buf = io.StringIO()
    if doc.get("warning"):
        buf.write(f"# {doc['warning']}\n")
    buf.write(
        f"# vattr price {doc['report']}: verdict {doc['verdict']}, rule {doc['rule']}, "
        f"outputs {','.join(map(str, doc['outputs']))}, budget {doc['budget']}"
        f"{' cents' if doc['currency_cents'] else ''}, session {doc['session_id']}\n"
    )
    buf.write(f"# rounding: {ROUNDING}\n")
    buf.write(f"# guarantee: {doc['guarantee']['statement']}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["contributor", "score", "share", "payout"])
    for row in doc["payouts"]:
        w.writerow([row["contributor"], repr(row["score"]), repr(row["share"]), row["payout"]])
    return buf.getvalue()


def payouts_text(doc: dict[str, Any], top: int = 20) -> str:
    """Human-readable summary (the top payouts; the full list via --json or --csv)."""
    lines = []
    if doc.get("warning"):
        lines.append(doc["warning"])
    unit = " cents" if doc["currency_cents"] else ""
    lines.append(
        f"{doc['report']}: {doc['verdict']}, task {doc['task']}, outputs "
        f"{','.join(map(str, doc['outputs']))}, N = {doc['n_points']}"
    )
    lines.append(
        f"rule {doc['rule']}, budget {doc['budget']}{unit}: paid "
        f"{format_money(doc['total_paid_cents'], doc['currency_cents'])}{unit} to "
        f"{doc['paid_contributors']} of {doc['n_points']} contributors"
    )
    rows = sorted(doc["payouts"], key=lambda r: (-r["payout_cents"], r["contributor"]))[:top]
    lines.append(f"top {len(rows)} payouts (all of them: --json or --csv):")
    lines.append(f"  {'contributor':>11} {'score':>12} {'share':>9} {'payout':>14}")
    for r in rows:
        lines.append(
            f"  {r['contributor']:>11} {r['score']:>12.4g} {100 * r['share']:>8.3f}% "
            f"{r['payout']:>14}"
        )
    g = doc["guarantee"]
    lines.append("guarantee: " + g["statement"])
    if g.get("holds"):
        fr, rn = g["fixed_rate"], g["renormalised"]
        lines.append(
            f"  with probability >= {g['probability']:.3g}: eps = {g['epsilon']:g}, "
            f"sigma = {g['sigma']:.4g}, D = {g['attribution_l2_radius']:.4g}"
        )
        lines.append(
            f"  fixed rate: ||pay - pay*||_2 <= {fr['payout_l2']:.2f}{unit}; one "
            f"contributor <= {fr['single_contributor_max']:.2f}{unit}; mean payout "
            f"{g['mean_payout']:.2f}{unit}"
        )
        if rn["vacuous"]:
            lines.append(
                f"  renormalised: no bound (U <= sqrt(N) D); first-order estimate "
                f"{rn['first_order_payout_l2']:.2f}{unit} (l2), "
                f"{rn['first_order_single_contributor_max']:.2f}{unit} (one contributor)"
            )
        else:
            lines.append(
                f"  renormalised: ||pay - pay*||_2 <= {rn['payout_l2']:.2f}{unit}; one "
                f"contributor <= {rn['single_contributor_max']:.2f}{unit}"
            )
    lines.append(f"rounding: {ROUNDING}")
    return "\n".join(lines)

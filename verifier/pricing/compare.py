"""``vattr compare REPORT_A REPORT_B``: how two audited attributions (and payouts) differ.

Both reports must pass the offline check and be for the same task shape; their verdicts
may differ (honest vs cheating is the point). Per compared output ``t`` (the outputs both
audits verified), with ``x = a^A_{t,1..N}`` and ``y = a^B_{t,1..N}``::

    pearson  = corr(x, y)                 spearman = corr(rank x, rank y)
    slope    = <x, y> / <x, x>            (B on A through the origin; 0.5 for the demo cheat)
    max / median |y - x|,  ||y - x||_2,  ||y - x||_2 / ||x||_2

When both are ACCEPT, each is within ``D = sqrt(eps)/sigma`` (l2) of the same optimum, so
``||y - x||_2 <= D_A + D_B`` (minus nothing: the intercept terms only help); a larger
observed distance means at least one certificate is wrong (probability <= delta_A +
delta_B). With ``--budget`` both are priced with the same rule and the payout differences
are summarised (money moved = ``sum_i |pay^B_i - pay^A_i| / 2``). A uniform rescaling of the
attribution (``slope`` with near-perfect correlation) leaves budget-normalised payouts
unchanged: proportional rules pay shares, not amounts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from verifier.pricing.payouts import (
    DEFAULT_RULE,
    LoadedReport,
    attribution_radius,
    compute_payouts,
    format_money,
)
from verifier.render.html_report import banner, figure_html, new_figure, page, svg_of

FloatArray = npt.NDArray[np.float64]


def _ranks(x: FloatArray) -> FloatArray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(x), dtype=np.float64)


def _corr(x: FloatArray, y: FloatArray) -> float | None:
    if x.size < 2 or float(np.std(x)) == 0 or float(np.std(y)) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _radius(loaded: LoadedReport) -> float | None:
    if loaded.verdict != "ACCEPT":
        return None
    cert = loaded.certificate
    return attribution_radius(float(cert["params"]["epsilon"]), float(cert["task"]["p"]))


def compare_reports(
    a: LoadedReport,
    b: LoadedReport,
    budget_cents: int | None = None,
    rule: str = DEFAULT_RULE,
    in_cents: bool = False,
) -> dict[str, Any]:
    """The comparison document (``vattr compare --json``)."""
    ta, tb = a.certificate["task"], b.certificate["task"]
    if a.certificate["task_digest"] != b.certificate["task_digest"]:
        raise UsageError(
            f"the reports audit different tasks ({ta['name']} {a.certificate['task_digest'][:12]}"
            f" vs {tb['name']} {b.certificate['task_digest'][:12]})"
        )
    Aa, Ab = a.attribution, b.attribution
    if Aa.shape != Ab.shape:
        raise UsageError(f"attribution shapes differ: {Aa.shape} vs {Ab.shape}")
    outs = tuple(o for o in a.verified_outputs if o in b.verified_outputs)
    if not outs:
        raise UsageError("the two audits verified no output in common")
    ra, rb = _radius(a), _radius(b)
    per_output = []
    for t in outs:
        x, y = Aa[t, 1:], Ab[t, 1:]
        d = y - x
        xx = float(x @ x)
        l2 = float(np.linalg.norm(d))
        order = np.argsort(-np.abs(d), kind="stable")[:10]
        row: dict[str, Any] = {
            "output": t,
            "pearson": _corr(x, y),
            "spearman": _corr(_ranks(x), _ranks(y)),
            "slope_b_on_a": float(x @ y) / xx if xx > 0 else None,
            "max_abs_diff": float(np.max(np.abs(d))),
            "median_abs_diff": float(np.median(np.abs(d))),
            "l2_diff": l2,
            "relative_l2_diff": l2 / math.sqrt(xx) if xx > 0 else None,
            "intercepts": [float(Aa[t, 0]), float(Ab[t, 0])],
            "sign_agreement": float(np.mean(np.sign(x) == np.sign(y))),
            "largest_changes": [
                {"contributor": int(i), "a": float(x[i]), "b": float(y[i]), "diff": float(d[i])}
                for i in order
            ],
        }
        if ra is not None and rb is not None:
            row["certified_max_l2_diff"] = ra + rb
            row["consistent_with_certificates"] = l2 <= ra + rb
        per_output.append(row)
    doc: dict[str, Any] = {
        "task": ta["name"],
        "n_points": int(ta["n_points"]),
        "a": _side(a),
        "b": _side(b),
        "outputs": per_output,
    }
    if budget_cents is not None:
        doc["payouts"] = _payouts(a, b, outs, budget_cents, rule, in_cents)
    return doc


def _side(x: LoadedReport) -> dict[str, Any]:
    return {
        "report": str(x.path),
        "verdict": x.verdict,
        "reason": x.report.get("reason", ""),
        "session_id": x.certificate["session_id"],
        "attribution_root": x.certificate["attribution_root"],
        "epsilon": x.certificate["params"]["epsilon"],
    }


def _payouts(
    a: LoadedReport,
    b: LoadedReport,
    outs: tuple[int, ...],
    budget_cents: int,
    rule: str,
    in_cents: bool,
) -> dict[str, Any]:
    try:
        pa = compute_payouts(a.attribution, outs, budget_cents, rule)
        pb = compute_payouts(b.attribution, outs, budget_cents, rule)
    except UsageError as exc:
        return {"error": str(exc)}
    ca, cb = np.array(pa.cents, dtype=np.int64), np.array(pb.cents, dtype=np.int64)
    # what B would pay in total at A's rate (budget / U_A per unit of attribution)
    at_rate = None
    if rule != "weights":
        ratio = pb.normalisers[0] / pa.normalisers[0]
        at_rate = format_money(round(budget_cents * ratio), in_cents)
    d = cb - ca
    order = np.argsort(-np.abs(d), kind="stable")[:10]
    return {
        "rule": rule,
        "outputs": list(outs),
        "budget": format_money(budget_cents, in_cents),
        "currency_cents": in_cents,
        "cents_a": pa.cents,
        "cents_b": pb.cents,
        "changed_contributors": int(np.count_nonzero(d)),
        "money_moved": format_money(int(np.abs(d).sum()) // 2, in_cents),
        "max_gain": format_money(int(d.max()), in_cents),
        "max_loss": format_money(int(-d.min()), in_cents),
        "l2_diff_cents": float(np.linalg.norm(d.astype(np.float64))),
        "b_total_at_a_rate": at_rate,
        "largest_changes": [
            {
                "contributor": int(i),
                "a": format_money(int(ca[i]), in_cents),
                "b": format_money(int(cb[i]), in_cents),
                "diff": format_money(int(d[i]), in_cents),
            }
            for i in order
            if d[i] != 0
        ],
    }


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def compare_text(doc: dict[str, Any]) -> str:
    a, b = doc["a"], doc["b"]
    lines = [
        f"A {a['report']}: {a['verdict']}{' (' + a['reason'] + ')' if a['reason'] else ''}",
        f"B {b['report']}: {b['verdict']}{' (' + b['reason'] + ')' if b['reason'] else ''}",
        f"task {doc['task']}, N = {doc['n_points']}",
    ]
    for r in doc["outputs"]:
        lines.append(
            f"output {r['output']}: pearson {_fmt(r['pearson'])}, spearman "
            f"{_fmt(r['spearman'])}, slope B/A {_fmt(r['slope_b_on_a'])}, max |diff| "
            f"{r['max_abs_diff']:.4g}, median |diff| {r['median_abs_diff']:.4g}, l2 diff "
            f"{r['l2_diff']:.4g} ({_fmt(r['relative_l2_diff'], '.1%')} of A)"
        )
        if "certified_max_l2_diff" in r:
            lines.append(
                f"  both ACCEPT: certified l2 distance <= {r['certified_max_l2_diff']:.4g} "
                f"({'consistent' if r['consistent_with_certificates'] else 'INCONSISTENT'})"
            )
        top = ", ".join(
            f"{c['contributor']}: {c['a']:.3g} -> {c['b']:.3g}" for c in r["largest_changes"][:5]
        )
        lines.append(f"  largest changes: {top}")
    pay = doc.get("payouts")
    if pay is not None:
        if "error" in pay:
            lines.append(f"payouts: not comparable ({pay['error']})")
        else:
            lines.append(
                f"payouts ({pay['rule']}, budget {pay['budget']} each): "
                f"{pay['changed_contributors']} contributors paid differently, money moved "
                f"{pay['money_moved']}, max gain {pay['max_gain']}, max loss {pay['max_loss']}"
            )
            if pay["changed_contributors"] == 0:
                lines.append(
                    "  identical payouts: a proportional rule pays shares, so a uniform "
                    "rescaling of the attribution does not change them"
                )
            if pay.get("b_total_at_a_rate") is not None:
                lines.append(
                    f"  at A's fixed rate (budget / U_A per unit of attribution) B would pay "
                    f"{pay['b_total_at_a_rate']} in total instead of {pay['budget']}"
                )
    return "\n".join(lines)


def compare_html(doc: dict[str, Any], a: LoadedReport, b: LoadedReport) -> str:
    from html import escape

    parts = [f"<h1>Comparison: {escape(doc['task'])}</h1>"]
    for label, side in (("A", doc["a"]), ("B", doc["b"])):
        parts.append(
            banner(
                side["verdict"],
                side["reason"],
                [f"{label}: {side['report']}, session {side['session_id']}"],
            )
        )
    for r in doc["outputs"]:
        t = r["output"]
        x, y = a.attribution[t, 1:], b.attribution[t, 1:]
        fig = new_figure(9.0, 3.6)
        ax = fig.add_subplot(1, 2, 1)
        ax.scatter(x, y, s=8, alpha=0.6, color="#1a73e8")
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="#5f6368", lw=1, label="y = x")
        if r["slope_b_on_a"] is not None:
            ax.plot(
                [lo, hi],
                [r["slope_b_on_a"] * lo, r["slope_b_on_a"] * hi],
                color="#b3261e",
                lw=1,
                ls="--",
                label=f"slope {r['slope_b_on_a']:.3g}",
            )
        ax.set_xlabel("A: a_i")
        ax.set_ylabel("B: a_i")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"output {t}: pearson {_fmt(r['pearson'], '.3f')}", fontsize=10)
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.hist(y - x, bins=50, color="#9334e6", alpha=0.85)
        ax2.set_xlabel("B − A")
        ax2.set_ylabel("contributors")
        ax2.set_title("differences", fontsize=10)
        fig.tight_layout()
        parts.append(f"<section><h2>Output {t}</h2>")
        parts.append(
            figure_html(
                svg_of(fig, f"cmp{t}"),
                f"max |diff| {r['max_abs_diff']:.4g}, median |diff| "
                f"{r['median_abs_diff']:.4g}, l2 {r['l2_diff']:.4g}, spearman "
                f"{_fmt(r['spearman'], '.3f')}.",
            )
        )
        parts.append("</section>")
    pay = doc.get("payouts")
    if pay is not None and "error" not in pay:
        fig = new_figure(5.5, 4.0)
        ax = fig.add_subplot(1, 1, 1)
        scale = 1.0 if pay["currency_cents"] else 0.01
        ca = np.asarray(pay["cents_a"], dtype=np.float64) * scale
        cb = np.asarray(pay["cents_b"], dtype=np.float64) * scale
        ax.scatter(ca, cb, s=8, alpha=0.6, color="#1b7f3b")
        hi = float(max(ca.max(), cb.max(), 1e-9))
        ax.plot([0, hi], [0, hi], color="#5f6368", lw=1)
        ax.set_xlabel("payout under A")
        ax.set_ylabel("payout under B")
        parts.append("<section><h2>Payouts</h2>")
        parts.append(
            figure_html(
                svg_of(fig, "cmppay"),
                f"Rule {pay['rule']}, budget {pay['budget']} each: "
                f"{pay['changed_contributors']} contributors paid differently; money moved "
                f"{pay['money_moved']}.",
                max_width=520,
            )
        )
        parts.append("</section>")
    parts.append(f"<pre>{escape(compare_text(doc))}</pre>")
    return page(f"vattr compare: {doc['task']}", "".join(parts))

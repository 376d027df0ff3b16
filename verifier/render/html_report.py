"""Self-contained HTML audit reports (``vattr report REPORT --html OUT.html``).

One file, no network: inline CSS, every figure an inline ``<svg>`` drawn by matplotlib
(text kept as text, ids salted per figure so several figures can share a page,
deterministic output), no scripts. Sections: verdict banner (green ACCEPT, red REJECT,
amber INCONCLUSIVE); task, parameters, sizes and costs; the decision statistic against
its thresholds::

    ACCEPT iff  upper = D + w + bias + corruption + tolerance <= eps
    REJECT iff  lower = D - w > max(eps / 2, eta)

(``D`` the estimate of err, ``[D - w, D + w]`` its confidence interval); spot checks
(retrained values against the Prover's, re-derived from the revealed seed); the
distribution of attributions and the top contributors; payouts with their money
guarantee (``--budget``); and the protocol timeline with every transcript head.
``@media print`` keeps the colours and avoids splitting figures and tables.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution import __version__
from attribution.commitments import Transcript, fingerprint
from verifier.pricing.payouts import LoadedReport, Pricing, format_money

FloatArray = npt.NDArray[np.float64]

COLOURS = {"ACCEPT": "#1b7f3b", "REJECT": "#b3261e", "INCONCLUSIVE": "#b26a00"}
BANNER_BG = {"ACCEPT": "#e6f4ea", "REJECT": "#fce8e6", "INCONCLUSIVE": "#fff4e0"}
MESSAGES = {
    "open": "V -> P: task digest, parameters, Verifier key, commitments to seed_E, seed_C, seed_M",
    "opened": "P -> V: session id, Prover nonce and key (signed)",
    "commit_attribution": "P -> V: Merkle root of the attribution (signed) -- the Prover is "
    "bound to its prices before any challenge exists",
    "reveal_challenge": "V -> P: seed_E and its salt (checked against the commitment)",
    "commit_evaluations": "P -> V: Merkle root of the f-values of E (signed) -- committed "
    "before any spot-check information exists",
    "verdict": "V: signed verdict and certificate digest; seed_C and seed_M revealed",
}
DIRECTIONS = {1: "Verifier → Prover", 2: "Prover → Verifier", 3: "local"}

CSS = """
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#dadce0; --bg:#ffffff; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       Arial, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 10px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
p, li { max-width: 78ch; }
.muted { color: var(--muted); }
.mono, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              font-size: 0.86em; word-break: break-all; }
.banner { border-radius: 10px; padding: 14px 20px; margin: 16px 0 8px;
          border-left: 10px solid; }
.banner .verdict { font-size: 1.8em; font-weight: 700; letter-spacing: .04em; }
.banner p { margin: 4px 0; }
.warning { background: #fff4e0; border: 1px solid #b26a00; border-radius: 8px;
           padding: 8px 14px; margin: 10px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
        gap: 8px 28px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: .93em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 45%; background: none; font-weight: 500; color: var(--muted); }
figure { margin: 10px 0 16px; }
figure svg { width: 100%; height: auto; max-width: 100%; }
figcaption { color: var(--muted); font-size: .88em; margin-top: 2px; }
ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.timeline li { position: relative; padding: 4px 0 10px 18px; max-width: none; }
ol.timeline li::before { content: ""; position: absolute; left: -8px; top: 10px;
    width: 13px; height: 13px; border-radius: 50%; background: #5f6368; }
ol.timeline li.v::before { background: #1a73e8; }
ol.timeline li.p::before { background: #9334e6; }
ol.timeline li.l::before { background: #5f6368; }
footer { margin-top: 36px; color: var(--muted); font-size: .85em; }
@media print {
  @page { size: A4; margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section, figure, table, .banner { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"""


# -- figures ----------------------------------------------------------------------------
def svg_of(fig: Any, salt: str) -> str:
    """A matplotlib figure as an inline ``<svg>`` element (no XML prolog, no metadata)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.strip()


def new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0.0)
    return fig


def figure_html(svg: str, caption: str, max_width: int | None = None) -> str:
    """``<figure>`` around an inline SVG (``max_width`` in CSS pixels for small plots)."""
    style = f' style="max-width:{max_width}px"' if max_width else ""
    return f"<figure{style}>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def decision_figure(cert: dict[str, Any]) -> str | None:
    """Each verified output: D with its CI, then bias, corruption and tolerance stacked
    up to ``upper``; vertical lines at eps (accept) and max(eps/2, eta) (reject)."""
    outs = [o for o in cert.get("outputs", []) if "statistic" in o][:12]
    if not outs:
        return None
    params = cert["params"]
    eps, eta = float(params["epsilon"]), float(params.get("eta", 0.0))
    reject_at = max(eps / 2, eta)
    fig = new_figure(9.0, 1.3 + 0.55 * len(outs))
    ax = fig.add_subplot(1, 1, 1)
    for y, o in enumerate(outs):
        d, w = float(o["statistic"]), float(o["halfwidth"])
        ax.plot([d - w, d + w], [y, y], color="#1a73e8", lw=6, solid_capstyle="butt")
        left = d + w
        for key, colour in (
            ("bias_bound", "#f29900"),
            ("corruption_bound", "#d93025"),
            ("tolerance_bound", "#9334e6"),
        ):
            width = float(o.get(key, 0.0))
            ax.barh(y, width, left=left, height=0.32, color=colour)
            left += width
        ax.plot([d], [y], "o", color="#174ea6", ms=7)
        ax.plot([float(o["upper_bound"])], [y], "|", color="black", ms=16, mew=2)
    ax.axvline(eps, color=COLOURS["ACCEPT"], lw=2, ls="-")
    ax.axvline(reject_at, color=COLOURS["REJECT"], lw=1.5, ls="--")
    ax.axvline(0, color="#9aa0a6", lw=0.8)
    ax.set_yticks(range(len(outs)), [f"output {o['output']}" for o in outs])
    ax.set_ylim(-0.7, len(outs) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("err(a) estimate, squared output units")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="#174ea6", marker="o", ls="", label="estimate D"),
        Line2D([], [], color="#1a73e8", lw=6, label="confidence interval D ± w"),
        Patch(color="#f29900", label="bias bound"),
        Patch(color="#d93025", label="corruption bound"),
        Patch(color="#9334e6", label="tolerance bound"),
        Line2D([], [], color="black", marker="|", ls="", ms=12, mew=2, label="upper bound"),
        Line2D([], [], color=COLOURS["ACCEPT"], lw=2, label=f"ε = {eps:g} (accept if upper ≤ ε)"),
        Line2D(
            [],
            [],
            color=COLOURS["REJECT"],
            lw=1.5,
            ls="--",
            label=f"max(ε/2, η) = {reject_at:g} (reject if D − w above)",
        ),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.3),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    ax.grid(axis="x", color="#eeeeee")
    return svg_of(fig, "decision")


def histogram_figure(a: FloatArray, title: str, salt: str) -> str:
    fig = new_figure(8.0, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(a, bins=min(60, max(10, a.size // 8)), color="#1a73e8", alpha=0.85)
    ax.axvline(0.0, color="#5f6368", lw=1)
    ax.set_xlabel("attribution a_i")
    ax.set_ylabel("contributors")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", color="#eeeeee")
    return svg_of(fig, salt)


def payout_figure(cents: Sequence[int], in_cents: bool, top: int = 20) -> str:
    """Top payouts (bars) and the cumulative share of the budget by rank."""
    arr = np.asarray(cents, dtype=np.float64)
    order = np.argsort(-arr, kind="stable")
    fig = new_figure(9.0, 3.0)
    ax1 = fig.add_subplot(1, 2, 1)
    k = order[:top]
    scale = 1.0 if in_cents else 0.01
    ax1.bar(range(len(k)), arr[k] * scale, color="#1b7f3b")
    ax1.set_xticks(range(len(k)), [str(i) for i in k], rotation=90, fontsize=7)
    ax1.set_xlabel("contributor")
    ax1.set_ylabel("payout" + (" (cents)" if in_cents else ""))
    ax1.set_title(f"top {len(k)} payouts", fontsize=10)
    ax2 = fig.add_subplot(1, 2, 2)
    total = arr.sum()
    cum = np.cumsum(arr[order]) / total if total > 0 else np.zeros(arr.size)
    ax2.plot(np.arange(1, arr.size + 1), cum, color="#1b7f3b")
    ax2.set_xlabel("contributors, by payout rank")
    ax2.set_ylabel("cumulative share of budget")
    ax2.set_ylim(0, 1.02)
    ax2.grid(color="#eeeeee")
    ax2.set_title("concentration", fontsize=10)
    fig.tight_layout()
    return svg_of(fig, "payouts")


def spot_figure(diffs: FloatArray, tau: float) -> str:
    fig = new_figure(8.0, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    nz = diffs[diffs > 0]
    zeros = int(diffs.size - nz.size)
    if nz.size:
        logs = np.log10(nz)
        ax.hist(logs, bins=40, color="#9334e6", alpha=0.85, label="|f_V − f_P| > 0")
        if tau > 0:
            ax.axvline(np.log10(tau), color=COLOURS["REJECT"], ls="--", label=f"τ = {tau:g}")
        ax.set_xlabel("log10 |retrained − Prover's value|")
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.bar(["identical", "differ"], [zeros, 0], color=["#1b7f3b", "#b3261e"])
        ax.set_xlabel("retrained value vs the Prover's")
    ax.set_ylabel("spot-checked values")
    ax.set_title(f"{diffs.size} values checked, {zeros} bit-identical", fontsize=10)
    ax.grid(axis="y", color="#eeeeee")
    return svg_of(fig, "spot")


# -- data helpers -----------------------------------------------------------------------
def spot_differences(loaded: LoadedReport) -> FloatArray | None:
    """|retrained - Prover's| for every spot-checked value (C re-derived from the revealed
    seed), or ``None`` when it cannot be re-derived (e.g. no f-values)."""
    from verifier.reports.report import certified_session

    cert, values = loaded.certificate, loaded.values
    try:
        s = certified_session(loaded.report, cert)
        info = s.task
        rows = s.spot_check_rows()
        f = values.get("evaluations")
        spot = values.get("spot")
        if f is None or spot is None or not f.size or not rows:
            return None
        f = f.reshape(-1, info.n_outputs)
        spot = spot.reshape(len(rows), info.n_outputs)
        return np.asarray(np.abs(spot - f[rows]).ravel(), dtype=np.float64)
    except (KeyError, ValueError, TypeError, StopIteration, IndexError):
        return None


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _kv(rows: Sequence[tuple[str, Any]], mono: Sequence[str] = ()) -> str:
    out = ['<table class="kv">']
    for k, v in rows:
        cls = ' class="mono"' if k in mono else ""
        out.append(f"<tr><th>{_esc(k)}</th><td{cls}>{_esc(v)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _num(x: float) -> str:
    return f"{x:.4g}"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int]) -> str:
    th = "".join(
        f'<th class="num">{_esc(h)}</th>' if i in numeric else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for r in rows:
        body.append(
            "<tr>"
            + "".join(
                f'<td class="num">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>"
                for i, v in enumerate(r)
            )
            + "</tr>"
        )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str) -> str:
    """The complete document: inline CSS, no scripts, no external resources."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def banner(verdict: str, reason: str, lines: Sequence[str]) -> str:
    colour = COLOURS.get(verdict, "#5f6368")
    bg = BANNER_BG.get(verdict, "#f1f3f4")
    extra = "".join(f"<p>{_esc(x)}</p>" for x in lines)
    why = f" <span>({_esc(reason)})</span>" if reason else ""
    return (
        f'<div class="banner verdict-{_esc(verdict.lower())}" role="status" '
        f'style="background:{bg};border-color:{colour};color:#1d1d1f">'
        f'<div class="verdict" style="color:{colour}">{_esc(verdict)}{why}</div>{extra}</div>'
    )


# -- the report -------------------------------------------------------------------------
def render_report(
    loaded: LoadedReport,
    pricing_doc: dict[str, Any] | None = None,
    pricing: Pricing | None = None,
    generated: datetime | None = None,
) -> str:
    """The HTML document for one checked report (payouts when ``pricing_doc`` is given)."""
    rep, cert = loaded.report, loaded.certificate
    task, params, sizes = cert["task"], cert["params"], cert.get("sizes", {})
    verdict, reason = loaded.verdict, str(rep.get("reason", ""))
    parts: list[str] = []
    parts.append(f"<h1>Attribution audit: {_esc(task['name'])}</h1>")
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f'<p class="muted">Report <code>{_esc(loaded.path.name)}</code>, session '
        f"<code>{_esc(cert['session_id'])}</code>; rendered {when} by vattr {__version__}. "
        "Offline check passed: signatures, Merkle roots, transcript chain and values.</p>"
    )
    explain = {
        "ACCEPT": str(cert.get("guarantee", "")),
        "REJECT": "The attribution is refused: the error estimate is significantly above "
        "the accepted level, or the Prover failed a check. It carries no guarantee.",
        "INCONCLUSIVE": "Neither accepted nor rejected at this budget: the attribution "
        "carries no guarantee; the certificate lists the sizes that would decide.",
    }.get(verdict, "")
    detail = str(cert.get("detail", "") or "")
    parts.append(banner(verdict, reason, [explain] + ([detail] if detail else [])))

    # task, parameters, sizes
    parts.append("<section><h2>Task, parameters and costs</h2><div class='grid'>")
    parts.append(
        _kv(
            [
                ("task", task["name"]),
                ("contributors N (training points)", task["n_points"]),
                ("outputs T", task["n_outputs"]),
                ("verified outputs", ", ".join(map(str, params["outputs"]))),
                ("output bound b", task["bound"]),
                ("sampling probability p", task["p"]),
                ("spot-check tolerance τ", task["tau"]),
                ("task digest", cert.get("task_digest", "")),
            ],
            mono=("task digest",),
        )
    )
    parts.append(
        _kv(
            [
                ("accuracy ε (squared output units)", params["epsilon"]),
                ("failure probability δ", params["delta"]),
                (
                    "preset / estimator / mode",
                    f"{params.get('preset')} / {params.get('estimator')} / {params.get('mode')}",
                ),
                ("noise level ρ", params.get("rho")),
                ("pairs per level", params.get("n_pairs")),
                ("Prover trainings |E|", sizes.get("prover_trainings", sizes.get("E"))),
                ("Verifier trainings", sizes.get("verifier_trainings")),
                ("spot checks k / local MSE |M|", f"{sizes.get('k')} / {sizes.get('M')}"),
            ]
        )
    )
    parts.append("</div>")
    parts.append(
        _kv(
            [
                ("attribution root", cert["attribution_root"]),
                ("Prover key fingerprint", fingerprint(bytes.fromhex(cert["prover_key"]))),
                ("Verifier key fingerprint", fingerprint(bytes.fromhex(cert["verifier_key"]))),
                ("transcript head (signed)", cert["transcript_head"]),
            ],
            mono=(
                "attribution root",
                "Prover key fingerprint",
                "Verifier key fingerprint",
                "transcript head (signed)",
            ),
        )
    )
    parts.append("</section>")

    # decision
    parts.append("<section><h2>Decision</h2>")
    svg = decision_figure(cert)
    if svg is None:
        parts.append(
            f"<p>No error statistics: the audit stopped before estimating "
            f"({_esc(reason or 'no outputs')}).</p>"
        )
    else:
        parts.append(
            figure_html(
                svg,
                "The estimate D of err(a) with its confidence interval, and the bias, "
                "corruption and tolerance terms added on top; ACCEPT needs the upper bound "
                "left of ε, REJECT needs D − w right of max(ε/2, η).",
            )
        )
        rows = []
        for o in cert["outputs"]:
            if "statistic" not in o:
                continue
            rows.append(
                [
                    o["output"],
                    o.get("verdict", ""),
                    _num(o["statistic"]),
                    f"[{_num(o['ci'][0])}, {_num(o['ci'][1])}]",
                    _num(o["bias_bound"]),
                    _num(o["corruption_bound"]),
                    _num(o["tolerance_bound"]),
                    _num(o["upper_bound"]),
                    _num(float(params["epsilon"])),
                ]
            )
        parts.append(
            _table(
                ["output", "verdict", "D", "CI", "bias", "corruption", "tolerance", "upper", "ε"],
                rows,
                numeric=(2, 4, 5, 6, 7, 8),
            )
        )
        for o in cert["outputs"]:
            need = o.get("budget_to_decide")
            if isinstance(need, dict):
                what = (
                    f"about {need.get('pairs_per_level')} pairs per level and k = {need.get('k')}"
                    if need.get("decidable")
                    else str(need.get("advice", ""))
                )
                parts.append(f"<p>Output {_esc(o['output'])}: to decide, {_esc(what)}.</p>")
    parts.append("</section>")

    # spot checks
    parts.append("<section><h2>Spot checks</h2>")
    failures = cert.get("spot_check_failures", 0)
    k = sizes.get("k", 0)
    parts.append(
        f"<p>The Verifier retrained <b>{_esc(k)}</b> secretly chosen challenges of E "
        f"(chosen after the Prover committed to its values) and compared every output "
        f"within τ = {_esc(task['tau'])}: <b>{_esc(failures)}</b> failure(s).</p>"
    )
    diffs = spot_differences(loaded)
    if diffs is not None and diffs.size:
        parts.append(
            figure_html(
                spot_figure(diffs, float(task["tau"])),
                f"Largest difference {float(diffs.max()):.3g} (τ = {task['tau']}), "
                "re-derived here from the revealed seed_C.",
            )
        )
    parts.append("</section>")

    # attributions
    parts.append("<section><h2>Attributions</h2>")
    A = loaded.attribution
    for t in loaded.verified_outputs[:4]:
        a = A[t, 1:]
        parts.append(
            figure_html(
                histogram_figure(
                    a, f"output {t}: attributions of the {a.size} contributors", f"hist{t}"
                ),
                f"Output {t}: intercept a0 = {A[t, 0]:.4g}; {int((a > 0).sum())} positive, "
                f"{int((a < 0).sum())} negative; sum of positives {a[a > 0].sum():.4g}, "
                f"l2 norm {float(np.linalg.norm(a)):.4g}.",
            )
        )
        top = np.argsort(-a, kind="stable")[:10]
        bottom = np.argsort(a, kind="stable")[:5]
        parts.append("<div class='grid'><div><b>Top contributors</b>")
        parts.append(_table(["contributor", "a_i"], [[int(i), f"{a[i]:.5g}"] for i in top], (1,)))
        parts.append("</div><div><b>Most harmful</b>")
        parts.append(
            _table(["contributor", "a_i"], [[int(i), f"{a[i]:.5g}"] for i in bottom], (1,))
        )
        parts.append("</div></div>")
    if len(loaded.verified_outputs) > 4:
        parts.append(f"<p>{len(loaded.verified_outputs) - 4} more verified outputs not shown.</p>")
    parts.append("</section>")

    if pricing_doc is not None and pricing is not None:
        parts.append(payouts_section(pricing_doc, pricing))

    parts.append(timeline_section(loaded))
    parts.append(
        "<footer>Check this report yourself: <code>vattr check "
        f"{_esc(loaded.path.name)} --replay</code>. Figures are drawn from the signed "
        "report and its values file; nothing on this page is fetched from the network."
        "</footer>"
    )
    return page(f"vattr audit {verdict}: {task['name']}", "".join(parts))


def payouts_section(doc: dict[str, Any], pricing: Pricing) -> str:
    in_cents = bool(doc["currency_cents"])
    parts = ["<section><h2>Payouts</h2>"]
    if doc.get("warning"):
        parts.append(f"<div class='warning'>{_esc(doc['warning'])}</div>")
    parts.append(
        f"<p>Rule <b>{_esc(doc['rule'])}</b> on output(s) "
        f"{_esc(', '.join(map(str, doc['outputs'])))}, budget <b>{_esc(doc['budget'])}"
        f"{' cents' if in_cents else ''}</b>: paid "
        f"{_esc(format_money(doc['total_paid_cents'], in_cents))} to "
        f"{_esc(doc['paid_contributors'])} of {_esc(doc['n_points'])} contributors. "
        f"Rounding: {_esc(doc['rounding'])}.</p>"
    )
    parts.append(figure_html(payout_figure(pricing.cents, in_cents), "Payouts by contributor."))
    rows = sorted(doc["payouts"], key=lambda r: (-r["payout_cents"], r["contributor"]))[:15]
    parts.append(
        _table(
            ["contributor", "score", "share", "payout"],
            [
                [r["contributor"], f"{r['score']:.5g}", f"{100 * r['share']:.3f}%", r["payout"]]
                for r in rows
            ],
            (1, 2, 3),
        )
    )
    g = doc["guarantee"]
    parts.append(f"<p><b>What the certificate guarantees in money.</b> {_esc(g['statement'])}</p>")
    if g.get("holds"):
        fr, rn = g["fixed_rate"], g["renormalised"]
        unit = " (cents)" if in_cents else ""
        parts.append(
            _kv(
                [
                    ("l2 radius of the attribution D = √ε/σ", _num(g["attribution_l2_radius"])),
                    (f"fixed rate: ‖pay − pay*‖₂ ≤{unit}", f"{fr['payout_l2']:.2f}"),
                    (f"fixed rate: one contributor ≤{unit}", f"{fr['single_contributor_max']:.2f}"),
                    (
                        f"renormalised: ‖pay − pay*‖₂ ≤{unit}",
                        "no bound (U ≤ √N·D)" if rn["vacuous"] else f"{rn['payout_l2']:.2f}",
                    ),
                    (
                        f"renormalised, first-order estimate{unit}",
                        f"{rn['first_order_payout_l2']:.2f}",
                    ),
                    (f"mean payout{unit}", f"{g['mean_payout']:.2f}"),
                ]
            )
        )
    parts.append("</section>")
    return "".join(parts)


def timeline_section(loaded: LoadedReport) -> str:
    entries = Transcript.from_jsonl(loaded.report["transcript_jsonl"]).entries
    items = []
    for e in entries:
        d = int(e.direction)
        cls = {1: "v", 2: "p"}.get(d, "l")
        digest = base64.b16encode(e.head).decode().lower()
        items.append(
            f'<li class="{cls}"><b>{e.index}. {_esc(e.label)}</b> '
            f'<span class="muted">{_esc(DIRECTIONS.get(d, str(d)))}, {len(e.msg)} bytes</span>'
            f"<br>{_esc(MESSAGES.get(e.label, ''))}"
            f'<br><span class="muted">head h<sub>{e.index}</sub> = </span>'
            f'<code class="mono">{digest}</code></li>'
        )
    return (
        "<section><h2>Protocol timeline</h2><p>Every message as sent, hash-chained: "
        "h<sub>i</sub> = SHA-256(h<sub>i−1</sub> ‖ direction ‖ label ‖ message). The Verifier "
        "signed the head before its verdict.</p>"
        f'<ol class="timeline">{"".join(items)}</ol></section>'
    )

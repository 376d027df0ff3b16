"""Pricing subcommands of ``vattr``: ``price``, ``receipt``, ``report`` and ``compare``.

Every command first runs the offline check of the report(s) (``vattr check``) and refuses
(exit 1, naming the problem) a report that fails it. ``price`` and ``receipt`` also refuse
a report whose verdict is not ACCEPT unless ``--force``; forced output carries a warning
inside itself (JSON field ``warning``, first CSV comment line, first text line). Bad
arguments exit 2 (``UsageError``). See docs/pricing.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from attribution.errors import UsageError
from verifier.pricing.payouts import (
    DEFAULT_RULE,
    RULES,
    LoadedReport,
    Pricing,
    ReportRefused,
    compute_payouts,
    open_report,
    parse_budget,
    parse_outputs,
    parse_weights,
    payouts_csv,
    payouts_text,
    price_report,
)

EXIT_OK, EXIT_REFUSED = 0, 1


def _pricing_args(p: argparse.ArgumentParser, budget_required: bool) -> None:
    p.add_argument(
        "--budget",
        required=budget_required,
        default=None,
        help="total to distribute, in currency units with at most 2 decimals "
        "(whole cents with --currency-cents)",
    )
    p.add_argument("--rule", choices=RULES, default=None, help=f"payout rule ({DEFAULT_RULE})")
    p.add_argument(
        "--weights",
        default=None,
        help="--rule weights: one non-negative weight per priced output, comma-separated",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="IDX[,IDX...]",
        help="priced output(s), among those the audit verified (default: all verified)",
    )
    p.add_argument(
        "--currency-cents",
        action="store_true",
        help="the budget and all amounts are whole cents (integers)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="price a report whose verdict is not ACCEPT (with a warning in the output)",
    )


def register(sub: Any) -> None:
    """Add the pricing subcommands to the ``vattr`` parser."""
    p = sub.add_parser(
        "price", help="turn a checked ACCEPT report into payouts that sum to a budget"
    )
    p.add_argument("report", type=Path)
    _pricing_args(p, budget_required=True)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fmt.add_argument("--csv", type=Path, default=None, metavar="OUT", help="write a CSV file")
    p.set_defaults(handler=cmd_price)

    p = sub.add_parser(
        "receipt",
        help="write one contributor's self-contained receipt (REPORT ...), or check one "
        "(verify FILE)",
        usage="vattr receipt REPORT --contributor I --out FILE [options]\n"
        "       vattr receipt verify FILE [--report REPORT] [--json]",
    )
    p.add_argument("target", nargs="+", metavar="REPORT | verify FILE")
    p.add_argument("--contributor", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="verify: also re-price the payout from this full report",
    )
    p.add_argument("--json", action="store_true")
    _pricing_args(p, budget_required=False)
    p.set_defaults(handler=cmd_receipt)

    p = sub.add_parser("report", help="render a checked report as a self-contained HTML page")
    p.add_argument("report", type=Path)
    p.add_argument("--html", type=Path, required=True, metavar="OUT.html")
    _pricing_args(p, budget_required=False)
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("compare", help="differences between two audited attributions")
    p.add_argument("report_a", type=Path)
    p.add_argument("report_b", type=Path)
    p.add_argument("--budget", default=None, help="also compare payouts under this budget")
    p.add_argument("--rule", choices=RULES[:2], default=DEFAULT_RULE)
    p.add_argument("--currency-cents", action="store_true")
    p.add_argument("--html", type=Path, default=None, metavar="OUT.html")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_compare)


def _refused(exc: ReportRefused) -> int:
    print(f"vattr: error: {exc}", file=sys.stderr)
    return EXIT_REFUSED


def _pricing_inputs(
    args: argparse.Namespace, loaded: LoadedReport
) -> tuple[int, str, Any, tuple[int, ...]]:
    budget = parse_budget(args.budget, in_cents=args.currency_cents)
    rule = args.rule or ("weights" if args.weights is not None else DEFAULT_RULE)
    weights = parse_weights(args.weights) if args.weights is not None else None
    outputs = parse_outputs(args.output, loaded)
    return budget, rule, weights, outputs


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from exc


def cmd_price(args: argparse.Namespace) -> int:
    try:
        loaded = open_report(args.report, force=args.force)
    except ReportRefused as exc:
        return _refused(exc)
    budget, rule, weights, outputs = _pricing_inputs(args, loaded)
    _, doc = price_report(loaded, budget, rule, weights, outputs, args.currency_cents)
    if args.json:
        print(json.dumps(doc))
    elif args.csv is not None:
        _write(args.csv, payouts_csv(doc))
        if doc.get("warning"):
            print(doc["warning"], file=sys.stderr)
        print(
            f"wrote {args.csv}: {len(doc['payouts'])} contributors, paid "
            f"{doc['total_paid_cents']} cents of {doc['budget_cents']}"
        )
    else:
        print(payouts_text(doc))
    return EXIT_OK


def cmd_receipt(args: argparse.Namespace) -> int:
    from verifier.pricing.receipts import disclosure, make_receipt, receipt_bytes, verify_receipt

    target = args.target
    if target[0] == "verify" and len(target) == 2:
        try:
            data = Path(target[1]).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read receipt {target[1]}: {exc}") from exc
        res = verify_receipt(data, args.report)
        if args.json:
            print(json.dumps({"ok": res.ok, "problems": res.problems, "facts": res.facts}))
        else:
            for problem in res.problems:
                print(f"FAIL {problem}")
            if res.ok:
                f = res.facts
                print(
                    f"VALID receipt: contributor {f['contributor']} of task {f['task']}, "
                    f"outputs {f['outputs']}, values {f['values']}; verdict {f['verdict']} "
                    f"signed by Verifier key {f['verifier_fingerprint'][:16]}... over the "
                    f"certificate; root signed by Prover key {f['prover_fingerprint'][:16]}..."
                )
                if f["verdict"] != "ACCEPT":
                    print(
                        f"NOTE: the audit did NOT accept this attribution (verdict "
                        f"{f['verdict']}): the value is committed but carries no guarantee"
                    )
                if "payout" in f:
                    pay = f["payout"]
                    how = (
                        "re-priced from the report"
                        if pay["authenticated"]
                        else "consistent with the opened values; its normaliser is NOT "
                        "authenticated by the receipt (use --report)"
                    )
                    print(f"payout {pay['payout']} of {pay['budget']} ({pay['rule']}): {how}")
            else:
                print(f"INVALID receipt: {len(res.problems)} problem(s)")
        return EXIT_OK if res.ok else EXIT_REFUSED
    if len(target) != 1:
        raise UsageError(
            "usage: vattr receipt REPORT --contributor I --out FILE, or vattr receipt verify FILE"
        )
    if args.contributor is None or args.out is None:
        raise UsageError("vattr receipt REPORT needs --contributor I and --out FILE")
    if args.budget is None and (args.rule or args.weights):
        raise UsageError("--rule/--weights need --budget")
    try:
        loaded = open_report(Path(target[0]), force=args.force)
    except ReportRefused as exc:
        return _refused(exc)
    requested = parse_outputs(args.output, loaded)
    outputs = tuple(sorted(requested))
    pricing: Pricing | None = None
    if args.budget is not None:
        budget, rule, weights, _ = _pricing_inputs(args, loaded)
        if weights is not None and outputs != tuple(requested):
            raise UsageError("with --weights give --output in ascending order")
        pricing = compute_payouts(loaded.attribution, outputs, budget, rule, weights)
    receipt = make_receipt(loaded, args.contributor, outputs, pricing, args.currency_cents)
    data = receipt_bytes(receipt)
    check = verify_receipt(data)
    if not check.ok:  # pragma: no cover - a receipt we make always verifies
        raise RuntimeError(f"fresh receipt does not verify: {check.problems}")
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc}") from exc
    if loaded.warning:
        print(loaded.warning, file=sys.stderr)
    print(
        f"wrote {args.out} ({len(data)} bytes): contributor {args.contributor}, outputs "
        f"{list(outputs)}, values {check.facts['values']}"
        + (f", payout {check.facts['payout']['payout']}" if pricing is not None else "")
    )
    for line in disclosure(receipt):
        print(f"discloses: {line}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from verifier.render.html_report import render_report

    try:
        loaded = open_report(args.report, force=args.force, need_accept=args.budget is not None)
    except ReportRefused as exc:
        return _refused(exc)
    doc = pricing = None
    if args.budget is not None:
        budget, rule, weights, outputs = _pricing_inputs(args, loaded)
        pricing, doc = price_report(loaded, budget, rule, weights, outputs, args.currency_cents)
    elif args.rule or args.weights:
        raise UsageError("--rule/--weights need --budget")
    _write(args.html, render_report(loaded, doc, pricing))
    print(f"wrote {args.html} ({loaded.verdict})")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from verifier.pricing.compare import compare_html, compare_reports, compare_text

    try:
        a = open_report(args.report_a, need_accept=False)
        b = open_report(args.report_b, need_accept=False)
    except ReportRefused as exc:
        return _refused(exc)
    budget = (
        None if args.budget is None else parse_budget(args.budget, in_cents=args.currency_cents)
    )
    doc = compare_reports(a, b, budget, args.rule, args.currency_cents)
    if args.html is not None:
        _write(args.html, compare_html(doc, a, b))
    if args.json:
        print(json.dumps(doc))
    else:
        print(compare_text(doc))
        if args.html is not None:
            print(f"wrote {args.html}")
    return EXIT_OK

"""Pricing a checked audit (verifier/pricing.py, receipts.py, html_report.py, compare.py)
and the ``vattr price / receipt / report / compare`` commands.

Reports come from real, deterministic loopback audits (fixed keys, secrets and nonce) of
a 100-point synthetic task: honest at eps = 0.2 is ACCEPT, the negated attribution
(scale:-1) at eps = 0.1 is REJECT (mse_gap). About a second for both.
"""

from __future__ import annotations

import base64
import json
import math
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attribution.errors import UsageError
from attribution.execution import SerialExecutor
from attribution.protocol.common import task_info
from attribution.protocol.planner import plan_run
from attribution.protocol.verifier import VerifierSecrets
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask
from prover.server import start_server
from vattr.cli import main
from vattr.redteam.provers import red_team_prover
from vattr.simulate import run_keys
from verifier.audit import run_audit
from verifier.client import ProverClient
from verifier.pricing.payouts import (
    compute_payouts,
    format_money,
    largest_remainder,
    money_guarantee,
    open_report,
    parse_budget,
    parse_weights,
)
from verifier.pricing.receipts import payout_digest, receipt_bytes, verify_receipt
from verifier.reports.report import write_audit_report

N_POINTS = 100
KINDS = {"accept": ("honest", 0.2, "ACCEPT", 3), "reject": ("scale:-1", 0.1, "REJECT", 4)}


def _audit(out: Path, name: str) -> Path:
    strategy, epsilon, expected, seed = KINDS[name]
    task = load_task(resolve_spec("synthetic", [f"data.synthetic.n={N_POINTS}"]))
    assert isinstance(task, OracleTask)
    keys = run_keys(seed=seed, run=0)
    served, factory = red_team_prover(task, "exact", None, strategy)
    running = start_server(
        served,
        keys.prover_key,
        SerialExecutor(),
        out / f"{name}-store",
        nonce_source=lambda: keys.nonce,
        servicer_factory=factory,
    )
    try:
        plan = plan_run(task_info(task), epsilon, 0.05, hint=task.oracle.exact().B_ge2)
        with ProverClient(f"127.0.0.1:{running.port}") as client:
            client.wait_ready()
            res = run_audit(
                client,
                task,
                plan,
                keys.verifier_key,
                out / f"{name}-verifier",
                executor="serial",
                quiet=True,
                secrets=VerifierSecrets.derive(keys.master),
            )
    finally:
        running.stop(0)
    assert res.outcome.verdict == expected
    path = write_audit_report(out / f"{name}.json", res, task.spec.name)
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pricing-reports")
    return {name: _audit(out, name) for name in KINDS}


def _copy(report: Path, dest: Path) -> Path:
    for src in (report, report.with_name(report.stem + ".values.npz")):
        shutil.copy(src, dest / src.name)
    return dest / report.name


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- rounding ---------------------------------------------------------------------------
def _reference(u: list[Fraction], budget: int) -> list[int]:
    """Independent largest-remainder rounding with Fractions."""
    total = sum(u)
    exact = [budget * x / total for x in u]
    floors = [math.floor(x) for x in exact]
    order = sorted(range(len(u)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[: budget - sum(floors)]:
        floors[i] += 1
    return floors


def test_largest_remainder_ties_go_to_the_smaller_index() -> None:
    assert largest_remainder([1, 1, 1], 3, 1) == [1, 0, 0]
    assert largest_remainder([2, 2, 2], 3, 2) == [1, 1, 0]
    assert largest_remainder([100, 100, 100], 3, 100) == [34, 33, 33]
    A = np.array([[5.0, 1.0, 1.0, 1.0]])  # three equal contributors
    for budget, want in ((1, [1, 0, 0]), (2, [1, 1, 0]), (100, [34, 33, 33])):
        assert compute_payouts(A, (0,), budget).cents == want
    with pytest.raises(ValueError, match="sum"):
        largest_remainder([1, 1], 3, 1)


@pytest.mark.parametrize("rule", ["proportional-positive", "proportional", "weights"])
def test_payouts_sum_exactly_to_the_budget(rule: str) -> None:
    rng = np.random.default_rng(7)
    budgets = [0, 1, 2, 3, 7, 99, 100, 101, 9_999, 123_457, 10**12 + 7, 10**20 + 3]
    mats = [
        rng.normal(size=(3, 41)),
        rng.normal(size=(3, 41)) * 10.0 ** rng.integers(-300, 300, size=(3, 41)),
        np.array(
            [
                [0.0, 0.1, 0.2, 0.3, 5e-324, 1e300, -1e300],
                [1.0, 0.3, 0.2, 0.1, 1.0, 1.0, 1.0],
                [0.0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1e-300, 0.0],
            ]
        ),
        np.full((3, 12), 1 / 3),  # all tied
    ]
    for A in mats:
        outputs = (0, 2) if rule != "weights" else (0, 1, 2)
        weights = parse_weights("1,0.5,0") if rule == "weights" else None
        if rule == "weights" and not (A[0, 1:] > 0).any():
            continue
        for budget in budgets:
            p = compute_payouts(A, outputs, budget, rule, weights)
            assert sum(p.cents) == budget
            assert all(c >= 0 for c in p.cents)
            for i, c in enumerate(p.cents):
                assert abs(c - p.exact_cents(i)) < 1
                if p.shares[i] == 0:
                    assert c == 0
            if rule != "weights":
                s = [
                    sum((Fraction(float(A[o, 1 + i])) for o in outputs), Fraction(0))
                    for i in range(A.shape[1] - 1)
                ]
                u = [max(x, Fraction(0)) if rule == "proportional-positive" else abs(x) for x in s]
                assert p.cents == _reference(u, budget)


def test_the_weights_rule_splits_the_budget_by_output() -> None:
    A = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    p = compute_payouts(A, (0, 1), 1000, "weights", parse_weights("3,1"))
    assert p.cents == [750, 125, 125]
    assert compute_payouts(A, (0,), 1000).cents == [1000, 0, 0]
    with pytest.raises(UsageError, match=r"one per|priced output"):
        compute_payouts(A, (0, 1), 1000, "weights", parse_weights("1"))
    with pytest.raises(UsageError, match="positive"):
        compute_payouts(-np.abs(A), (0,), 100)
    with pytest.raises(UsageError):
        parse_weights("1,-1")


def test_budget_parsing_is_exact() -> None:
    assert parse_budget("1234.5") == 123450
    assert parse_budget("0.07") == 7
    assert parse_budget("12345", in_cents=True) == 12345
    assert format_money(123450) == "1234.50"
    assert format_money(7) == "0.07"
    for bad in ("1.001", "-1", "nan", "inf", "abc"):
        with pytest.raises(UsageError):
            parse_budget(bad)
    with pytest.raises(UsageError):
        parse_budget("12.5", in_cents=True)


def test_money_bounds_hold_on_random_deviations() -> None:
    """The fixed-rate bound is exact; the renormalised bound holds whenever it is finite;
    ||I - q 1^T||_2 = sqrt(N sum q^2)."""
    rng = np.random.default_rng(3)
    n, eps, p_ = 30, 0.04, 0.3
    sigma = math.sqrt(4 * p_ * (1 - p_))
    radius = math.sqrt(eps) / sigma
    for _ in range(200):
        theta = np.abs(rng.normal(size=n)) * rng.uniform(0.5, 3)
        d = rng.normal(size=n)
        d *= radius * rng.uniform(0, 1) / np.linalg.norm(d)
        a = theta + d  # certified; theta is the optimum
        A = np.concatenate([[0.0], a])[None, :]
        pr = compute_payouts(A, (0,), 10**8)
        g = money_guarantee(pr, eps, 0.05, p_, in_cents=True)
        u, v = np.maximum(a, 0), np.maximum(theta, 0)
        fixed = 10**8 * (u - v) / u.sum()
        assert np.linalg.norm(fixed) <= g["fixed_rate"]["payout_l2"] * (1 + 1e-12)
        renorm = 10**8 * (u / u.sum() - v / v.sum())
        if not g["renormalised"]["vacuous"]:
            assert np.linalg.norm(renorm) <= g["renormalised"]["payout_l2"] * (1 + 1e-12)
            assert np.abs(renorm).max() <= g["renormalised"]["single_contributor_max"] * (1 + 1e-12)
        q = u / u.sum()
        op = np.linalg.norm(np.eye(n) - np.outer(q, np.ones(n)), 2)
        assert op == pytest.approx(math.sqrt(n * float(q @ q)), rel=1e-9)


# -- vattr price ------------------------------------------------------------------------
def test_price_accept_json_sums_to_budget(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for budget in ("0.01", "1", "333.33", "1000000"):
        code, out, _ = _run(capsys, "price", str(reports["accept"]), "--budget", budget, "--json")
        assert code == 0
        doc = json.loads(out)
        assert "warning" not in doc
        assert sum(r["payout_cents"] for r in doc["payouts"]) == parse_budget(budget)
        assert len(doc["payouts"]) == N_POINTS
        g = doc["guarantee"]
        assert g["holds"]
        assert g["attribution_l2_radius"] == pytest.approx(math.sqrt(0.2))
        assert "aggregate, not per contributor" in g["statement"]
    code, out, _ = _run(
        capsys,
        "price",
        str(reports["accept"]),
        "--budget",
        "500",
        "--currency-cents",
        "--rule",
        "proportional",
    )
    assert code == 0
    assert "budget 500 cents" in out


def test_price_refuses_reject_unless_forced(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _run(capsys, "price", str(reports["reject"]), "--budget", "100")
    assert code == 1
    assert out == ""
    assert "REJECT" in err
    assert "--force" in err
    code, out, _ = _run(
        capsys, "price", str(reports["reject"]), "--budget", "100", "--force", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["warning"].startswith("WARNING")
    assert "REJECT" in doc["warning"]
    assert doc["guarantee"]["holds"] is False
    csv_path = tmp_path / "p.csv"
    code, _, _ = _run(
        capsys,
        "price",
        str(reports["reject"]),
        "--budget",
        "100",
        "--force",
        "--csv",
        str(csv_path),
    )
    assert code == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("# WARNING")
    assert "REJECT" in lines[0]
    rows = [ln for ln in lines if not ln.startswith("#")][1:]
    assert sum(round(float(r.split(",")[-1]) * 100) for r in rows) == 10000


def test_price_refuses_a_report_that_fails_the_check(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _copy(reports["accept"], tmp_path)
    doc = json.loads(path.read_text())
    doc["certificate"]["params"]["epsilon"] = 0.9
    path.write_text(json.dumps(doc))
    code, out, err = _run(capsys, "price", str(path), "--budget", "100")
    assert code == 1
    assert out == ""
    assert "certificate.params.epsilon" in err
    code, _, err = _run(capsys, "price", str(reports["accept"]), "--budget", "1.005")
    assert code == 2
    code, _, err = _run(capsys, "price", str(reports["accept"]), "--budget", "1", "--output", "7")
    assert code == 2
    assert "not verified" in err


# -- receipts ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receipt(reports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("receipt") / "r.json"
    assert (
        main(
            [
                "receipt",
                str(reports["accept"]),
                "--contributor",
                "17",
                "--out",
                str(out),
                "--budget",
                "1000",
            ]
        )
        == 0
    )
    return out


def test_receipt_verifies_with_no_other_data(
    receipt: Path, reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "receipt", "verify", str(receipt))
    assert code == 0
    assert "VALID" in out
    assert "NOT authenticated" in out
    code, out, _ = _run(
        capsys, "receipt", "verify", str(receipt), "--report", str(reports["accept"]), "--json"
    )
    doc = json.loads(out)
    assert code == 0
    assert doc["ok"]
    assert doc["facts"]["payout"]["authenticated"]
    price = json.loads(
        _run(capsys, "price", str(reports["accept"]), "--budget", "1000", "--json")[1]
    )
    assert doc["facts"]["payout"]["payout"] == price["payouts"][17]["payout"]
    assert doc["facts"]["values"]["0"] == price["payouts"][17]["score"]
    r = json.loads(receipt.read_bytes())
    assert r["values"][0]["element"] == 1 + 17
    assert len(base64.b64decode(r["values"][0]["chunk"])) == 8 * (N_POINTS + 1)


def test_every_single_byte_change_breaks_the_receipt(receipt: Path) -> None:
    data = receipt.read_bytes()
    assert verify_receipt(data).ok
    rng = random.Random(5)
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, data[i] ^ 0x20, rng.randrange(256)} - {data[i]}:
            bad = bytearray(data)
            bad[i] = new
            res = verify_receipt(bytes(bad))  # never raises
            assert not res.ok, (i, new, data[max(0, i - 20) : i + 20])
            assert res.problems
    assert not verify_receipt(data[:-1]).ok
    assert not verify_receipt(data + b"\n").ok


def test_receipt_with_wrong_types_fails_cleanly(receipt: Path) -> None:
    """Any field replaced by a value of another JSON type: a clean failure, never a raise."""
    base = json.loads(receipt.read_bytes())
    fillers: list[Any] = [None, True, -1, 1.5, "", "ab" * 32, [], {}, [1], 10**30, 2**64]

    def paths(o: Any, p: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        if p:
            yield p
        if isinstance(o, dict):
            for k, v in o.items():
                yield from paths(v, (*p, k))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                yield from paths(v, (*p, i))

    rng = random.Random(11)
    all_paths = list(paths(base))
    for _ in range(400):
        r = json.loads(json.dumps(base))
        path = rng.choice(all_paths)
        cur = r
        for k in path[:-1]:
            cur = cur[k]
        old = cur[path[-1]]
        new = rng.choice(fillers)
        if new == old and type(new) is type(old):
            continue
        cur[path[-1]] = new
        res = verify_receipt(receipt_bytes(r))
        assert not res.ok, path


def test_receipt_cryptographic_checks_name_the_failure(receipt: Path) -> None:
    base = json.loads(receipt.read_bytes())

    def check(mutate: Callable[[dict[str, Any]], None], expect: str) -> None:
        r = json.loads(json.dumps(base))
        mutate(r)
        if "payout" in r:
            r["payout"]["sha256"] = payout_digest(r, r["payout"])
        res = verify_receipt(receipt_bytes(r))
        assert not res.ok
        assert any(expect in p for p in res.problems), res.problems

    def bump_value(r: dict[str, Any]) -> None:
        r["values"][0]["value"] = r["values"][0]["value"] + 1e-9

    def other_leaf(r: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(r["values"][0]["chunk"]))
        raw[0] ^= 1
        r["values"][0]["chunk"] = base64.b64encode(bytes(raw)).decode()

    def other_root(r: dict[str, Any]) -> None:
        r["attribution_root"] = "00" * 32

    def other_verdict(r: dict[str, Any]) -> None:
        r["verdict"] = "REJECT"

    def other_contributor(r: dict[str, Any]) -> None:
        r["contributor"] = 18

    def forge_payout(r: dict[str, Any]) -> None:
        r["payout"]["payout_cents"] += 500

    check(bump_value, "values.0.value")
    check(other_leaf, "Merkle opening")
    check(other_root, "attribution_root")
    check(other_verdict, "verdict_signature")
    check(other_contributor, "values.0.element")
    check(forge_payout, "payout.payout_cents")


def test_payout_normaliser_is_only_authenticated_by_the_report(
    receipt: Path, reports: dict[str, Path], tmp_path: Path
) -> None:
    """Halving the stated normaliser and doubling the payout, with the integrity digest
    recomputed, is consistent inside the receipt; the full report catches it."""
    r = json.loads(receipt.read_bytes())
    norm = Fraction(r["payout"]["normalisers"][0])
    r["payout"]["normalisers"] = [str(norm / 2)]
    exact = Fraction(r["payout"]["budget_cents"]) * Fraction(r["values"][0]["value"]) / (norm / 2)
    r["payout"]["payout_cents"] = math.floor(exact)
    r["payout"]["sha256"] = payout_digest(r, r["payout"])
    data = receipt_bytes(r)
    assert verify_receipt(data).ok
    res = verify_receipt(data, reports["accept"])
    assert not res.ok
    assert any("normalisers" in p for p in res.problems)


def test_receipt_cli_errors(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    code, out, _ = _run(capsys, "receipt", "verify", str(bad))
    assert code == 1
    assert "INVALID" in out
    code, _, err = _run(
        capsys,
        "receipt",
        str(reports["reject"]),
        "--contributor",
        "1",
        "--out",
        str(tmp_path / "x.json"),
    )
    assert code == 1
    assert "REJECT" in err
    code, _, _ = _run(
        capsys,
        "receipt",
        str(reports["accept"]),
        "--contributor",
        "100",
        "--out",
        str(tmp_path / "x.json"),
    )
    assert code == 2
    code, _, _ = _run(capsys, "receipt", str(reports["accept"]), "--out", str(tmp_path / "x"))
    assert code == 2


# -- HTML -------------------------------------------------------------------------------
class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self.classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for k, v in attrs:
            self.attrs.append((tag, k, v))
            if k == "class" and v:
                self.classes.extend(v.split())


def _html(reports: dict[str, Path], tmp_path: Path, name: str, *extra: str) -> tuple[str, Path]:
    out = tmp_path / f"{name}.html"
    assert main(["report", str(reports[name]), "--html", str(out), *extra]) == 0
    return out.read_text(encoding="utf-8"), out


def _assert_self_contained(text: str, parser: _Collector) -> None:
    assert "script" not in parser.tags
    for tag, k, v in parser.attrs:
        if k in ("src", "href", "xlink:href", "action", "srcset", "data"):
            assert v is None or not v.startswith(("http:", "https:", "//")), (tag, k, v)
    assert "url(http" not in text
    assert "@import" not in text
    assert "<link" not in text


def test_html_report_structure(reports: dict[str, Path], tmp_path: Path) -> None:
    text, _ = _html(reports, tmp_path, "accept", "--budget", "1000")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    # decision, spot checks, attribution histogram, payouts
    assert parser.tags.get("svg", 0) >= 4
    assert parser.tags.get("figure", 0) >= 4
    assert parser.tags.get("svg", 0) >= parser.tags.get("figure", 0)
    assert "banner" in parser.classes
    assert "verdict-accept" in parser.classes
    assert ">ACCEPT<" in text
    assert "@media print" in text
    assert "Protocol timeline" in text
    assert "commit_attribution" in text
    assert "aggregate, not per contributor" in text
    _assert_self_contained(text, parser)

    text, _ = _html(reports, tmp_path, "reject")
    parser = _Collector()
    parser.feed(text)
    assert "verdict-reject" in parser.classes
    assert parser.tags.get("svg", 0) >= 3
    _assert_self_contained(text, parser)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no /usr/bin/chromium")
def test_html_report_renders_in_headless_chromium(reports: dict[str, Path], tmp_path: Path) -> None:
    _, path = _html(reports, tmp_path, "accept", "--budget", "1000")
    proc = subprocess.run(
        [
            "/usr/bin/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verdict-accept" in proc.stdout
    assert "<svg" in proc.stdout
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console


# -- compare ----------------------------------------------------------------------------
def test_compare_honest_and_negated(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_html = tmp_path / "cmp.html"
    code, out, _ = _run(
        capsys,
        "compare",
        str(reports["accept"]),
        str(reports["reject"]),
        "--budget",
        "100",
        "--json",
        "--html",
        str(out_html),
    )
    assert code == 0
    doc = json.loads(out)
    (row,) = doc["outputs"]
    assert row["slope_b_on_a"] == pytest.approx(-1.0)
    assert row["pearson"] == pytest.approx(-1.0)
    assert row["max_abs_diff"] > 0
    assert row["median_abs_diff"] > 0
    assert doc["payouts"]["changed_contributors"] > 0
    assert sum(doc["payouts"]["cents_a"]) == sum(doc["payouts"]["cents_b"]) == 10000
    text = out_html.read_text()
    parser = _Collector()
    parser.feed(text)
    assert parser.tags.get("svg", 0) >= 2
    _assert_self_contained(text, parser)
    code, out, _ = _run(capsys, "compare", str(reports["accept"]), str(reports["accept"]))
    assert code == 0
    assert "pearson 1" in out


def test_open_report_policy(reports: dict[str, Path]) -> None:
    loaded = open_report(reports["reject"], force=True)
    assert loaded.warning is not None
    assert "REJECT" in loaded.warning
    assert open_report(reports["accept"]).warning is None

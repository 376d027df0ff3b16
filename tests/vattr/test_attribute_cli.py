"""``vattr attribute`` / ``vattr evaluate`` on breast_cancer-logreg with small budgets: the
file format, the LDS ordering exact IF > random, the other metrics, and one-line usage
errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vattr.cli import main

TASK = "breast_cancer-logreg"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("attr")
    paths = {}
    for method, budget in (("if-exact", 32), ("random", 32)):
        path = root / f"{method}.npz"
        argv = ["attribute", "--task", TASK, "--method", method, "--budget", str(budget)]
        assert main([*argv, "--seed", "3", "--out", str(path), "--json"]) == 0
        paths[method] = path
    return paths


def test_attribute_file_format(files: dict[str, Path]) -> None:
    with np.load(files["if-exact"], allow_pickle=False) as z:
        A = z["attribution"]
        meta = json.loads(str(z["metadata"][()]))
    assert A.shape == (115, 456)
    assert A.dtype == np.float64
    assert meta["method"] == "if-exact"
    assert meta["convention"] == (
        "affine +-1, (outputs, 1+N), positive = including raises the output"
    )
    assert (meta["n_points"], meta["n_outputs"]) == (455, 115)
    assert len(meta["task_digest"]) == 64
    assert (meta["fit_seed"], meta["fit_runs"]) == (3, 32)
    assert meta["parameters"]["removal"] == "if"
    assert len(meta["parameters"]["calibration_beta"]) == 115


def test_evaluate_lds_exact_if_beats_random(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    results = {}
    for method, path in files.items():
        argv = ["evaluate", "--task", TASK, "--attributions", str(path), "--json"]
        code, out, _ = _run([*argv, "--eval-subsets", "40", "--n-boot", "100"], capsys)
        assert code == 0
        results[method] = json.loads(out)
    for r in results.values():
        assert r["metric"] == "lds"
        assert r["digest_checked"] is True
        assert r["lds_ci"][0] <= r["lds"] <= r["lds_ci"][1]
        assert len(r["lds_per_output"]) == 115
        assert r["eval_subsets"] == 40
        assert r["eval_seed"] != 3
    assert results["if-exact"]["lds"] > 0.5
    assert abs(results["random"]["lds"]) < 0.15
    assert results["if-exact"]["heldout_mse"] < results["random"]["heldout_mse"]


def test_evaluate_loo_and_brittleness(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", "--task", TASK, "--attributions", str(files["if-exact"]), "--json"]
    code, out, _ = _run([*base, "--metric", "loo", "--points", "20"], capsys)
    assert code == 0
    loo = json.loads(out)
    assert loo["loo_pearson"] > 0.9
    assert loo["points"] == 20
    argv = [*base, "--metric", "brittleness", "--output", "114", "--ks", "0,10"]
    code, out, _ = _run([*argv, "--random-repeats", "2"], capsys)
    assert code == 0
    br = json.loads(out)
    assert br["ks"] == [0, 10]
    assert br["output_name"] == "mean"
    assert br["top_effect"][1] < br["random_effect_mean"][1]  # removing supporters hurts more


def test_refuses_to_overwrite(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = files["random"]
    before = path.read_bytes()
    argv = ["attribute", "--task", TASK, "--method", "random", "--budget", "8", "--out", str(path)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert "exists (use --force" in err
    assert path.read_bytes() == before
    copy = path.with_name("copy.npz")
    copy.write_bytes(before)
    code, _, _ = _run([*argv[:-1], str(copy), "--force", "--seed", "9"], capsys)
    assert code == 0
    assert copy.read_bytes() != before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attribute", "--method", "nope"], "unknown method 'nope'"),
        (["attribute", "--method", "exact"], "needs the synthetic task"),
        (["attribute", "--method", "datamodel", "--budget", "50"], "needs --budget >= 457"),
        (["evaluate", "--attributions", "MISSING"], "no such file"),
        (["evaluate", "--attributions", "FILE", "--set", "training.l2=2.0"], "was computed for"),
        (["evaluate", "--attributions", "FILE", "--eval-seed", "3"], "equals the fitting seed"),
        (["evaluate", "--attributions", "FILE", "--metric", "auc"], "needs --mislabeled"),
        (["evaluate", "--attributions", "FILE", "--metric", "f1"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_one_line(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    argv = [
        str(files["if-exact"])
        if a == "FILE"
        else str(tmp_path / "missing.npz")
        if a == "MISSING"
        else a
        for a in argv
    ]
    out = tmp_path / "out.npz"
    extra = ["--out", str(out)] if argv[0] == "attribute" else ["--json"]
    code, stdout, err = _run([argv[0], "--task", TASK, *argv[1:], *extra], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert stdout == ""
    assert not out.exists()


def test_convex_method_needs_convex_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.npz"
    argv = ["attribute", "--task", "synthetic", "--method", "rif", "--out", str(out)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert "needs a convex task" in err
    assert not out.exists()


def test_evaluate_auc_and_bare_npy(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flipped = tmp_path / "flipped.npy"
    np.save(flipped, np.arange(0, 455, 10))
    base = ["evaluate", "--task", TASK, "--json"]
    argv = [*base, "--attributions", str(files["if-exact"]), "--metric", "auc"]
    code, out, _ = _run([*argv, "--mislabeled", str(flipped)], capsys)
    assert code == 0
    auc = json.loads(out)
    assert auc["n_mislabeled"] == 46
    assert 0.0 <= auc["auc"] <= 1.0
    bare = tmp_path / "bare.npy"
    with np.load(files["if-exact"], allow_pickle=False) as z:
        np.save(bare, z["attribution"])
    argv = [*base, "--attributions", str(bare), "--eval-subsets", "10", "--n-boot", "0"]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    res = json.loads(out)
    assert res["digest_checked"] is False
    assert res["lds_ci"] == [None, None]

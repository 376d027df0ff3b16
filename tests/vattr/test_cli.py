"""The vattr command line: listings, one-line errors with exit code 2 and nothing
written, retrain/bench JSON, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vattr.cli import main


def test_tasks_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert rows["breast_cancer-logreg"]["n_points"] == 455
    assert rows["synthetic"]["n_outputs"] == 1
    assert all(len(r["digest"]) == 64 for r in rows.values())


def test_tasks_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "--show", "synthetic"]) == 0
    assert 'trainer = "oracle"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "breast_cancer-logreg", "--p", "1.5"], "p must lie in"),
        (["--task", "breast_cancer-logreg", "--p", "0"], "p must lie in"),
        (["--task", "breast_cancer-logreg", "--count", "0"], "--count must be"),
        (["--task", "synthetic", "--set", "data.synthetic.n=-5"], "n"),
        (["--task", "breast_cancer-logreg", "--executor", "cluster"], "invalid choice"),
    ],
)
def test_bad_input_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    store = tmp_path / "store"
    argv = ["retrain", *args, "--store", str(store)]
    if "--count" not in args:
        argv += ["--count", "4"]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_malformed_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("name = [unclosed\n")
    assert (
        main(["retrain", "--task", str(spec), "--count", "2", "--store", str(tmp_path / "s")]) == 2
    )
    assert "malformed TOML" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_store_from_other_task_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    assert (
        main(
            [
                "retrain",
                "--task",
                "synthetic",
                "--count",
                "8",
                "--store",
                str(store),
                "--executor",
                "serial",
                "--json",
            ]
        )
        == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert first["trained"] == 8
    before = (store / "outputs.npy").read_bytes()
    assert (
        main(
            [
                "retrain",
                "--task",
                "breast_cancer-logreg",
                "--count",
                "8",
                "--store",
                str(store),
                "--executor",
                "serial",
            ]
        )
        == 2
    )
    assert "belongs to task 'synthetic'" in capsys.readouterr().err
    assert (store / "outputs.npy").read_bytes() == before


def test_bench_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", "retrain", "--task", "breast_cancer-logreg", "--models", "16", "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    for key in ("batched_models_per_s", "reference_models_per_s", "speedup", "max_abs_diff"):
        assert key in result
    assert result["max_abs_diff"] <= 1e-6


def test_an_internal_error_is_one_line_and_exit_5(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug of ours never exits 1 (REJECT): one line, exit 5, traceback behind --debug.
    (The fault is injected into a command handler: no input makes vattr crash on purpose.)"""
    import vattr.cli

    def crash(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(vattr.cli, "cmd_tasks", crash)
    assert main(["tasks"]) == 5
    err = capsys.readouterr().err
    assert err.strip() == (
        "vattr: internal error: RuntimeError: boom (rerun with --debug for the traceback)"
    )
    assert main(["--debug", "tasks"]) == 5
    assert "Traceback" in capsys.readouterr().err

"""The statsmodels:randhie source (RAND Health Insurance Experiment) and its built-in task
randhie-logreg: the rows and columns read, the pinned digest, a fit checked against
scikit-learn, and the error without the optional statsmodels package."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from attribution.data.loaders import REALDATA_HINT, STATSMODELS_SETS, load_source
from attribution.errors import UsageError
from attribution.tasks import builtin_names, load_task, resolve_spec
from attribution.tasks.runtime import ConvexTask
from attribution.training.reference import sklearn_outputs
from tests.helpers import random_subsets

FEATURES = ("lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg", "hlthf", "hlthp")


def _randhie_task() -> ConvexTask:
    task = load_task(resolve_spec("randhie-logreg"))
    assert isinstance(task, ConvexTask)
    return task


def test_loader_rows_columns_and_binary_target() -> None:
    pytest.importorskip("statsmodels")
    from statsmodels.datasets import randhie

    assert STATSMODELS_SETS["randhie"] == ("mdvis", FEATURES)
    raw = load_source("statsmodels:randhie")
    assert raw.X.shape == (20190, len(FEATURES))
    assert set(np.unique(raw.y).tolist()) == {0.0, 1.0}
    # the same numbers as statsmodels' own loader, target mdvis > 0
    frame = randhie.load_pandas().data
    assert np.array_equal(raw.X, frame[list(FEATURES)].to_numpy(dtype=np.float64))
    assert np.array_equal(raw.y, (frame["mdvis"].to_numpy() > 0).astype(np.float64))
    assert int(raw.y.sum()) == 13882


def test_task_loads_with_its_digest_checked() -> None:
    pytest.importorskip("statsmodels")
    assert "randhie-logreg" in builtin_names()
    spec = resolve_spec("randhie-logreg")
    task = _randhie_task()
    assert spec.data.digest is not None
    assert task.data_digest == spec.data.digest
    assert task.n_points >= 15_000
    assert (task.n_points, task.n_outputs) == (19988, 203)
    assert task.output_names[-1] == "mean"
    bad = ["data.digest=sha256:" + "0" * 64]
    with pytest.raises(UsageError, match="data digest mismatch"):
        load_task(resolve_spec("randhie-logreg", bad))


def test_subset_fit_matches_sklearn() -> None:
    """Convention A: LogisticRegression(C=1/l2) on the included points, as for the other
    convex trainers (tests/attribution/training/test_convex_trainers.py)."""
    pytest.importorskip("statsmodels")
    task = _randhie_task()
    masks, seeds = random_subsets(task.n_points, 2, p=0.5, seed=3)
    batched = task.train_batch(masks, seeds)
    reference = np.stack([sklearn_outputs(task, m) for m in masks])
    assert np.abs(batched - reference).max() <= 1e-6
    # the bound clips no mean margin
    assert np.abs(batched[:, -1]).max() < task.bound / 2


def test_missing_statsmodels_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # makes `import statsmodels` fail
    with pytest.raises(UsageError, match="needs the statsmodels package") as info:
        load_source("statsmodels:randhie")
    assert REALDATA_HINT in str(info.value)
    assert "verifiable-attribution[realdata]" in REALDATA_HINT
    with pytest.raises(UsageError, match=r"realdata"):
        load_task(resolve_spec("randhie-logreg"))


def test_unknown_statsmodels_set() -> None:
    with pytest.raises(UsageError, match="unknown statsmodels data set 'nope'"):
        load_source("statsmodels:nope")


def test_task_listing_survives_a_missing_statsmodels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vattr tasks` lists the other tasks and names the one it cannot load."""
    import json

    from vattr.cli import main

    monkeypatch.setitem(sys.modules, "statsmodels", None)
    assert main(["tasks", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert "breast_cancer-logreg" in [t["name"] for t in listing["tasks"]]
    (missing,) = listing["unavailable"]
    assert missing["name"] == "randhie-logreg"
    assert "realdata" in missing["unavailable"]

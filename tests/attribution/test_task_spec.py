"""Task specs: built-ins, digests, and one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.errors import UsageError
from attribution.tasks import builtin_names, load_task, resolve_spec
from attribution.tasks.registry import BUILTIN_DIR, apply_overrides
from attribution.tasks.spec import load_spec_file, parse_spec


def test_builtins_listed() -> None:
    assert {"synthetic", "breast_cancer-logreg", "digits-logreg", "digits-mlp"} <= set(
        builtin_names()
    )


def test_breast_cancer_shape_and_golden_digest() -> None:
    task = load_task(resolve_spec("breast_cancer-logreg"))
    assert (task.n_points, task.n_outputs) == (455, 115)
    assert task.output_names[-1] == "mean"
    # Golden: changing the spec schema, the split or the data changes this digest.
    assert task.digest.hex() == ("03a0c3fe8367860a9f6e2818b1525a98bc0c3c4905588a21a1b3ed10cb006a55")


def test_digest_covers_spec_fields() -> None:
    base = load_task(resolve_spec("breast_cancer-logreg")).digest
    assert load_task(resolve_spec("breast_cancer-logreg", p=0.3)).digest != base
    assert load_task(resolve_spec("breast_cancer-logreg", ["training.l2=2.0"])).digest != base


def test_digest_covers_data(tmp_path: Path) -> None:
    text = (BUILTIN_DIR / "breast_cancer-logreg.toml").read_text()
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    np.savez(tmp_path / "bc.npz", X=d.data, y=d.target)
    spec_path = tmp_path / "bc.toml"
    spec_path.write_text(text.replace('"sklearn:breast_cancer"', '"npz:bc.npz"'))
    # same numbers from another file format: same data digest, accepted
    task = load_task(load_spec_file(spec_path))
    assert task.data_digest == load_task(resolve_spec("breast_cancer-logreg")).data_digest
    X = d.data.copy()
    X[0, 0] += 1e-9
    np.savez(tmp_path / "bc.npz", X=X, y=d.target)
    with pytest.raises(UsageError, match="data digest mismatch"):
        load_task(load_spec_file(spec_path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "malformed TOML"),
        ('name = "x"\n[data]\nsource = "sklearn:iris"\n', "missing section \\[training\\]"),
        ('name = "x"\nbogus = 1\n', "unknown top-level key"),
        (
            'name="x"\n[data]\nsource="sklearn:iris"\n[training]\ntrainer="logistic"\n'
            '[output]\nkind="margin"\n[sampling]\np=1.5\n',
            "sampling.p must lie in",
        ),
        (
            'name="x"\n[data]\nsource="sklearn:iris"\n[training]\ntrainer="magic"\n'
            '[output]\nkind="margin"\n',
            "trainer must be one of",
        ),
        (
            'name="x"\n[data]\nsource="sklearn:iris"\n[training]\ntrainer="logistic"\n'
            'l2="big"\n[output]\nkind="margin"\n',
            "l2 must be of type float",
        ),
        (
            'name="x"\n[data]\nsource="sklearn:iris"\n[training]\ntrainer="logistic"\n'
            '[output]\nkind="margin"\ncolour=1\n',
            "unknown key",
        ),
        (
            'name="x"\n[data]\nsource="sklearn:iris"\n[training]\ntrainer="logistic"\n'
            '[output]\nkind="margin"\n[equivalence]\nmode="atol"\n',
            "atol must be > 0",
        ),
    ],
)
def test_bad_specs(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_spec(text)


def test_unknown_task_and_missing_file() -> None:
    with pytest.raises(UsageError, match="unknown task 'nope'"):
        resolve_spec("nope")
    with pytest.raises(UsageError, match="not found"):
        resolve_spec("/nonexistent/spec.toml")


def test_overrides() -> None:
    raw = apply_overrides({"a": {"b": 1}}, ["a.b=2.5", "a.c=word", "d.e=[1, 2]"])
    assert raw == {"a": {"b": 2.5, "c": "word"}, "d": {"e": [1, 2]}}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_logistic_needs_binary_labels() -> None:
    from tests.helpers import convex_spec

    with pytest.raises(UsageError, match="labels in"):
        load_task(convex_spec("sklearn:iris", "logistic"))

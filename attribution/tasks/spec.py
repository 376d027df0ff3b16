"""TaskSpec: everything Prover and Verifier must agree on, parsed from TOML.

A spec fixes the data (source and content digest), the training recipe, the output
function, the sampling probability ``p`` and the equivalence check. Example::

    name = "breast_cancer-logreg"
    description = "binary L2 logistic regression on scikit-learn's breast_cancer"

    [data]
    source = "sklearn:breast_cancer"
    digest = "sha256:..."          # content digest of the raw data (checked on load)
    standardize = true             # by the training split's mean and std
    validation_fraction = 0.2
    split_seed = 0

    [training]
    trainer = "logistic"           # logistic | multinomial | ridge | mlp | oracle | "mod:func"
    l2 = 1.0                       # lambda, see below
    fit_intercept = true
    tol = 1e-10
    max_iter = 100

    [output]
    kind = "margin"                # margin | prediction | oracle | "module:function"
    mean = true                    # append the mean over validation points as a last output
    bound = 10.0                   # b: every output is clipped to [-b, b]

    [sampling]
    p = 0.5

    [equivalence]
    mode = "atol"                  # exact | atol
    atol = 1e-9

Regularisation convention ("convention A", one for all convex trainers):
``J(w) = sum_i m_i * loss_i(w) + (l2 / 2) * ||w without intercept||^2`` with ``m_i`` in
{0, 1} the subset mask. The ridge stays the same whatever the subset size. In
scikit-learn terms: ``LogisticRegression(C=1/l2)`` and ``Ridge(alpha=l2)`` fitted on the
included points (``loss_i = (y_i - x_i w)^2 / 2`` for ridge).

Unknown keys, wrong types and out-of-range values raise :class:`UsageError` naming the
field. The task digest (see :mod:`attribution.tasks.runtime`) covers the canonical JSON of
:meth:`TaskSpec.to_dict` and the data bytes.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from attribution.encoding import canonical_json as _canonical_json
from attribution.errors import UsageError

TRAINERS = ("logistic", "multinomial", "ridge", "mlp", "oracle")
OUTPUT_KINDS = ("margin", "prediction", "oracle")


def _is_plugin(ref: str) -> bool:
    module, sep, func = ref.partition(":")
    return bool(sep) and bool(module) and func.isidentifier()


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from and how they are split and scaled."""

    source: str
    digest: str | None = None
    standardize: bool = True
    validation_fraction: float = 0.2
    split_seed: int = 0
    synthetic: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSpec:
    """The training recipe. ``l2`` follows the module's regularisation convention."""

    trainer: str
    l2: float = 1.0
    fit_intercept: bool = True
    tol: float = 1e-10
    max_iter: int = 100
    dtype: str = "float64"
    hidden: tuple[int, ...] = (32,)
    steps: int = 300
    lr: float = 0.01
    optimizer: str = "adam"


@dataclass(frozen=True)
class OutputSpec:
    """The output function f: per-validation-point values, optionally their mean, clipped."""

    kind: str
    mean: bool = True
    bound: float = 1.0


@dataclass(frozen=True)
class EquivalenceSpec:
    """CHECKEQUIV: ``exact`` (bitwise) or ``atol`` (|f - f'| <= atol in every output)."""

    mode: str = "exact"
    atol: float = 0.0

    @property
    def tau(self) -> float:
        """The tolerance tau (0 in exact mode)."""
        return 0.0 if self.mode == "exact" else self.atol


@dataclass(frozen=True)
class TaskSpec:
    """A complete task definition; see the module docstring for the TOML layout."""

    name: str
    data: DataSpec
    training: TrainingSpec
    output: OutputSpec
    p: float = 0.5
    equivalence: EquivalenceSpec = field(default_factory=EquivalenceSpec)
    description: str = ""
    base_dir: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the digest input); ``base_dir`` and ``description`` excluded."""
        data = asdict(self.data)
        data.pop("digest")
        training = asdict(self.training)
        training["hidden"] = list(self.training.hidden)
        d: dict[str, Any] = {
            "name": self.name,
            "data": data,
            "training": training,
            "output": asdict(self.output),
            "sampling": {"p": self.p},
            "equivalence": asdict(self.equivalence),
        }
        return d

    def canonical_json(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, repr floats) of :meth:`to_dict`."""
        return _canonical_json(self.to_dict(), allow_nan=True)  # finite-checked on load

    def with_p(self, p: float) -> TaskSpec:
        """The same task with another sampling probability (a different task digest)."""
        check_probability(p)
        return replace(self, p=float(p))


def check_probability(p: object, name: str = "p") -> float:
    if not isinstance(p, int | float) or isinstance(p, bool) or not math.isfinite(float(p)):
        raise UsageError(f"{name} must be a number in (0, 1), got {p!r}")
    if not 0.0 < float(p) < 1.0:
        raise UsageError(f"{name} must lie in (0, 1), got {p}")
    return float(p)


_SECTIONS = {"name", "description", "data", "training", "output", "sampling", "equivalence"}


def parse_spec(text: str, *, origin: str = "<spec>", base_dir: Path | None = None) -> TaskSpec:
    """Parse TOML text into a validated :class:`TaskSpec`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{origin}: malformed TOML ({exc})") from exc
    return spec_from_dict(raw, origin=origin, base_dir=base_dir)


def load_spec_file(path: Path) -> TaskSpec:
    """Read and parse a spec file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read task spec {path}: {exc.strerror}") from exc
    return parse_spec(text, origin=str(path), base_dir=path.parent.resolve())


def spec_from_dict(
    raw: dict[str, Any], *, origin: str = "<spec>", base_dir: Path | None = None
) -> TaskSpec:
    unknown = set(raw) - _SECTIONS
    if unknown:
        raise UsageError(f"{origin}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    name = _get(raw, "name", str, origin)
    if not name:
        raise UsageError(f"{origin}: 'name' must not be empty")
    data = _section(raw, "data", origin)
    training = _section(raw, "training", origin)
    output = _section(raw, "output", origin)
    sampling = _section(raw, "sampling", origin, required=False)
    equivalence = _section(raw, "equivalence", origin, required=False)

    data_spec = DataSpec(
        source=_req(data, "source", str, f"{origin}: data"),
        digest=_opt(data, "digest", str, None, f"{origin}: data"),
        standardize=_opt(data, "standardize", bool, True, f"{origin}: data"),
        validation_fraction=_opt(data, "validation_fraction", float, 0.2, f"{origin}: data"),
        split_seed=_opt(data, "split_seed", int, 0, f"{origin}: data"),
        synthetic=_opt(data, "synthetic", dict, {}, f"{origin}: data"),
    )
    _no_extra(
        data,
        {"source", "digest", "standardize", "validation_fraction", "split_seed", "synthetic"},
        f"{origin}: [data]",
    )
    if data_spec.digest is not None and not data_spec.digest.startswith("sha256:"):
        raise UsageError(f"{origin}: data.digest must look like 'sha256:<hex>'")

    where = f"{origin}: training"
    hidden = _opt(training, "hidden", list, [32], where)
    if not all(isinstance(h, int) and h > 0 for h in hidden):
        raise UsageError(f"{where}.hidden must be a list of positive integers")
    training_spec = TrainingSpec(
        trainer=_req(training, "trainer", str, where),
        l2=_opt(training, "l2", float, 1.0, where),
        fit_intercept=_opt(training, "fit_intercept", bool, True, where),
        tol=_opt(training, "tol", float, 1e-10, where),
        max_iter=_opt(training, "max_iter", int, 100, where),
        dtype=_opt(training, "dtype", str, "float64", where),
        hidden=tuple(hidden),
        steps=_opt(training, "steps", int, 300, where),
        lr=_opt(training, "lr", float, 0.01, where),
        optimizer=_opt(training, "optimizer", str, "adam", where),
    )
    _no_extra(training, {f for f in TrainingSpec.__dataclass_fields__}, f"{origin}: [training]")
    if training_spec.trainer not in TRAINERS and not _is_plugin(training_spec.trainer):
        raise UsageError(
            f"{where}.trainer must be one of {', '.join(TRAINERS)} or 'module:function', "
            f"got {training_spec.trainer!r}"
        )
    if training_spec.l2 < 0 or training_spec.tol <= 0 or training_spec.max_iter < 1:
        raise UsageError(f"{where}: need l2 >= 0, tol > 0 and max_iter >= 1")
    if training_spec.trainer in ("logistic", "multinomial") and training_spec.l2 <= 0:
        raise UsageError(f"{where}.l2 must be > 0 for logistic trainers (unique optimum)")
    if training_spec.dtype not in ("float32", "float64"):
        raise UsageError(f"{where}.dtype must be float32 or float64")
    if training_spec.optimizer not in ("adam", "sgd"):
        raise UsageError(f"{where}.optimizer must be adam or sgd")

    where = f"{origin}: output"
    output_spec = OutputSpec(
        kind=_req(output, "kind", str, where),
        mean=_opt(output, "mean", bool, True, where),
        bound=_opt(output, "bound", float, 1.0, where),
    )
    _no_extra(output, {"kind", "mean", "bound"}, f"{origin}: [output]")
    if output_spec.kind not in OUTPUT_KINDS and not _is_plugin(output_spec.kind):
        raise UsageError(
            f"{where}.kind must be one of {', '.join(OUTPUT_KINDS)} or 'module:function', "
            f"got {output_spec.kind!r}"
        )
    if not (math.isfinite(output_spec.bound) and output_spec.bound > 0):
        raise UsageError(f"{where}.bound must be a positive number")

    p = check_probability(sampling.get("p", 0.5), f"{origin}: sampling.p")
    _no_extra(sampling, {"p"}, f"{origin}: [sampling]")

    where = f"{origin}: equivalence"
    eq = EquivalenceSpec(
        mode=_opt(equivalence, "mode", str, "exact", where),
        atol=_opt(equivalence, "atol", float, 0.0, where),
    )
    _no_extra(equivalence, {"mode", "atol"}, f"{origin}: [equivalence]")
    if eq.mode not in ("exact", "atol"):
        raise UsageError(f"{where}.mode must be 'exact' or 'atol', got {eq.mode!r}")
    if eq.mode == "atol" and not (math.isfinite(eq.atol) and eq.atol > 0):
        raise UsageError(f"{where}.atol must be > 0 in atol mode")
    return TaskSpec(
        name=name,
        description=str(raw.get("description", "")),
        data=data_spec,
        training=training_spec,
        output=output_spec,
        p=p,
        equivalence=eq,
        base_dir=base_dir,
    )


def _section(raw: dict[str, Any], key: str, origin: str, required: bool = True) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise UsageError(f"{origin}: missing section [{key}]")
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{origin}: [{key}] must be a table")
    return value


def _get(raw: dict[str, Any], key: str, typ: type, origin: str) -> Any:
    if key not in raw:
        raise UsageError(f"{origin}: missing key '{key}'")
    return _typed(raw[key], typ, f"{origin}: {key}")


def _req(section: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in section:
        raise UsageError(f"{where}.{key} is required")
    return _typed(section[key], typ, f"{where}.{key}")


def _opt(section: dict[str, Any], key: str, typ: type, default: Any, where: str) -> Any:
    if key not in section:
        return default
    return _typed(section[key], typ, f"{where}.{key}")


def _typed(value: Any, typ: type, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise UsageError(f"{where} must be an integer, got {value!r}")
    if not isinstance(value, typ):
        raise UsageError(f"{where} must be of type {typ.__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{where} must be finite, got {value!r}")
    return value


def _no_extra(section: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(section) - allowed
    if extra:
        raise UsageError(f"{where}: unknown key(s): {', '.join(sorted(extra))}")

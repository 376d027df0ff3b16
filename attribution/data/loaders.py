"""Loading tabular data sets and computing their content digest.

Sources (the ``data.source`` field of a task spec):

* ``sklearn:NAME`` -- a data set bundled with scikit-learn (``breast_cancer``, ``digits``,
  ``diabetes``, ``wine``, ``iris``); no network access.
* ``statsmodels:NAME`` -- a data set shipped as a CSV file inside the statsmodels package
  (optional: ``pip install 'verifiable-attribution[realdata]'``); no network access.
  ``randhie``: the RAND Health Insurance Experiment, 20,190 people; features the nine
  columns ``lncoins idp lpi fmde physlm disea hlthg hlthf hlthp`` in file order, target
  ``mdvis > 0`` (1 if the person had any outpatient doctor visit).
* ``npz:PATH`` -- a NumPy archive holding arrays ``X`` (n, d) and ``y`` (n,).
* ``csv:PATH`` -- comma-separated numbers, one row per point, the label in the last column.

Relative paths are resolved against the directory of the spec file.

The content digest is ``SHA-256("attribution.v1/data" || blk(X) || blk(y))`` with
``blk(A) = u64be(ndim) || u64be(shape_0) ... || A as C-contiguous little-endian float64``,
so it depends only on the numbers, not on the file format they came in.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from attribution.encoding import TAG_DATA, domain_prefix
from attribution.errors import UsageError
from attribution.subsets import xof

FloatArray = npt.NDArray[np.float64]

SKLEARN_SETS = ("breast_cancer", "digits", "diabetes", "wine", "iris")

# statsmodels data sets read from ``statsmodels/datasets/NAME/NAME.csv``: the count column
# binarised as ``target > 0`` and the feature columns, both as named in the CSV header.
STATSMODELS_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "randhie": (
        "mdvis",
        ("lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg", "hlthf", "hlthp"),
    ),
}
REALDATA_HINT = "pip install 'verifiable-attribution[realdata]'"


@dataclass(frozen=True)
class RawData:
    """Features ``X`` (n, d) float64 and targets ``y`` (n,) float64 (class ids or values)."""

    X: FloatArray
    y: FloatArray


def _array_block(a: npt.NDArray[np.float64]) -> bytes:
    arr = np.ascontiguousarray(a, dtype="<f8")
    head = struct.pack(">Q", arr.ndim) + b"".join(struct.pack(">Q", s) for s in arr.shape)
    return head + arr.tobytes()


def arrays_digest(tag: str, arrays: dict[str, npt.NDArray[np.float64]]) -> str:
    """``sha256:<hex>`` over named float64 arrays, in sorted name order."""
    h = hashlib.sha256(domain_prefix(tag, terminated=False))
    for name in sorted(arrays):
        h.update(struct.pack(">Q", len(name)) + name.encode())
        h.update(_array_block(arrays[name]))
    return "sha256:" + h.hexdigest()


def data_digest(raw: RawData) -> str:
    """Content digest of a data set (see the module docstring)."""
    h = hashlib.sha256(domain_prefix(TAG_DATA, terminated=False))
    h.update(_array_block(raw.X))
    h.update(_array_block(raw.y))
    return "sha256:" + h.hexdigest()


def load_source(source: str, base_dir: Path | None = None) -> RawData:
    """Load ``source`` (see the module docstring); raises :class:`UsageError` on bad input."""
    kind, _, rest = source.partition(":")
    if kind == "sklearn":
        return _load_sklearn(rest)
    if kind == "statsmodels":
        return _load_statsmodels(rest)
    if kind in ("npz", "csv"):
        path = Path(rest)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise UsageError(f"data file not found: {path}")
        return _load_npz(path) if kind == "npz" else _load_csv(path)
    raise UsageError(
        f"unknown data source {source!r}: use sklearn:NAME, statsmodels:NAME, npz:PATH, "
        "csv:PATH or synthetic"
    )


def _load_sklearn(name: str) -> RawData:
    from sklearn import datasets

    if name not in SKLEARN_SETS:
        raise UsageError(
            f"unknown scikit-learn data set {name!r}; known: {', '.join(SKLEARN_SETS)}"
        )
    loader = getattr(datasets, f"load_{name}")
    bunch = loader()
    return _checked(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target), name)


def _load_statsmodels(name: str) -> RawData:
    if name not in STATSMODELS_SETS:
        raise UsageError(
            f"unknown statsmodels data set {name!r}; known: {', '.join(STATSMODELS_SETS)}"
        )
    try:
        import statsmodels  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise UsageError(
            f"data source statsmodels:{name} needs the statsmodels package: {REALDATA_HINT}"
        ) from exc
    path = Path(statsmodels.__file__).parent / "datasets" / name / f"{name}.csv"
    target, features = STATSMODELS_SETS[name]
    where = f"statsmodels:{name} ({path})"
    try:
        with path.open(encoding="utf-8") as f:
            header = tuple(c.strip().strip('"') for c in f.readline().split(","))
            table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except OSError as exc:
        raise UsageError(f"{where}: cannot read the data file ({exc.strerror})") from exc
    except ValueError as exc:
        raise UsageError(f"{where}: cannot parse CSV data ({exc})") from exc
    if sorted(header) != sorted((target, *features)) or table.shape[1] != len(header):
        raise UsageError(
            f"{where}: unexpected columns {', '.join(header)}; "
            f"need {', '.join((target, *features))}"
        )
    cols = [header.index(c) for c in features]
    return _checked(table[:, cols], table[:, header.index(target)] > 0, where)


def _load_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z or "y" not in z:
                raise UsageError(f"{path}: an .npz data file needs arrays 'X' and 'y'")
            return _checked(np.asarray(z["X"]), np.asarray(z["y"]), str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read .npz data ({exc})") from exc


def _load_csv(path: Path) -> RawData:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise UsageError(f"{path}: cannot parse CSV data ({exc})") from exc
    if table.shape[1] < 2:
        raise UsageError(f"{path}: a CSV data file needs at least one feature and a label column")
    return _checked(table[:, :-1], table[:, -1], str(path))


def _checked(X: npt.ArrayLike, y: npt.ArrayLike, where: str) -> RawData:
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if Xa.ndim != 2 or ya.ndim != 1 or Xa.shape[0] != ya.shape[0] or Xa.shape[0] < 2:
        raise UsageError(f"{where}: need X of shape (n, d) and y of shape (n,) with n >= 2")
    if not (np.all(np.isfinite(Xa)) and np.all(np.isfinite(ya))):
        raise UsageError(f"{where}: data contain NaN or infinite values")
    return RawData(np.ascontiguousarray(Xa), np.ascontiguousarray(ya))


def split_indices(
    n: int, validation_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split.

    Each index ``i`` gets the key ``u64be(XOF("split", u64be(split_seed), b"", [i])[:8])``;
    indices sorted by key form a permutation, the first ``round(n * fraction)`` of which are
    validation points. Both index lists are returned sorted ascending.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise UsageError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    stream = xof("split", struct.pack(">Q", split_seed), b"", [], 8 * n)
    keys = np.frombuffer(stream, dtype=">u8")
    order = np.argsort(keys, kind="stable")
    n_val = max(1, min(n - 1, round(n * validation_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def standardize(X_train: FloatArray, *others: FloatArray) -> tuple[FloatArray, ...]:
    """Centre and scale every column by the training mean and standard deviation.

    Constant columns (std 0) are centred and left unscaled.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple((a - mean) / std for a in (X_train, *others))

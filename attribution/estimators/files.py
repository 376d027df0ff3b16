"""Attribution files written by ``vattr attribute`` and read by the Prover and ``evaluate``.

An ``.npz`` with ``attribution`` (T, 1 + N): the affine datamodel in +-1 encoding per output
(positive a_i = including point i raises the output), ``metadata`` (JSON: format, method,
parameters, task name and digest, convention, fitting runs and seed) and optionally
``self_scores`` (N,). A bare ``.npy`` matrix is accepted without metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError

FloatArray = npt.NDArray[np.float64]
FORMAT = "vattr-attribution/1"


def write_attribution_file(out: Path, A: FloatArray, meta: dict[str, Any]) -> None:
    """Write ``attribution`` and JSON ``metadata`` atomically (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".npz", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, attribution=A, metadata=np.array(json.dumps(meta)))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AttributionFile:
    """A loaded attribution file: ``attribution`` (T, 1 + N), its ``metadata`` (None for a
    bare .npy matrix) and optional per-point ``self_scores`` (N,)."""

    attribution: FloatArray
    metadata: dict[str, Any] | None
    self_scores: FloatArray | None


def load_attribution_file(path: Path) -> AttributionFile:
    """Read an .npz written by ``vattr attribute`` (or a bare .npy matrix); UsageError if bad."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            return AttributionFile(
                np.asarray(np.load(path, allow_pickle=False), dtype=np.float64), None, None
            )
        with np.load(path, allow_pickle=False) as z:
            if "attribution" not in z.files or "metadata" not in z.files:
                raise UsageError(f"{path}: not a vattr attribution file (arrays missing)")
            A = np.asarray(z["attribution"], dtype=np.float64)
            meta = json.loads(str(z["metadata"][()]))
            own = np.asarray(z["self_scores"], dtype=np.float64) if "self_scores" in z else None
    except UsageError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable attribution file ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{path}: metadata is not in the {FORMAT} format")
    runs, seed = meta.get("fit_runs"), meta.get("fit_seed")
    if not isinstance(runs, int) or runs < 0 or (runs > 0 and not isinstance(seed, int)):
        raise UsageError(f"{path}: metadata lacks a valid fit_runs / fit_seed")
    return AttributionFile(A, meta, own)

"""ResultStore: preallocated memmap rows + completion bitmap + manifest (datamodels pattern).

Layout of a store directory::

    manifest.json    format, task digest, plan description, shapes, output names,
                     and (once complete) the SHA-256 of the outputs' canonical bytes
    outputs.npy      float64 (n_rows, n_outputs), preallocated, NaN until written
    completed.npy    uint8 (n_rows,), 1 = row written and flushed
    lock             flock()ed by the one writer (the driver)

Crash safety: the driver is the only writer; a block of rows is written and flushed
*before* its completion bits are set and flushed, so a row marked complete is always
whole. A run killed at any point (SIGKILL included) resumes by training only the rows
whose bit is 0. Reopening a store with another task digest, plan or shape is refused
(:class:`StoreMismatchError`); files that disagree with the manifest are reported
(:class:`StoreCorruptError`), never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution import __version__
from attribution.errors import StoreCorruptError, StoreMismatchError, UsageError

FORMAT = "vattr-store/1"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def outputs_digest(values: npt.NDArray[np.float64]) -> str:
    """``sha256:<hex>`` of the C-contiguous little-endian float64 bytes of ``values``."""
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(values, "<f8").tobytes()).hexdigest()


class ResultStore:
    """A resumable store of training outputs; see the module docstring."""

    def __init__(self, path: Path, manifest: dict[str, Any], lock_fd: int) -> None:
        self.path = path
        self.manifest = manifest
        self._lock_fd = lock_fd
        shape = (manifest["n_rows"], manifest["n_outputs"])
        try:
            self.outputs = np.lib.format.open_memmap(path / "outputs.npy", mode="r+")
            self.completed = np.lib.format.open_memmap(path / "completed.npy", mode="r+")
        except (OSError, ValueError) as exc:
            raise StoreCorruptError(f"store {path}: cannot map its arrays ({exc})") from exc
        if (
            self.outputs.shape != shape
            or self.outputs.dtype != np.float64
            or self.completed.shape != (shape[0],)
            or self.completed.dtype != np.uint8
        ):
            raise StoreCorruptError(f"store {path}: array shapes or dtypes disagree with manifest")
        expected = manifest.get("outputs_sha256")
        if expected is not None and outputs_digest(self.outputs) != expected:
            raise StoreCorruptError(
                f"store {path}: outputs.npy does not match the digest in its manifest"
            )

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        task_digest: bytes,
        task_name: str,
        plan: dict[str, Any],
        n_outputs: int,
        output_names: Sequence[str],
    ) -> ResultStore:
        """Create the store at ``path`` or reopen it after checking it belongs to this run."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        wanted = {
            "format": FORMAT,
            "task": task_name,
            "task_digest": task_digest.hex(),
            "plan": plan,
            "n_rows": int(plan["n_rows"]),
            "n_outputs": int(n_outputs),
            "output_names": list(output_names),
        }
        if manifest_path.exists():
            manifest = cls._read_manifest(path)
            for key in ("format", "task_digest", "plan", "n_rows", "n_outputs"):
                if manifest.get(key) != wanted[key]:
                    what = {
                        "task_digest": f"task {manifest.get('task')!r} "
                        f"(digest {str(manifest.get('task_digest'))[:16]}...)",
                    }.get(key, f"another {key}")
                    raise StoreMismatchError(
                        f"store {path} belongs to {what}, not to this run; "
                        "use another --store directory"
                    )
            return cls(path, manifest, cls._lock(path))
        if path.exists() and any(path.iterdir()):
            raise UsageError(f"store directory {path} exists, is not empty and has no manifest")
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = cls._lock(path)
        n_rows = int(plan["n_rows"])
        out = np.lib.format.open_memmap(
            path / "outputs.npy", mode="w+", dtype=np.float64, shape=(n_rows, n_outputs)
        )
        out[:] = np.nan
        out.flush()
        done = np.lib.format.open_memmap(
            path / "completed.npy", mode="w+", dtype=np.uint8, shape=(n_rows,)
        )
        done.flush()
        del out, done
        manifest = {
            **wanted,
            "created_by": f"verifiable-attribution {__version__}",
            "outputs_sha256": None,
        }
        _write_json_atomic(manifest_path, manifest)
        return cls(path, manifest, lock_fd)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreCorruptError(f"store {path}: unreadable manifest.json ({exc})") from exc
        if not isinstance(manifest, dict):
            raise StoreCorruptError(f"store {path}: manifest.json is not an object")
        return manifest

    @staticmethod
    def _lock(path: Path) -> int:
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise UsageError(f"store {path} is in use by another process") from exc
        return fd

    @classmethod
    def read(
        cls, path: Path
    ) -> tuple[dict[str, Any], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Read-only view: (manifest, outputs copy, completion mask); checks the digest."""
        manifest = cls._read_manifest(Path(path))
        outputs = np.load(Path(path) / "outputs.npy", mmap_mode="r")
        completed = np.load(Path(path) / "completed.npy").astype(bool)
        expected = manifest.get("outputs_sha256")
        if expected is not None and outputs_digest(outputs) != expected:
            raise StoreCorruptError(f"store {path}: outputs.npy does not match its manifest")
        return manifest, np.array(outputs), completed

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    def pending_rows(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.completed == 0)]

    def write_block(self, rows: Sequence[int], values: npt.NDArray[np.float64]) -> None:
        """Write rows, flush them, then set and flush their completion bits."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape != (len(rows), self.outputs.shape[1]):
            raise ValueError(f"block of shape {vals.shape} for {len(rows)} rows")
        if not np.all(np.isfinite(vals)):
            raise ValueError("refusing to store non-finite outputs")
        idx = np.asarray(rows, dtype=np.int64)
        self.outputs[idx] = vals
        self.outputs.flush()
        self.completed[idx] = 1
        self.completed.flush()

    def finalize(self) -> str | None:
        """When every row is complete, record the outputs' digest in the manifest."""
        if not bool(np.all(self.completed == 1)):
            return None
        digest = outputs_digest(self.outputs)
        if self.manifest.get("outputs_sha256") != digest:
            self.manifest["outputs_sha256"] = digest
            _write_json_atomic(self.path / "manifest.json", self.manifest)
        return digest

    def close(self) -> None:
        if self._lock_fd >= 0:
            self.outputs.flush()
            self.completed.flush()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

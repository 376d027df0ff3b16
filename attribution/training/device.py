"""Device selection: one code path for CPU and CUDA."""

from __future__ import annotations

import torch

from attribution.errors import UsageError


def resolve_device(name: str = "auto") -> torch.device:
    """``cpu``, ``cuda`` (error if absent), ``cuda:N`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda requested but torch sees no CUDA device")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r}: use cpu, cuda or auto")

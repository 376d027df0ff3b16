"""Estimator subcommands of ``vattr`` (``attribute``, ``evaluate``): none yet."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the estimator subcommands to the ``vattr`` parser."""
    return None

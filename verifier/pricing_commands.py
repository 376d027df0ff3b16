"""Pricing subcommands of ``vattr`` (``price``, ``receipt``, ``report``, ``compare``): none yet."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the pricing subcommands to the ``vattr`` parser."""
    return None

"""Pieces of the PAC verification protocol shared by Prover and Verifier: parameters,
challenge derivation and the wire messages (docs/protocol.md sections 2.4 and 4)."""

from __future__ import annotations

from typing import TypeVar

from attribution.errors import LocalProtocolError

T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    """``value`` if present; otherwise the step ran before ``what`` existed (a bug or an
    out-of-order call): raise instead of continuing with missing state."""
    if value is None:
        raise LocalProtocolError(f"protocol state missing: {what}")
    return value

"""Exceptions raised when received data does not match what was committed to."""

from __future__ import annotations


class VerificationError(ValueError):
    """A proof, stream or chain does not check out against its commitment.

    Raised for data that came from the other party (or from disk); a caller that accepts
    such data must treat this as evidence of tampering or corruption, never retry it away.
    """


class TranscriptError(VerificationError):
    """A hash-chained transcript is broken.

    ``index`` is the 1-based number of the first entry that does not chain, ``0`` for the
    header of a stored log (protocol version, session id, ``h_0``), and ``None`` when every
    stored entry chains but the final head differs from the expected one.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index

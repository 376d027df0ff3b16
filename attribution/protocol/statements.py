"""The signed statements of the protocol: one function per statement, returning the
exact ``(tag, fields)`` that is signed, used both where it is signed and where it is
verified (docs/protocol.md section 3).

The signed message is ``signing_message(tag, *fields)`` =
``"attribution.v1/" || tag || 0x00 || (u64be(len(f)) || f)...``
(:mod:`attribution.commitments.signing`), Ed25519 (RFC 8032, pure).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from attribution.commitments.signing import signing_message
from attribution.commitments.signing import verify as _verify
from attribution.encoding import (
    SIG_COMMIT_ATTRIBUTION,
    SIG_COMMIT_EVALUATIONS,
    SIG_OPENED,
    SIG_VERDICT,
)
from attribution.protocol.common import Signer


class Statement(NamedTuple):
    """A domain tag and the byte fields signed under it."""

    tag: str
    fields: tuple[bytes, ...]

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return signing_message(self.tag, *self.fields)


def opened(session_id: bytes, nonce: bytes, head: bytes) -> Statement:
    """Prover's session opening: ``(session_id, nonce, transcript head)``."""
    return Statement(SIG_OPENED, (session_id, nonce, head))


_COMMIT_TAGS = {"attribution": SIG_COMMIT_ATTRIBUTION, "evaluations": SIG_COMMIT_EVALUATIONS}


def commit(
    what: str, session_id: bytes, root: bytes, rows: int, cols: int, head: bytes
) -> Statement:
    """Prover's commitment to a matrix (``what`` = ``"attribution"`` or ``"evaluations"``):
    ``(session_id, Merkle root, u64be(rows) || u64be(cols), transcript head)``."""
    if what not in _COMMIT_TAGS:
        raise ValueError(f"no commitment statement for {what!r}")
    return Statement(_COMMIT_TAGS[what], (session_id, root, struct.pack(">QQ", rows, cols), head))


def commit_attribution(
    session_id: bytes, root: bytes, rows: int, cols: int, head: bytes
) -> Statement:
    """``commit/attribution``, see :func:`commit`."""
    return commit("attribution", session_id, root, rows, cols, head)


def commit_evaluations(
    session_id: bytes, root: bytes, rows: int, cols: int, head: bytes
) -> Statement:
    """``commit/evaluations``, see :func:`commit`."""
    return commit("evaluations", session_id, root, rows, cols, head)


def verdict(
    session_id: bytes, head: bytes, verdict: str, reason: str, certificate_digest: bytes
) -> Statement:
    """Verifier's verdict: ``(session_id, head, utf8(verdict), utf8(reason), digest)``."""
    return Statement(
        SIG_VERDICT, (session_id, head, verdict.encode(), reason.encode(), certificate_digest)
    )


def sign(key: Signer, statement: Statement) -> bytes:
    """64-byte Ed25519 signature of ``statement``."""
    return key.sign(statement.tag, *statement.fields)


def verify(public_key_raw: bytes, signature: bytes, statement: Statement) -> bool:
    """True iff ``signature`` signs ``statement`` under ``public_key_raw`` (never raises
    for bad keys or signatures)."""
    return _verify(public_key_raw, signature, statement.tag, *statement.fields)

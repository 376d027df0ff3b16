"""The one byte vocabulary of the protocol: canonical JSON, the domain prefix, every
domain tag and the helper that hashes under a tag (docs/protocol.md section 3).

Everything that is hashed or signed is built from the names in this module, so another
implementation can recompute every digest from docs/protocol.md section 3 and the golden
vectors in ``testdata/vectors/``. Standard library only; no import from another
``attribution`` subpackage (``attribution.commitments`` imports this module).

Integers are unsigned big-endian (``u8``, ``u32be``, ``u64be``) unless a layout says
otherwise; float64 payloads are IEEE-754 binary64 little-endian.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DOMAIN = b"attribution.v1/"
"""Prefix of every domain tag in the protocol (15 ASCII bytes)."""

PROTOCOL_VERSION = 1
"""Protocol version: ``u32be`` in the transcript genesis, an integer in the open message."""


def canonical_json(value: Any, *, ascii: bool = True, allow_nan: bool = False) -> bytes:
    """Canonical JSON bytes of ``value``: keys sorted, separators ``","`` and ``":"``
    (no whitespace), floats as Python ``repr`` (shortest round-trip), UTF-8.

    ``ascii=True`` (the default, used for everything hashed or sent) escapes every
    non-ASCII character as ``\\uXXXX``; ``ascii=False`` writes it as UTF-8 (transcript
    JSON Lines only). ``allow_nan=False`` rejects NaN and +-inf (``ValueError``);
    ``allow_nan=True`` exists only for legacy call sites whose input is validated finite
    beforehand, so their bytes stay those of ``json.dumps`` defaults.
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=ascii,
        allow_nan=allow_nan,
    ).encode("utf-8")


# -- domain tags ---------------------------------------------------------------------
# Every tag below is written after DOMAIN. "T" = terminated: a 0x00 byte follows the tag.
# "U" = unterminated (legacy layouts whose tail has a fixed width or length prefixes).

TAG_TRANSCRIPT = "transcript"
"""U. ``h_0 = SHA-256(DOMAIN "transcript" || u32be(protocol_version) || session_id)``."""

TAG_SEED_COMMIT = "seed-commit"
"""T. ``SHA-256(DOMAIN "seed-commit" 0x00 || utf8(label) || 0x00 || seed || salt)``."""

TAG_SESSION = "session"
"""T. ``session_id = SHA-256(DOMAIN "session" 0x00 || open message bytes)[:16]``."""

TAG_PARAMS = "params"
"""T. ``SHA-256(DOMAIN "params" 0x00 || canonical_json(params))``."""

TAG_CERTIFICATE = "certificate"
"""T. ``SHA-256(DOMAIN "certificate" 0x00 || canonical_json(field_hashes))``."""

TAG_TASK = "task"
"""T. ``SHA-256(DOMAIN "task" 0x00 || canonical spec JSON || 0x00 utf8(data digest)
|| (0x00 utf8(extra digest))...)``."""

TAG_BIND = "bind"
"""U. ``SHA-256(DOMAIN "bind" || (u64be(len(part)) || part)...)``."""

TAG_DATA = "data"
"""U. ``SHA-256(DOMAIN "data" || blk(X) || blk(y))``, ``blk(a) = u64be(ndim) ||
u64be(shape)... || f64le(a)``; :func:`attribution.data.loaders.arrays_digest` uses
``DOMAIN || tag`` (U) with any caller tag followed by ``(u64be(len(name)) || name ||
blk(array))`` in sorted name order."""

TAG_TRAK_PROJECTION = "trak-projection"
"""U. ``SHA-256(DOMAIN "trak-projection" || u64be(seed mod 2**64) || u64be(checkpoint))``."""

# XOF labels: SHAKE-256(DOMAIN || label || 0x00 || seed || bind || u64be(idx)...) (T).
XOF_SUBSET = "subset"
"""Anchor subset masks (u32le draws < P32)."""
XOF_KEEP = "keep"
"""Correlated partner: keep-coordinate draws (u32le < R32)."""
XOF_REDRAW = "redraw"
"""Correlated partner: redraw draws (u32le < P32)."""
XOF_SEED = "seed"
"""32-byte training seed of a subset."""
XOF_MSE_SUBSET = "mse_subset"
"""MSE-check subsets."""
XOF_MSE_SEED = "mse_seed"
"""MSE-check training seeds."""
XOF_SPOT = "spot"
"""Spot-check index selection (``uniform_index``, u64be rejection sampling)."""
XOF_VERIFIER_SECRET = "verifier-secret"  # noqa: S105 - a label, not a secret
"""Verifier's secret seeds from a master seed (bind = the seed's name)."""
XOF_SYNTHETIC = "synthetic"
"""Synthetic data sets."""
XOF_SPLIT = "split"
"""Train/test splits of loaded data (seed = u64be(split_seed))."""

# Vector digests: SHA-256(DOMAIN || tag || 0x00 || u8(0x01) || u64be(n) || u8(ndim)
# || u64be(dim)... || f64le payload) with any caller tag (T), see commitments.canonical.

# Signed statements: Ed25519 over DOMAIN || tag || 0x00 || (u64be(len(f)) || f)... (T),
# see attribution.protocol.statements for the fields.
SIG_OPENED = "opened"
"""Prover: (session_id, nonce, transcript head)."""
SIG_COMMIT_ATTRIBUTION = "commit/attribution"
"""Prover: (session_id, Merkle root, u64be(rows) || u64be(cols), transcript head)."""
SIG_COMMIT_EVALUATIONS = "commit/evaluations"
"""Prover: (session_id, Merkle root, u64be(rows) || u64be(cols), transcript head)."""
SIG_VERDICT = "verdict"
"""Verifier: (session_id, head, utf8(verdict), utf8(reason), certificate digest)."""

UNTERMINATED = frozenset({TAG_TRANSCRIPT, TAG_BIND, TAG_DATA, TAG_TRAK_PROJECTION})
"""The legacy tags written without the 0x00 terminator. Domain separation holds because
every tag name is distinct and no unterminated tag is a prefix of another tag (tested);
a new tag must be terminated. The layouts are in docs/protocol.md section 3."""


def domain_prefix(tag: str, *, terminated: bool = True) -> bytes:
    """``DOMAIN || ascii(tag) (|| 0x00 if terminated)`` (no validation of ``tag``)."""
    return DOMAIN + tag.encode("ascii") + (b"\x00" if terminated else b"")


def domain_hash(tag: str, *parts: bytes, terminated: bool = True) -> bytes:
    """``SHA-256(DOMAIN || tag || (0x00 if terminated) || parts[0] || parts[1] ...)``.

    The parts are concatenated as they are (no length prefixes): the layout of each tag
    in docs/protocol.md section 3 says how they are framed.
    """
    h = hashlib.sha256(domain_prefix(tag, terminated=terminated))
    for part in parts:
        h.update(part)
    return h.digest()

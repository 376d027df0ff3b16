"""Tamper-evident commitments: canonical bytes, RFC 6962 Merkle trees, transcripts, Ed25519.

Everything here is specified byte for byte in the module docstrings so that third parties
can recompute every hash and check every signature in another language:

* :mod:`~attribution.commitments.canonical`: canonical float64 bytes, vector headers and
  digests;
* :mod:`~attribution.commitments.merkle`: RFC 6962 tree hash, inclusion proofs (RFC 9162
  verification), vector roots over 1024-value leaves, element openings, streaming roots;
* :mod:`~attribution.commitments.transcript`: the hash-chained transcript and its JSONL log;
* :mod:`~attribution.commitments.signing`: domain-separated Ed25519 and key files.

See docs/protocol.md sections 3 and 8.3.
"""

from attribution.commitments.canonical import (
    DOMAIN,
    DTYPE_F64LE,
    canonical_f64,
    canonical_f64_bytes,
    decode_f64,
    domain_tag,
    vector_digest,
    vector_header,
)
from attribution.commitments.errors import TranscriptError, VerificationError
from attribution.commitments.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_BYTES,
    LEAF_VALUES,
    ElementOpening,
    StreamingVectorRoot,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    open_element,
    root_from_inclusion_proof,
    vector_leaves,
    vector_root,
    verify_element,
    verify_inclusion,
)
from attribution.commitments.signing import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    fingerprint,
    signing_message,
    verify,
)
from attribution.commitments.transcript import (
    PROTOCOL_VERSION,
    Direction,
    Transcript,
    TranscriptEntry,
    chain_step,
    genesis_head,
    verify_chain,
)

__all__ = [
    "DOMAIN",
    "DTYPE_F64LE",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_BYTES",
    "LEAF_VALUES",
    "PROTOCOL_VERSION",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "Direction",
    "ElementOpening",
    "SigningKey",
    "StreamingVectorRoot",
    "Transcript",
    "TranscriptEntry",
    "TranscriptError",
    "VerificationError",
    "canonical_f64",
    "canonical_f64_bytes",
    "chain_step",
    "decode_f64",
    "domain_tag",
    "fingerprint",
    "genesis_head",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "open_element",
    "root_from_inclusion_proof",
    "signing_message",
    "vector_digest",
    "vector_header",
    "vector_leaves",
    "vector_root",
    "verify",
    "verify_chain",
    "verify_element",
    "verify_inclusion",
]

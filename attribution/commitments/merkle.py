"""RFC 6962 Merkle trees, inclusion proofs, and Merkle commitments to float64 vectors.

Tree hash, exactly RFC 6962 section 2.1 (https://www.rfc-editor.org/rfc/rfc6962#section-2.1),
so the Certificate Transparency test vectors apply::

    MTH({})       = SHA-256()                                    (the empty string)
    MTH({d0})     = SHA-256(0x00 || d0)                          leaf hash
    MTH(D[0:n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  node hash, n > 1,
                    k = the largest power of two strictly smaller than n

The odd node at the end of a level is never duplicated; the split is always at ``k``.

Inclusion proof (audit path) of leaf ``m`` in ``D[0:n]``, RFC 6962 section 2.1.1, listed
from the leaf's sibling up to the child of the root::

    PATH(0, {d0}) = []
    PATH(m, D[0:n]) = PATH(m, D[0:k])     + [MTH(D[k:n])]   if m < k
                    = PATH(m - k, D[k:n]) + [MTH(D[0:k])]   if m >= k

It is verified with the algorithm of RFC 9162 section 2.1.3.2 (:func:`verify_inclusion`).

Float64 vectors (docs/protocol.md section 3): the canonical bytes of a vector
(:func:`~attribution.commitments.canonical.canonical_f64_bytes`, 8 bytes per element,
little-endian) are cut into leaves of ``LEAF_VALUES = 1024`` values (8192 bytes); the last
leaf holds the remaining ``1..1024`` values. An empty vector has no leaves, so its root is
``SHA-256()``. The root binds the sequence of values and hence the length (the last
leaf's byte length fixes it), but neither a shape nor a meaning: bind those in what you
sign. Element ``j`` lives in leaf ``j // 1024`` at element offset ``j % 1024``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attribution.commitments.canonical import F64Array, canonical_f64_bytes, decode_f64
from attribution.commitments.errors import VerificationError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({}) = SHA-256()`` = ``e3b0c442...7852b855``."""

LEAF_VALUES = 1024
"""float64 values per leaf of a vector tree."""
LEAF_BYTES = 8 * LEAF_VALUES
"""Bytes per full leaf of a vector tree (8 KiB)."""


BytesLike = bytes | bytearray | memoryview


def leaf_hash(data: BytesLike) -> bytes:
    """``SHA-256(0x00 || data)``."""
    h = hashlib.sha256(LEAF_PREFIX)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two ``k`` with ``k < n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose leaf hashes are ``hashes``.

    Bottom-up: pair neighbours on each level and carry an unpaired last node up
    unchanged. This equals the RFC's split-at-the-largest-power-of-two recursion: the
    left subtree of every split is perfect, so pairing from the left never crosses a
    split point.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _path(hashes: Sequence[bytes], m: int) -> list[bytes]:
    """RFC 6962 ``PATH(m, D[0:n])`` over leaf hashes, leaf-to-root order."""
    proof: list[bytes] = []
    lo, hi = 0, len(hashes)
    # Walk down from the root, collecting siblings root-to-leaf, then reverse.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m - lo < k:
            proof.append(_root_of_hashes(hashes[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(_root_of_hashes(hashes[lo : lo + k]))
            lo += k
    proof.reverse()
    return proof


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """``MTH(leaves)``: the RFC 6962 tree hash of the leaf *data* ``leaves`` (32 bytes)."""
    return _root_of_hashes([leaf_hash(d) for d in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path ``PATH(index, leaves)``: sibling hashes from leaf to root.

    Raises :class:`IndexError` unless ``0 <= index < len(leaves)``.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaves)} leaves")
    return _path([leaf_hash(d) for d in leaves], index)


def root_from_inclusion_proof(
    leaf_digest: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root an inclusion proof leads to, or ``None`` if the proof is malformed.

    RFC 9162 section 2.1.3.2 steps 1-4 plus the ``sn == 0`` check of step 5, with the
    leaf hash ``hash`` given::

        fail if index >= tree_size
        fn = index; sn = tree_size - 1; r = hash
        for p in proof:
            fail if sn == 0
            if LSB(fn) == 1 or fn == sn:
                r = SHA-256(0x01 || p || r)
                if LSB(fn) == 0: shift fn and sn right until LSB(fn) == 1 or fn == 0
            else:
                r = SHA-256(0x01 || r || p)
            fn >>= 1; sn >>= 1
        fail unless sn == 0

    Additionally every hash (leaf hash and proof elements) must be exactly 32 bytes.
    """
    if (
        not isinstance(index, int)
        or not isinstance(tree_size, int)
        or isinstance(index, bool)
        or isinstance(tree_size, bool)
        or not 0 <= index < tree_size
        or len(leaf_digest) != HASH_SIZE
    ):
        return None
    fn, sn, r = index, tree_size - 1, bytes(leaf_digest)
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff leaf *data* ``leaf`` sits at ``index`` of the tree of ``tree_size`` leaves
    whose root is ``root``, according to ``proof`` (RFC 9162 section 2.1.3.2).

    ``leaf`` is the entry itself; its leaf hash ``SHA-256(0x00 || leaf)`` is computed here.
    Never raises for malformed input: wrong lengths, indices or sizes give ``False``.

    The root alone does not commit to ``tree_size``: one path can verify for several
    ``(index, tree_size)`` pairs with the same hashing pattern (e.g. leaf 0 of 5..8 leaves,
    or leaf 2 of 3 and leaf 1 of 2). As in RFC 6962's signed tree head, always sign or
    otherwise fix the tree size (for vectors: the number of values) together with the
    root, and pass that trusted size here, never one taken from the proof's sender.
    """
    got = root_from_inclusion_proof(leaf_hash(leaf), index, tree_size, proof)
    return got is not None and len(root) == HASH_SIZE and hmac.compare_digest(got, root)


# --------------------------------------------------------------------------------------
# float64 vectors


def vector_leaves(v: npt.ArrayLike) -> list[bytes]:
    """The leaf data of vector ``v``: its canonical bytes in 8192-byte pieces.

    ``v`` is flattened in C order. The last piece may be shorter (a multiple of 8 bytes);
    an empty vector has no leaves.
    """
    data = canonical_f64_bytes(v)
    return [data[i : i + LEAF_BYTES] for i in range(0, len(data), LEAF_BYTES)]


def vector_root(v: npt.ArrayLike) -> bytes:
    """``MTH(vector_leaves(v))``, 32 bytes."""
    data = memoryview(canonical_f64_bytes(v))
    return _root_of_hashes(
        [leaf_hash(data[i : i + LEAF_BYTES]) for i in range(0, len(data), LEAF_BYTES)]
    )


@dataclass(frozen=True)
class ElementOpening:
    """Everything needed to check one element against a vector root.

    ``chunk`` is leaf number ``leaf_index`` (its raw canonical bytes: 8192 bytes, or
    ``1..8192`` for the last leaf), ``proof`` its audit path in a tree of ``tree_size``
    leaves, and the element is the float64 at byte ``8 * offset`` of ``chunk``, i.e.
    element ``leaf_index * 1024 + offset`` of the vector.
    """

    chunk: bytes
    leaf_index: int
    proof: tuple[bytes, ...]
    tree_size: int
    offset: int

    @property
    def element_index(self) -> int:
        """``leaf_index * LEAF_VALUES + offset``."""
        return self.leaf_index * LEAF_VALUES + self.offset


def open_element(v: npt.ArrayLike, j: int) -> ElementOpening:
    """The opening of element ``j`` of ``v`` (flattened in C order).

    Raises :class:`IndexError` unless ``0 <= j < v.size``.
    """
    leaves = vector_leaves(v)
    n_values = (len(leaves) - 1) * LEAF_VALUES + len(leaves[-1]) // 8 if leaves else 0
    if not 0 <= j < n_values:
        raise IndexError(f"element {j} outside a vector of {n_values} values")
    leaf_index, offset = divmod(j, LEAF_VALUES)
    proof = _path([leaf_hash(d) for d in leaves], leaf_index)
    return ElementOpening(
        chunk=leaves[leaf_index],
        leaf_index=leaf_index,
        proof=tuple(proof),
        tree_size=len(leaves),
        offset=offset,
    )


def verify_element(opening: ElementOpening, root: bytes, *, n_values: int | None = None) -> float:
    """Check ``opening`` against ``root`` and return the opened value.

    Checks, in order: when ``n_values`` (the committed vector length) is given, that
    ``tree_size == ceil(n_values / 1024)`` and that a last leaf holds exactly the
    remaining ``n_values - 1024 * (tree_size - 1)`` values; the chunk is a whole number of
    float64 values, a full 8192 bytes unless it is the last leaf
    (``leaf_index == tree_size - 1``), at most 8192 bytes, not empty; ``offset`` lies
    inside it; its values are canonical (finite, no ``-0.0``); and the audit path leads
    to ``root`` (RFC 9162 section 2.1.3.2). Raises
    :class:`~attribution.commitments.errors.VerificationError` on any failure.

    Pass ``n_values`` whenever the length is known from a signed commitment: the root by
    itself does not fix the tree size, and without it the position (element index) of
    the opened value is only as trustworthy as ``opening.tree_size`` (see
    :func:`verify_inclusion`). The value itself is bound by the root either way.
    """
    chunk = opening.chunk
    n = len(chunk)
    if n_values is not None:
        expected_size = -(-n_values // LEAF_VALUES)
        if opening.tree_size != expected_size:
            raise VerificationError(
                f"tree size {opening.tree_size} does not match the committed length of "
                f"{n_values} values ({expected_size} leaves)"
            )
        last = n_values - LEAF_VALUES * (expected_size - 1)
        if opening.leaf_index == expected_size - 1 and n != 8 * last:
            raise VerificationError(
                f"last leaf has {n} bytes; a vector of {n_values} values ends with "
                f"{last} values ({8 * last} bytes)"
            )
    if n == 0 or n % 8 or n > LEAF_BYTES:
        raise VerificationError(f"chunk of {n} bytes is not 1..{LEAF_VALUES} float64 values")
    if opening.leaf_index != opening.tree_size - 1 and n != LEAF_BYTES:
        raise VerificationError(
            f"leaf {opening.leaf_index} of {opening.tree_size} has {n} bytes; "
            f"only the last leaf may be shorter than {LEAF_BYTES}"
        )
    if not 0 <= opening.offset < n // 8:
        raise VerificationError(f"offset {opening.offset} outside a chunk of {n // 8} values")
    try:
        values = decode_f64(chunk)
    except ValueError as exc:
        raise VerificationError(f"chunk is not canonical float64: {exc}") from exc
    if not verify_inclusion(chunk, opening.leaf_index, opening.tree_size, opening.proof, root):
        raise VerificationError(
            f"inclusion proof for leaf {opening.leaf_index} of {opening.tree_size} "
            "does not lead to the committed root"
        )
    return float(values[opening.offset])


class StreamingVectorRoot:
    """Recompute :func:`vector_root` of a vector received in chunks.

    ``update(offset, data)`` takes chunks in order, as they arrive on the wire
    (``Float64Chunk``: ``offset`` = element index of the first value, ``data`` = canonical
    little-endian float64 bytes). It enforces, before changing any state:

    * ``len(data)`` is a positive multiple of 8 and the values are canonical (finite, no
      ``-0.0``);
    * contiguity: ``offset`` equals the number of values received so far;
    * the total: the chunk does not run past ``total_length`` values;
    * leaf alignment: every chunk holds a whole number of leaves (a multiple of 1024
      values) except the final chunk, which must end exactly at ``total_length``.

    Memory is O(log n) hashes (a stack of perfect-subtree roots), plus the values when
    ``keep_values=True``. :meth:`root` requires all ``total_length`` values and returns the
    same 32 bytes as ``vector_root`` of the whole vector. Violations raise
    :class:`~attribution.commitments.errors.VerificationError`.
    """

    def __init__(self, total_length: int, *, keep_values: bool = False) -> None:
        if isinstance(total_length, bool) or not isinstance(total_length, int):
            raise TypeError("total_length must be an int")
        if total_length < 0:
            raise ValueError(f"total_length must be >= 0, got {total_length}")
        self._total = total_length
        self._received = 0
        self._n_leaves = 0
        # (height, hash) of perfect subtrees covering leaves [0, n_leaves), left to right,
        # strictly decreasing heights: the binary decomposition of n_leaves.
        self._stack: list[tuple[int, bytes]] = []
        self._values: F64Array | None = (
            np.empty(total_length, dtype=np.float64) if keep_values else None
        )

    @property
    def total_length(self) -> int:
        """Number of values the complete vector has."""
        return self._total

    @property
    def received(self) -> int:
        """Number of values accepted so far."""
        return self._received

    @property
    def complete(self) -> bool:
        """Whether all ``total_length`` values have been received."""
        return self._received == self._total

    def update(self, offset: int, data: bytes) -> None:
        """Accept the chunk of values ``[offset, offset + len(data) // 8)``."""
        n_bytes = len(data)
        if n_bytes == 0 or n_bytes % 8:
            raise VerificationError(f"chunk at offset {offset}: {n_bytes} bytes is not 1+ float64")
        count = n_bytes // 8
        if offset != self._received:
            raise VerificationError(
                f"chunk at offset {offset} is not contiguous: expected offset {self._received}"
            )
        end = offset + count
        if end > self._total:
            raise VerificationError(
                f"chunk at offset {offset} with {count} values runs past the total "
                f"of {self._total} values"
            )
        if end != self._total and count % LEAF_VALUES:
            raise VerificationError(
                f"chunk at offset {offset} has {count} values; every chunk but the last "
                f"must hold a multiple of {LEAF_VALUES} values (whole leaves)"
            )
        try:
            values = decode_f64(data)
        except ValueError as exc:
            raise VerificationError(f"chunk at offset {offset}: {exc}") from exc
        view = memoryview(data)
        for i in range(0, n_bytes, LEAF_BYTES):
            self._push(leaf_hash(view[i : i + LEAF_BYTES]))
        if self._values is not None:
            self._values[offset:end] = values
        self._received = end

    def _push(self, h: bytes) -> None:
        height = 0
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            h = node_hash(left, h)
            height += 1
        self._stack.append((height, h))
        self._n_leaves += 1

    def root(self) -> bytes:
        """The vector root; raises ``VerificationError`` if values are still missing."""
        if not self.complete:
            raise VerificationError(
                f"stream incomplete: received {self._received} of {self._total} values"
            )
        if not self._stack:
            return EMPTY_ROOT
        # RFC 6962 merges the smaller right-hand subtrees first.
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h

    def values(self) -> F64Array:
        """The received vector (only with ``keep_values=True`` and once complete)."""
        if self._values is None:
            raise RuntimeError("StreamingVectorRoot was created without keep_values=True")
        if not self.complete:
            raise VerificationError(
                f"stream incomplete: received {self._received} of {self._total} values"
            )
        return self._values

"""RFC 6962 Merkle trees and vector commitments (attribution.commitments.merkle).

Reference test vectors: the Certificate Transparency / Trillian vectors as published in
github.com/transparency-dev/merkle (the Merkle code split out of google/trillian):

* ``testonly/constants.go`` (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1):
  ``LeafInputs``, ``NodeHashes`` (every complete subtree) and ``RootHashes`` (sizes 0..8);
* ``proof/verify_test.go`` (commit 02194e9afb6c1d95b5381350007963aa70fff472):
  ``inclusionProofs`` (leaf numbers there are 1-based; converted to 0-based here).
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Sequence

import numpy as np
import pytest

from attribution.commitments import (
    EMPTY_ROOT,
    LEAF_BYTES,
    LEAF_VALUES,
    ElementOpening,
    StreamingVectorRoot,
    VerificationError,
    canonical_f64_bytes,
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

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# RootHashes(): index = tree size.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# NodeHashes(): [level][index] of every complete subtree of the 8-leaf tree.
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# inclusionProofs from proof/verify_test.go as (0-based index, tree size, path).
PUBLISHED_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

ALL_PAIRS = [(i, n) for n in range(1, 9) for i in range(n)]


# Literal transcriptions of RFC 6962 section 2.1, used as an independent reference.
def rfc_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def one_byte_tampers(data: bytes) -> list[bytes]:
    """Every copy of ``data`` with exactly one byte changed, plus one byte appended."""
    out = [data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :] for i in range(len(data))]
    out += [data[:i] + bytes([data[i] ^ 0x80]) + data[i + 1 :] for i in range(len(data))]
    out.append(data + b"\x00")
    return out


# ------------------------------------------------------------------- RFC 6962 vectors


def test_empty_tree_root() -> None:
    assert merkle_root([]) == ROOTS[0] == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(9))
def test_published_roots(size: int) -> None:
    assert merkle_root(LEAF_INPUTS[:size]) == ROOTS[size]


def test_published_node_hashes() -> None:
    for level, hashes in enumerate(NODE_HASHES):
        width = 1 << level
        for i, expected in enumerate(hashes):
            assert merkle_root(LEAF_INPUTS[i * width : (i + 1) * width]) == expected
    assert [leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]
    assert node_hash(NODE_HASHES[0][0], NODE_HASHES[0][1]) == NODE_HASHES[1][0]


@pytest.mark.parametrize(("index", "size", "path"), PUBLISHED_PROOFS)
def test_published_inclusion_proofs(index: int, size: int, path: list[bytes]) -> None:
    assert inclusion_proof(LEAF_INPUTS[:size], index) == path
    assert verify_inclusion(LEAF_INPUTS[index], index, size, path, ROOTS[size])


@pytest.mark.parametrize("index", range(8))
def test_size_8_proofs_are_published_node_hashes(index: int) -> None:
    expected = [NODE_HASHES[level][(index >> level) ^ 1] for level in range(3)]
    assert inclusion_proof(LEAF_INPUTS, index) == expected


@pytest.mark.parametrize(("index", "size"), ALL_PAIRS)
def test_every_proof_up_to_8_verifies_and_resists_tampering(index: int, size: int) -> None:
    leaves = LEAF_INPUTS[:size]
    leaf, root = LEAF_INPUTS[index], ROOTS[size]
    proof = inclusion_proof(leaves, index)
    assert proof == rfc_path(index, leaves)
    assert verify_inclusion(leaf, index, size, proof, root)
    assert root_from_inclusion_proof(leaf_hash(leaf), index, size, proof) == root

    for k in range(len(proof)):
        for bad in one_byte_tampers(proof[k]):
            tampered = [*proof[:k], bad, *proof[k + 1 :]]
            assert not verify_inclusion(leaf, index, size, tampered, root)
    for bad_leaf in one_byte_tampers(leaf):
        assert not verify_inclusion(bad_leaf, index, size, proof, root)
    for bad_root in one_byte_tampers(root):
        assert not verify_inclusion(leaf, index, size, proof, bad_root)

    # Wrong position, wrong size, and structural changes to the path.
    for other in range(-1, 10):
        if other != index:
            assert not verify_inclusion(leaf, other, size, proof, root)
    # Sizes whose path has another shape (the corruptions of verify_test.go); the root
    # does not bind the size in general, see test_root_does_not_bind_tree_size.
    for other_size in (0, 2 * size, size // 2):
        assert not verify_inclusion(leaf, index, other_size, proof, root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    assert not verify_inclusion(leaf, index, size, [root, *proof], root)
    assert not verify_inclusion(leaf, index, size, [*proof, b""], root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
        assert not verify_inclusion(leaf, index, size, proof[1:], root)
    if len(proof) > 1:
        assert not verify_inclusion(leaf, index, size, proof[::-1], root)


def test_proof_does_not_verify_other_leaves() -> None:
    for index, size in ALL_PAIRS:
        proof = inclusion_proof(LEAF_INPUTS[:size], index)
        for other in range(size):
            if LEAF_INPUTS[other] != LEAF_INPUTS[index]:
                assert not verify_inclusion(LEAF_INPUTS[other], index, size, proof, ROOTS[size])


def test_root_does_not_bind_tree_size() -> None:
    # Documented RFC 9162 property: the same path verifies for leaf 0 of 5..8 leaves, so
    # the tree size must be committed (signed) together with the root.
    proof = inclusion_proof(LEAF_INPUTS, 0)
    assert [s for s in range(1, 17) if verify_inclusion(b"", 0, s, proof, ROOTS[8])] == [
        5,
        6,
        7,
        8,
    ]
    # ...and the index is only bound for a fixed size: leaf 2 of 3 vs leaf 1 of 2.
    root = node_hash(leaf_hash(b"x"), leaf_hash(b"y"))
    assert verify_inclusion(b"y", 1, 2, [leaf_hash(b"x")], root)
    assert verify_inclusion(b"y", 2, 3, [leaf_hash(b"x")], root)


def test_leaf_hash_is_not_accepted_as_leaf() -> None:
    # verify_inclusion takes the entry, not its hash: passing the hash must fail.
    proof = inclusion_proof(LEAF_INPUTS, 3)
    assert not verify_inclusion(leaf_hash(LEAF_INPUTS[3]), 3, 8, proof, ROOTS[8])


@pytest.mark.parametrize("n", [*range(1, 40), 63, 64, 65, 127, 128, 129])
def test_matches_literal_rfc_recursion(n: int) -> None:
    rng = np.random.default_rng(n)
    leaves = [rng.bytes(int(rng.integers(0, 20))) for _ in range(n)]
    root = merkle_root(leaves)
    assert root == rfc_mth(leaves)
    for m in {0, n // 3, n // 2, n - 1}:
        proof = inclusion_proof(leaves, m)
        assert proof == rfc_path(m, leaves)
        assert verify_inclusion(leaves[m], m, n, proof, root)


def test_no_second_preimage_by_reinterpreting_nodes() -> None:
    # The concatenation of two leaf hashes, presented as a leaf, does not give the root.
    l0, l1 = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([b"a", b"b"]) != merkle_root([l0 + l1])
    assert merkle_root([b"a", b"b"]) != leaf_hash(l0 + l1)


def test_malformed_inputs_give_false_not_errors() -> None:
    proof = inclusion_proof(LEAF_INPUTS, 2)
    leaf, root = LEAF_INPUTS[2], ROOTS[8]
    assert not verify_inclusion(leaf, 2, 8, proof, root[:31])
    assert not verify_inclusion(leaf, 2, 8, proof, b"")
    assert not verify_inclusion(leaf, 2, 8, [p[:31] for p in proof], root)
    assert not verify_inclusion(leaf, 2, 8, [*proof[:-1], proof[-1] + b"\x00"], root)
    assert not verify_inclusion(leaf, True, 8, proof, root)
    assert not verify_inclusion(leaf, 2.0, 8, proof, root)  # type: ignore[arg-type]
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf, 0, 1, [], b"")


def test_inclusion_proof_rejects_bad_index() -> None:
    for bad in (-1, 8, 100):
        with pytest.raises(IndexError):
            inclusion_proof(LEAF_INPUTS, bad)
    with pytest.raises(IndexError):
        inclusion_proof([], 0)


# ------------------------------------------------------------------------ vectors


def test_leaf_size_constants() -> None:
    assert LEAF_VALUES == 1024
    assert LEAF_BYTES == 8192


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (0, []),
        (1, [8]),
        (1023, [8184]),
        (1024, [8192]),
        (1025, [8192, 8]),
        (3000, [8192, 8192, 7616]),
    ],
)
def test_vector_leaves(n: int, sizes: list[int]) -> None:
    v = np.arange(n, dtype=np.float64)
    leaves = vector_leaves(v)
    assert [len(x) for x in leaves] == sizes
    assert b"".join(leaves) == canonical_f64_bytes(v)
    assert vector_root(v) == merkle_root(leaves)


def test_vector_root_by_hand() -> None:
    # 2500 values -> leaves of 1024, 1024, 452 values -> MTH = node(node(L0, L1), L2).
    v = np.arange(2500, dtype=np.float64) * 0.5 - 3.0
    data = struct.pack("<2500d", *v)
    lh = [hashlib.sha256(b"\x00" + data[i : i + 8192]).digest() for i in (0, 8192, 16384)]
    left = hashlib.sha256(b"\x01" + lh[0] + lh[1]).digest()
    expected = hashlib.sha256(b"\x01" + left + lh[2]).digest()
    assert vector_root(v) == expected
    assert vector_root([]) == EMPTY_ROOT


def test_vector_root_normalises_and_rejects_like_canonical_bytes() -> None:
    assert vector_root([-0.0, 1.0]) == vector_root([0.0, 1.0])
    with pytest.raises(ValueError, match="index 1"):
        vector_root([0.0, float("nan")])
    # A 2-D array is committed as its C-order flattening.
    m = np.arange(2048.0).reshape(2, 1024)
    assert vector_root(m) == vector_root(m.ravel())


def test_vector_root_of_a_million_values_is_fast() -> None:
    v = np.random.default_rng(3).standard_normal(1_000_000)
    vector_root(v)  # warm-up
    start = time.perf_counter()
    root = vector_root(v)
    elapsed = time.perf_counter() - start
    assert len(root) == 32
    assert elapsed < 0.5, f"vector_root of 1e6 values took {elapsed:.3f} s"


@pytest.mark.parametrize("n", [1, 5, 1024, 1025, 4096, 5000])
def test_open_and_verify_elements(n: int) -> None:
    v = np.random.default_rng(n).standard_normal(n)
    root = vector_root(v)
    for j in sorted({0, 1, n // 2, 1023, 1024, 2047, n - 1} & set(range(n))):
        opening = open_element(v, j)
        assert opening.element_index == j
        assert opening.leaf_index == j // 1024
        assert opening.offset == j % 1024
        assert opening.tree_size == len(vector_leaves(v))
        assert verify_element(opening, root) == v[j]


def test_open_element_rejects_bad_index() -> None:
    v = np.zeros(10)
    for bad in (-1, 10):
        with pytest.raises(IndexError):
            open_element(v, bad)
    with pytest.raises(IndexError):
        open_element([], 0)


def _replace(o: ElementOpening, **kw: object) -> ElementOpening:
    fields = {
        "chunk": o.chunk,
        "leaf_index": o.leaf_index,
        "proof": o.proof,
        "tree_size": o.tree_size,
        "offset": o.offset,
    }
    fields.update(kw)
    return ElementOpening(**fields)  # type: ignore[arg-type]


def test_tampered_openings_fail() -> None:
    v = np.random.default_rng(7).standard_normal(5000)
    root = vector_root(v)
    o = open_element(v, 2100)
    value_bytes = slice(8 * o.offset, 8 * o.offset + 8)
    for i in range(value_bytes.start, value_bytes.stop):  # every byte of the value itself
        chunk = bytearray(o.chunk)
        chunk[i] ^= 0x01
        with pytest.raises(VerificationError, match="inclusion proof"):
            verify_element(_replace(o, chunk=bytes(chunk)), root)
    for k in range(len(o.proof)):
        for i in range(32):
            p = bytearray(o.proof[k])
            p[i] ^= 0x01
            proof = (*o.proof[:k], bytes(p), *o.proof[k + 1 :])
            with pytest.raises(VerificationError):
                verify_element(_replace(o, proof=proof), root)
    for i in range(32):
        bad_root = bytearray(root)
        bad_root[i] ^= 0x01
        with pytest.raises(VerificationError):
            verify_element(o, bytes(bad_root))
    with pytest.raises(VerificationError):
        verify_element(_replace(o, leaf_index=1), root)
    # A different tree size with the same path shape is only caught with the length.
    assert verify_element(_replace(o, tree_size=o.tree_size + 1), root) == v[2100]
    assert verify_element(o, root, n_values=5000) == v[2100]
    with pytest.raises(VerificationError, match="committed length"):
        verify_element(_replace(o, tree_size=o.tree_size + 1), root, n_values=5000)
    for wrong_length in (4096, 6145):
        with pytest.raises(VerificationError, match="committed length"):
            verify_element(o, root, n_values=wrong_length)
    with pytest.raises(VerificationError, match="offset"):
        verify_element(_replace(o, offset=1024), root)
    with pytest.raises(VerificationError, match="offset"):
        verify_element(_replace(o, offset=-1), root)


def test_malformed_chunks_fail_before_hashing() -> None:
    v = np.random.default_rng(8).standard_normal(3000)
    root = vector_root(v)
    o = open_element(v, 10)
    with pytest.raises(VerificationError, match="only the last leaf"):
        verify_element(_replace(o, chunk=o.chunk[:-8]), root)
    with pytest.raises(VerificationError, match="float64 values"):
        verify_element(_replace(o, chunk=o.chunk[:-3]), root)
    with pytest.raises(VerificationError, match="float64 values"):
        verify_element(_replace(o, chunk=b""), root)
    with pytest.raises(VerificationError, match="float64 values"):
        verify_element(_replace(o, chunk=o.chunk + b"\x00" * 8), root)
    nan_chunk = o.chunk[:80] + struct.pack("<d", float("nan")) + o.chunk[88:]
    with pytest.raises(VerificationError, match="canonical"):
        verify_element(_replace(o, chunk=nan_chunk), root)


def test_last_leaf_may_be_short() -> None:
    v = np.arange(1030.0)
    o = open_element(v, 1029)
    assert len(o.chunk) == 48
    assert verify_element(o, vector_root(v)) == 1029.0
    assert verify_element(o, vector_root(v), n_values=1030) == 1029.0
    with pytest.raises(VerificationError, match="last leaf"):
        verify_element(o, vector_root(v), n_values=1031)


# ---------------------------------------------------------------------- streaming


def _stream(data: bytes, chunk_values: Sequence[int]) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    for c in chunk_values:
        out.append((offset, data[8 * offset : 8 * (offset + c)]))
        offset += c
    return out


@pytest.mark.parametrize(
    ("n", "chunks"),
    [
        (0, []),
        (1, [1]),
        (1024, [1024]),
        (3000, [1024, 1024, 952]),
        (3000, [2048, 952]),
        (3000, [3000]),
        (10_000, [4096, 1024, 3072, 1808]),
        (8192, [1024] * 8),
        (7 * 1024, [1024] * 7),
    ],
)
def test_streaming_root_matches_vector_root(n: int, chunks: list[int]) -> None:
    v = np.random.default_rng(n).standard_normal(n)
    data = canonical_f64_bytes(v)
    s = StreamingVectorRoot(n, keep_values=True)
    for offset, chunk in _stream(data, chunks):
        assert not s.complete
        s.update(offset, chunk)
    assert s.complete
    assert s.received == n
    assert s.root() == vector_root(v)
    np.testing.assert_array_equal(s.values(), v)


def test_streaming_random_leaf_aligned_chunkings() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(1, 40 * 1024))
        v = rng.standard_normal(n)
        data = canonical_f64_bytes(v)
        s = StreamingVectorRoot(n)
        offset = 0
        while offset < n:
            c = 1024 * int(rng.integers(1, 6))
            if offset + c > n:
                c = n - offset
            s.update(offset, data[8 * offset : 8 * (offset + c)])
            offset += c
        assert s.root() == vector_root(v)


def test_streaming_rejects_protocol_violations() -> None:
    v = np.random.default_rng(12).standard_normal(3000)
    data = canonical_f64_bytes(v)
    s = StreamingVectorRoot(3000)
    with pytest.raises(VerificationError, match="contiguous"):
        s.update(1024, data[8192:16384])  # gap
    with pytest.raises(VerificationError, match="whole leaves"):
        s.update(0, data[: 8 * 1000])  # not leaf-aligned and not final
    with pytest.raises(VerificationError, match="float64"):
        s.update(0, data[:8195])  # not a multiple of 8 bytes
    with pytest.raises(VerificationError, match="float64"):
        s.update(0, b"")
    with pytest.raises(VerificationError, match="runs past"):
        s.update(0, data + b"\x00" * 8)
    nan = data[:16] + struct.pack("<d", float("inf")) + data[24:8192]
    with pytest.raises(VerificationError, match="index 2"):
        s.update(0, nan)
    negzero = struct.pack("<d", -0.0) + data[8:8192]
    with pytest.raises(VerificationError, match=r"-0\.0"):
        s.update(0, negzero)
    with pytest.raises(VerificationError, match="incomplete"):
        s.root()
    # Rejected chunks changed nothing: the honest stream still gives the right root.
    assert s.received == 0
    s.update(0, data[:8192])
    with pytest.raises(VerificationError, match="contiguous"):
        s.update(0, data[:8192])  # replay / overlap
    with pytest.raises(VerificationError, match="incomplete"):
        s.root()
    s.update(1024, data[8192:])
    assert s.root() == vector_root(v)
    with pytest.raises(VerificationError, match="runs past"):
        s.update(3000, data[:8])


def test_streaming_constructor_and_values_guards() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        StreamingVectorRoot(-1)
    with pytest.raises(TypeError):
        StreamingVectorRoot(2.0)  # type: ignore[arg-type]
    s = StreamingVectorRoot(0)
    assert s.root() == EMPTY_ROOT
    with pytest.raises(RuntimeError, match="keep_values"):
        s.values()
    s2 = StreamingVectorRoot(5, keep_values=True)
    with pytest.raises(VerificationError, match="incomplete"):
        s2.values()

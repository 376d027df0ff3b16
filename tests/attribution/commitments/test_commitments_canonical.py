"""Canonical float64 bytes, vector headers and digests (attribution.commitments.canonical)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.commitments import (
    canonical_f64_bytes,
    decode_f64,
    domain_tag,
    vector_digest,
    vector_header,
)


def test_bytes_are_little_endian_binary64() -> None:
    assert canonical_f64_bytes([1.0]) == bytes.fromhex("000000000000f03f")
    assert canonical_f64_bytes([1.0, -2.5]) == struct.pack("<2d", 1.0, -2.5)
    assert canonical_f64_bytes([]) == b""
    assert canonical_f64_bytes(3.0) == struct.pack("<d", 3.0)  # 0-d input


def test_matches_numpy_recipe_for_finite_input() -> None:
    v = np.random.default_rng(1).standard_normal(1000)
    assert canonical_f64_bytes(v) == np.ascontiguousarray(v, dtype="<f8").tobytes()


def test_negative_zero_is_normalised() -> None:
    assert canonical_f64_bytes([-0.0, 0.0, -1.0]) == struct.pack("<3d", 0.0, 0.0, -1.0)
    assert canonical_f64_bytes(np.array([-0.0]))[7] == 0  # sign bit cleared
    assert vector_digest("t", [-0.0]) == vector_digest("t", [0.0])


def test_layout_independent_of_memory_order_and_byte_order() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    expected = struct.pack("<12d", *range(12))
    assert canonical_f64_bytes(np.asfortranarray(a)) == expected  # C order, not memory order
    assert canonical_f64_bytes(a.astype(">f8")) == expected  # big-endian input
    assert canonical_f64_bytes(np.arange(24, dtype=np.float64)[::2]) == struct.pack(
        "<12d", *range(0, 24, 2)
    )
    assert canonical_f64_bytes(a.astype(np.float32)) == expected
    assert canonical_f64_bytes(np.arange(12).reshape(3, 4)) == expected  # integers
    assert canonical_f64_bytes([True, False]) == struct.pack("<2d", 1.0, 0.0)


def test_input_is_not_modified() -> None:
    v = np.array([-0.0, 1.0])
    canonical_f64_bytes(v)
    assert np.signbit(v[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_naming_first_index(bad: float) -> None:
    v = np.zeros(10)
    v[3] = bad
    v[7] = np.nan
    with pytest.raises(ValueError, match=r"at index 3\b"):
        canonical_f64_bytes(v)
    with pytest.raises(ValueError, match=r"at index 3\b"):
        vector_digest("t", v)


def test_non_finite_in_matrix_names_multi_index() -> None:
    m = np.zeros((3, 4))
    m[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"\(2, 1\) \(flat index 9\)"):
        canonical_f64_bytes(m)


def test_non_finite_in_float32_rejected() -> None:
    with pytest.raises(ValueError, match="index 1"):
        canonical_f64_bytes(np.array([0.0, np.nan], dtype=np.float32))


@pytest.mark.parametrize(
    "bad",
    [np.array([1 + 2j]), np.array(["a"]), np.array([object()], dtype=object)],
)
def test_non_real_dtypes_rejected(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="real numeric"):
        canonical_f64_bytes(bad)


def test_integers_beyond_2_53_rejected() -> None:
    assert canonical_f64_bytes(np.array([2**53, -(2**53)])) == struct.pack(
        "<2d", 2.0**53, -(2.0**53)
    )
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_f64_bytes(np.array([2**53 + 1]))
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_f64_bytes(np.array([2**64 - 1], dtype=np.uint64))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="longdouble is float64 here")
def test_extended_precision_must_be_exact() -> None:
    assert canonical_f64_bytes(np.array([0.5], dtype=np.longdouble)) == struct.pack("<d", 0.5)
    inexact = np.longdouble(1) + np.longdouble(2) ** -60
    with pytest.raises(ValueError, match="not exactly representable"):
        canonical_f64_bytes(np.array([inexact]))
    with pytest.raises(ValueError, match="not exactly representable"):
        canonical_f64_bytes(np.array([np.finfo(np.longdouble).max]))


def test_header_layout() -> None:
    assert vector_header("x", (2,)) == (
        b"attribution.v1/x\x00"
        + b"\x01"
        + (2).to_bytes(8, "big")
        + b"\x01"
        + (2).to_bytes(8, "big")
    )
    assert vector_header("x", (2,)).hex() == (
        "6174747269627574696f6e2e76312f78" + "00" + "01" + "0000000000000002" + "010000000000000002"
    )
    assert vector_header("attr", 5) == vector_header("attr", (5,))
    assert vector_header("m", (2, 3)) == (
        b"attribution.v1/m\x00\x01" + struct.pack(">QBQQ", 6, 2, 2, 3)
    )
    assert vector_header("s", ()) == b"attribution.v1/s\x00\x01" + struct.pack(">QB", 1, 0)
    assert vector_header("e", (0,)) == b"attribution.v1/e\x00\x01" + struct.pack(">QBQ", 0, 1, 0)


@pytest.mark.parametrize("shape", [(-1,), (2**64,), (1.5,), (True,)])
def test_header_rejects_bad_shapes(shape: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        vector_header("t", shape)  # type: ignore[arg-type]


def test_header_rejects_element_count_overflow() -> None:
    with pytest.raises(ValueError, match="u64"):
        vector_header("t", (2**32, 2**32))


@pytest.mark.parametrize("tag", ["", "a b", "a\x00b", "caf\u00e9", "x" * 201, "tab\t"])
def test_bad_tags_rejected(tag: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        domain_tag(tag)
    with pytest.raises(ValueError, match="tag"):
        vector_header(tag, (1,))


def test_domain_tag() -> None:
    assert domain_tag("commit") == b"attribution.v1/commit\x00"
    assert domain_tag("a/b.c-d_e:1") == b"attribution.v1/a/b.c-d_e:1\x00"
    with pytest.raises(TypeError):
        domain_tag(b"x")  # type: ignore[arg-type]


def test_digest_formula() -> None:
    v = np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5
    expected = hashlib.sha256(
        vector_header("attribution", (2, 3)) + struct.pack("<6d", *(np.arange(6) - 2.5))
    ).digest()
    assert vector_digest("attribution", v) == expected


def test_digest_binds_tag_and_shape() -> None:
    v = np.arange(6, dtype=np.float64)
    digests = {
        vector_digest("a", v),
        vector_digest("b", v),
        vector_digest("a", v.reshape(2, 3)),
        vector_digest("a", v.reshape(3, 2)),
        vector_digest("a", v.reshape(6, 1)),
    }
    assert len(digests) == 5


def test_decode_round_trip() -> None:
    v = np.random.default_rng(2).standard_normal(100)
    out = decode_f64(canonical_f64_bytes(v))
    np.testing.assert_array_equal(out, v)
    assert out.dtype == np.float64
    out[0] = 1.0  # a writable copy
    assert decode_f64(b"").shape == (0,)


def test_decode_checks_length_finiteness_and_negative_zero() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        decode_f64(b"\x00" * 12)
    with pytest.raises(ValueError, match=r"index 2\b"):
        decode_f64(struct.pack("<4d", 0.0, 1.0, float("inf"), float("nan")))
    with pytest.raises(ValueError, match=r"-0\.0 at index 1\b"):
        decode_f64(struct.pack("<2d", 1.0, -0.0))


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=50))
def test_round_trip_property(values: list[float]) -> None:
    data = canonical_f64_bytes(values)
    assert len(data) == 8 * len(values)
    assert canonical_f64_bytes(decode_f64(data)) == data
    np.testing.assert_array_equal(decode_f64(data), np.array(values, dtype=np.float64) + 0.0)

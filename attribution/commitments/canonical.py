"""Canonical bytes of float64 vectors: the exact bytes every hash in the protocol covers.

Byte layout (all integers are unsigned and **big-endian**; only the float payload is
little-endian)::

    domain_tag(tag) = "attribution.v1/" || tag || 0x00
        tag: 1..200 printable ASCII characters 0x21..0x7E (no space, no NUL), so the
        NUL terminator makes the prefix unambiguous.

    payload(v)      = IEEE-754 binary64, little-endian, C (row-major) order, 8 bytes per
                      element; every element finite; -0.0 written as +0.0 (all-zero bytes)

    header(tag, shape) = domain_tag(tag)
                      || u8(DTYPE_F64LE)                  0x01
                      || u64be(n)                         n = product of shape (1 for ())
                      || u8(ndim)                         number of dimensions, 0..64
                      || u64be(shape[0]) || ... || u64be(shape[ndim-1])

    vector_digest(tag, v) = SHA-256(header(tag, shape(v)) || payload(v))

Example: ``vector_header("x", (2,))`` is the 35 bytes
``"attribution.v1/x" 00 01 0000000000000002 01 0000000000000002``.

Why these rules (docs/protocol.md section 3): ``-0.0`` and ``+0.0`` compare equal but have
different bytes, NaN has many bit patterns, and ``np.save``/pickle/``tolist()`` output is
not stable across versions, so none of them may be hashed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.encoding import DOMAIN as DOMAIN  # re-export; defined once there
from attribution.encoding import domain_prefix

DTYPE_F64LE = 0x01
"""Dtype code in :func:`vector_header`: IEEE-754 binary64, little-endian."""

MAX_TAG_LENGTH = 200
_MAX_NDIM = 64
_U64_LIMIT = 1 << 64
_MAX_EXACT_INT = 1 << 53

F64Array = npt.NDArray[np.float64]


def domain_tag(tag: str) -> bytes:
    """``b"attribution.v1/" + tag + b"\\x00"`` after checking that ``tag`` is well formed.

    A tag is 1 to 200 printable ASCII characters (0x21..0x7E): no spaces, no NUL, nothing
    whose encoding could differ between languages.
    """
    if not isinstance(tag, str):
        raise TypeError(f"tag must be str, got {type(tag).__name__}")
    if not 1 <= len(tag) <= MAX_TAG_LENGTH:
        raise ValueError(f"tag must have 1..{MAX_TAG_LENGTH} characters, got {len(tag)}")
    bad = [c for c in tag if not 0x21 <= ord(c) <= 0x7E]
    if bad:
        raise ValueError(f"tag {tag!r} contains {bad[0]!r}; only printable ASCII without spaces")
    return domain_prefix(tag)


def _format_index(flat: int, shape: tuple[int, ...]) -> str:
    if len(shape) <= 1:
        return str(flat)
    multi = tuple(int(i) for i in np.unravel_index(flat, shape))
    return f"{multi} (flat index {flat})"


def _check_finite(a: npt.NDArray[Any]) -> None:
    finite = np.isfinite(a)
    if not finite.all():
        flat = int(np.flatnonzero(~finite.reshape(-1))[0])
        value = float(a.reshape(-1)[flat])
        raise ValueError(
            f"non-finite value {value} at index {_format_index(flat, a.shape)}; "
            "NaN and +-inf have no canonical encoding"
        )


def canonical_f64(v: npt.ArrayLike) -> F64Array:
    """``v`` as a C-contiguous little-endian float64 array, checked and normalised.

    Accepts float, integer and boolean input whose conversion to float64 is exact
    (integers up to 2**53 in magnitude; extended-precision floats only if every value is
    a float64). Raises :class:`TypeError` for other dtypes (complex, object,
    strings) and :class:`ValueError` naming the first NaN/+-inf. ``-0.0`` becomes ``+0.0``.
    The result is a fresh array (never a view of ``v``).
    """
    a = np.asarray(v)
    kind = a.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"expected a real numeric array, got dtype {a.dtype}")
    if (
        kind in "iu"
        and a.size
        and (int(a.min()) < -_MAX_EXACT_INT or int(a.max()) > _MAX_EXACT_INT)
    ):
        raise ValueError("integer values beyond 2**53 are not exactly representable as float64")
    if kind == "f":
        _check_finite(a)
    # x + 0.0 maps -0.0 to +0.0 (round-to-nearest) and leaves every other value unchanged.
    with np.errstate(over="ignore"):  # overflow of extended precision is caught below
        out = np.ascontiguousarray(a, dtype="<f8") + 0.0
    if kind == "f" and a.dtype.itemsize > 8 and not np.array_equal(out, a):
        raise ValueError(f"{a.dtype} values are not exactly representable as float64")
    return np.ascontiguousarray(out, dtype="<f8")


def canonical_f64_bytes(v: npt.ArrayLike) -> bytes:
    """The canonical payload of ``v``: ``8 * v.size`` bytes of little-endian binary64.

    Elements in C (row-major) order, finite, ``-0.0`` normalised to ``+0.0``; raises
    :class:`ValueError` naming the first NaN/+-inf index (see :func:`canonical_f64`).
    Equals ``np.ascontiguousarray(v + 0.0, dtype='<f8').tobytes()`` for valid input.
    """
    return canonical_f64(v).tobytes(order="C")


def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    dims: tuple[int, ...] = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    if len(dims) > _MAX_NDIM:
        raise ValueError(f"at most {_MAX_NDIM} dimensions, got {len(dims)}")
    for d in dims:
        if not isinstance(d, int | np.integer) or isinstance(d, bool) or not 0 <= d < _U64_LIMIT:
            raise ValueError(f"shape entries must be integers in [0, 2**64), got {d!r}")
    return tuple(int(d) for d in dims)


def vector_header(tag: str, shape: int | Sequence[int]) -> bytes:
    """``domain_tag(tag) || u8(0x01) || u64be(n) || u8(ndim) || u64be(dim)...``.

    ``n`` is the number of elements (product of ``shape``; 1 for the scalar shape ``()``);
    an ``int`` shape means a 1-D vector of that length.
    """
    dims = _shape_tuple(shape)
    n = 1
    for d in dims:
        n *= d
    if n >= _U64_LIMIT:
        raise ValueError(f"element count {n} does not fit in u64")
    return (
        domain_tag(tag)
        + struct.pack(">BQB", DTYPE_F64LE, n, len(dims))
        + b"".join(struct.pack(">Q", d) for d in dims)
    )


def vector_digest(tag: str, v: npt.ArrayLike) -> bytes:
    """``SHA-256(vector_header(tag, shape(v)) || canonical_f64_bytes(v))``, 32 bytes."""
    a = canonical_f64(v)
    h = hashlib.sha256(vector_header(tag, a.shape))
    h.update(a.data)
    return h.digest()


def decode_f64(data: bytes) -> F64Array:
    """Inverse of :func:`canonical_f64_bytes` for 1-D data: bytes -> float64 array.

    Checks ``len(data) % 8 == 0``, that every value is finite, and that no element is
    ``-0.0`` (bytes ``00..0080``), which canonical bytes never contain; so for every
    accepted input ``canonical_f64_bytes(decode_f64(data)) == data``. Raises
    :class:`ValueError` naming the first offending element. Returns a writable copy in
    native byte order.
    """
    if len(data) % 8:
        raise ValueError(f"float64 data must be a multiple of 8 bytes long, got {len(data)}")
    a = np.frombuffer(data, dtype="<f8")
    _check_finite(a)
    negzero = (a == 0.0) & np.signbit(a)
    if negzero.any():
        raise ValueError(
            f"non-canonical -0.0 at index {int(np.flatnonzero(negzero)[0])}; "
            "canonical bytes encode zero as +0.0"
        )
    return a.astype(np.float64)

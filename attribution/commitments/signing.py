"""Ed25519 signatures with domain separation (docs/protocol.md section 8.3); key files: keyfiles.

Signed message (all integers unsigned big-endian)::

    message(tag, f_1, ..., f_k) = "attribution.v1/" || tag || 0x00
                                  || u64be(len(f_1)) || f_1 || ... || u64be(len(f_k)) || f_k

``tag`` is 1..200 printable ASCII characters without spaces (e.g. ``"commit"``,
``"verdict"``); the NUL ends it. Each field is length-prefixed, so no two different
``(tag, fields)`` give the same message: a signature made for one kind of statement can
never be replayed as another. The signature is plain Ed25519 (RFC 8032, pure, no
pre-hash) over these bytes: 64 bytes, deterministic.

Keys: public keys travel as the raw 32 bytes; ``fingerprint = hex(SHA-256(raw public
key))`` (64 lowercase hex digits). Private keys are stored as PKCS#8 PEM, encrypted with
the best available scheme when a passphrase is given, in files of mode 0600.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from attribution.commitments.canonical import domain_tag
from attribution.errors import UsageError

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def signing_message(tag: str, *fields: bytes) -> bytes:
    """The exact bytes that are signed for ``tag`` and ``fields`` (see module docstring)."""
    parts = [domain_tag(tag)]
    for f in fields:
        if not isinstance(f, bytes):
            raise TypeError(f"signed fields must be bytes, got {type(f).__name__}")
        parts.append(struct.pack(">Q", len(f)))
        parts.append(f)
    return b"".join(parts)


def fingerprint(public_key_raw: bytes) -> str:
    """``SHA-256(public_key_raw)`` as 64 lowercase hex digits."""
    if len(public_key_raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"Ed25519 public key must be 32 bytes, got {len(public_key_raw)}")
    return hashlib.sha256(public_key_raw).hexdigest()


def verify(public_key_raw: bytes, signature: bytes, tag: str, *fields: bytes) -> bool:
    """True iff ``signature`` is the Ed25519 signature of ``signing_message(tag, *fields)``
    by the key whose raw 32-byte public key is ``public_key_raw``.

    Returns ``False`` (never raises) for a wrong signature, a signature or key of the
    wrong length, or bytes that are not a valid public key. An invalid ``tag`` or
    non-bytes field is a programming error and raises.
    """
    message = signing_message(tag, *fields)
    if len(public_key_raw) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class SigningKey:
    """An Ed25519 private key that signs domain-separated messages."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("SigningKey wraps an Ed25519PrivateKey")
        self._key = private_key

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose 32-byte Ed25519 private seed is ``seed`` (reproducible simulations
        and tests only; real keys come from :meth:`generate`)."""
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM private key (encrypted iff ``passphrase`` is given).

        Raises :class:`~attribution.errors.UsageError` for a wrong or missing passphrase,
        unreadable PEM, or a key that is not Ed25519.
        """
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError as exc:  # encrypted without passphrase, or the reverse
            raise UsageError(f"cannot load private key: {exc}") from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"cannot load private key (wrong passphrase?): {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(f"private key is {type(key).__name__}, expected Ed25519")
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM; encrypted with ``BestAvailableEncryption`` if ``passphrase`` is given."""
        if passphrase is not None and not passphrase:
            raise ValueError("passphrase must not be empty; pass None for no encryption")
        algorithm: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if passphrase is None
            else serialization.BestAvailableEncryption(passphrase)
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
        )

    @property
    def public_key_raw(self) -> bytes:
        """The raw 32-byte public key."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def fingerprint(self) -> str:
        """``hex(SHA-256(public_key_raw))``."""
        return fingerprint(self.public_key_raw)

    def sign(self, tag: str, *fields: bytes) -> bytes:
        """64-byte Ed25519 signature of ``signing_message(tag, *fields)``."""
        return self._key.sign(signing_message(tag, *fields))

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.fingerprint[:16]}...)"

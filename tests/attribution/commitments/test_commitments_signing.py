"""Domain-separated Ed25519 and private-key files (attribution.commitments.signing)."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from attribution.commitments import (
    SigningKey,
    fingerprint,
    signing_message,
    verify,
)
from attribution.errors import UsageError
from attribution.keyfiles import load_private_key, save_private_key

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file permissions")

FIELDS = (b"\x11" * 32, b"root" * 8, b"")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_signing_message_layout() -> None:
    assert signing_message("commit") == b"attribution.v1/commit\x00"
    assert signing_message("commit", b"ab", b"") == (
        b"attribution.v1/commit\x00"
        + b"\x00\x00\x00\x00\x00\x00\x00\x02ab"
        + b"\x00\x00\x00\x00\x00\x00\x00\x00"
    )
    with pytest.raises(ValueError, match="tag"):
        signing_message("with space", b"x")
    with pytest.raises(TypeError, match="bytes"):
        signing_message("commit", "text")  # type: ignore[arg-type]


def test_sign_and_verify(key: SigningKey) -> None:
    sig = key.sign("commit", *FIELDS)
    assert len(sig) == 64
    assert sig == key.sign("commit", *FIELDS)  # Ed25519 is deterministic
    assert verify(key.public_key_raw, sig, "commit", *FIELDS)


def test_signature_is_plain_ed25519_over_the_message(key: SigningKey) -> None:
    # Interoperability: any Ed25519 library verifies sig over signing_message(...).
    sig = key.sign("verdict", b"h_final", b"\x01")
    message = b"attribution.v1/verdict\x00" + struct.pack(">Q", 7) + b"h_final"
    message += struct.pack(">Q", 1) + b"\x01"
    Ed25519PublicKey.from_public_bytes(key.public_key_raw).verify(sig, message)


def test_tampering_fails(key: SigningKey) -> None:
    pub = key.public_key_raw
    sig = key.sign("commit", *FIELDS)
    for i in range(len(sig)):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not verify(pub, bytes(bad), "commit", *FIELDS)
    for k, field in enumerate(FIELDS):
        for i in range(len(field)):
            f = bytearray(field)
            f[i] ^= 0x01
            fields = (*FIELDS[:k], bytes(f), *FIELDS[k + 1 :])
            assert not verify(pub, sig, "commit", *fields)
        longer = (*FIELDS[:k], field + b"\x00", *FIELDS[k + 1 :])
        assert not verify(pub, sig, "commit", *longer)
    assert not verify(pub, sig, "commitx", *FIELDS)  # other domain tag
    assert not verify(pub, sig, "verdict", *FIELDS)
    assert not verify(pub, sig, "commit", *FIELDS, b"")  # extra empty field
    assert not verify(pub, sig, "commit", *FIELDS[:-1])
    assert not verify(pub, sig, "commit", FIELDS[0] + FIELDS[1], FIELDS[2])  # re-split
    assert not verify(SigningKey.generate().public_key_raw, sig, "commit", *FIELDS)


def test_field_boundaries_are_bound(key: SigningKey) -> None:
    sig = key.sign("t", b"ab", b"c")
    assert not verify(key.public_key_raw, sig, "t", b"a", b"bc")
    assert not verify(key.public_key_raw, sig, "t", b"abc")


def test_malformed_keys_and_signatures_give_false(key: SigningKey) -> None:
    sig = key.sign("commit", b"x")
    pub = key.public_key_raw
    assert not verify(pub[:31], sig, "commit", b"x")
    assert not verify(pub + b"\x00", sig, "commit", b"x")
    assert not verify(pub, sig[:63], "commit", b"x")
    assert not verify(pub, sig + b"\x00", "commit", b"x")
    assert not verify(b"\x00" * 32, b"\x00" * 64, "commit", b"x")


def test_public_key_and_fingerprint(key: SigningKey) -> None:
    pub = key.public_key_raw
    assert len(pub) == 32
    assert key.fingerprint == hashlib.sha256(pub).hexdigest() == fingerprint(pub)
    assert len(key.fingerprint) == 64
    assert key.fingerprint[:16] in repr(key)
    with pytest.raises(ValueError, match="32 bytes"):
        fingerprint(pub[:-1])


def test_wraps_existing_key() -> None:
    raw = Ed25519PrivateKey.generate()
    k = SigningKey(raw)
    assert k.public_key_raw == raw.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    with pytest.raises(TypeError):
        SigningKey(generate_private_key(SECP256R1()))  # type: ignore[arg-type]


def test_pem_round_trip(key: SigningKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SigningKey.from_pem(pem).public_key_raw == key.public_key_raw
    enc = key.to_pem(b"correct horse")
    assert enc.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert SigningKey.from_pem(enc, b"correct horse").public_key_raw == key.public_key_raw
    with pytest.raises(ValueError, match="empty"):
        key.to_pem(b"")


def test_pem_errors_are_usage_errors(key: SigningKey) -> None:
    enc = key.to_pem(b"pw")
    with pytest.raises(UsageError, match="wrong passphrase"):
        SigningKey.from_pem(enc, b"other")
    with pytest.raises(UsageError, match="encrypted"):
        SigningKey.from_pem(enc)
    with pytest.raises(UsageError, match="not encrypted"):
        SigningKey.from_pem(key.to_pem(), b"pw")
    with pytest.raises(UsageError):
        SigningKey.from_pem(b"not a pem")
    ec_pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(UsageError, match="Ed25519"):
        SigningKey.from_pem(ec_pem)


@posix_only
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_save_writes_mode_0600_whatever_the_umask(
    key: SigningKey, tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "key.pem"
    old = os.umask(umask)
    try:
        save_private_key(path, key)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no temp files left
    assert load_private_key(path).public_key_raw == key.public_key_raw


@posix_only
def test_save_with_passphrase(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    save_private_key(path, key, passphrase=b"s3cret")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key(path, b"s3cret").fingerprint == key.fingerprint
    with pytest.raises(UsageError):
        load_private_key(path, b"wrong")


@posix_only
def test_save_refuses_to_overwrite_unless_asked(
    key: SigningKey, tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "key.pem"
    save_private_key(path, key)
    other = SigningKey.generate()
    with pytest.raises(UsageError, match="already exists"):
        save_private_key(path, other)
    assert load_private_key(path).fingerprint == key.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]
    save_private_key(path, other, overwrite=True)
    assert load_private_key(path).fingerprint == other.fingerprint
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


@posix_only
def test_overwrite_replaces_a_world_readable_file_with_a_private_one(
    key: SigningKey, tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    save_private_key(path, key, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700, 0o666, 0o601])
def test_load_refuses_wider_permissions(key: SigningKey, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key.pem"
    save_private_key(path, key)
    path.chmod(mode)
    with pytest.raises(UsageError, match=f"permissions {mode:04o}.*chmod 600"):
        load_private_key(path)


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_permissions(key: SigningKey, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key.pem"
    save_private_key(path, key)
    path.chmod(mode)
    assert load_private_key(path).public_key_raw == key.public_key_raw


@posix_only
def test_load_refuses_missing_directories_and_symlinks(key: SigningKey, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_private_key(tmp_path / "missing.pem")
    with pytest.raises(UsageError):
        load_private_key(tmp_path)
    real = tmp_path / "real.pem"
    save_private_key(real, key)
    link = tmp_path / "link.pem"
    link.symlink_to(real)
    with pytest.raises(UsageError):
        load_private_key(link)


@posix_only
def test_save_into_missing_directory_fails_cleanly(key: SigningKey, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write"):
        save_private_key(tmp_path / "nope" / "key.pem", key)
    assert list(tmp_path.iterdir()) == []

"""Ed25519 private-key files: PKCS#8 PEM, mode 0600, refused when readable by others.

Kept apart from :mod:`attribution.commitments.signing` so that the signing primitives
(and the protocol engine that uses them) do no file I/O.
"""

from __future__ import annotations

import os

from attribution.commitments.signing import SigningKey
from attribution.files import read_private_file, write_private_file


def save_private_key(
    path: str | os.PathLike[str],
    key: SigningKey,
    *,
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``key`` as PKCS#8 PEM to ``path`` with mode 0600, atomically
    (:func:`attribution.files.write_private_file`: never readable by group or
    others, not even briefly). An existing ``path`` is kept (``UsageError``) unless
    ``overwrite=True``; then it is replaced atomically.
    """
    write_private_file(path, key.to_pem(passphrase), what="private key", overwrite=overwrite)


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> SigningKey:
    """Load a private key written by :func:`save_private_key`.

    Refuses (``UsageError``) a path that is missing, not a regular file, or whose
    permissions grant anything beyond owner read/write (any bit outside 0600, e.g. 0640,
    0644 or 0700): a key others could have read must be considered leaked. The
    permissions are checked on the opened file descriptor, so the file cannot be swapped
    between the check and the read.
    """
    return SigningKey.from_pem(read_private_file(path, what="private key"), passphrase)


def load_or_create_key(path: str | os.PathLike[str]) -> SigningKey:
    """The key in ``path``, created there (0600) on first use: a restarted Prover, or a
    resumed audit, signs with the key it started with."""
    if os.path.exists(path):
        return load_private_key(path)
    key = SigningKey.generate()
    save_private_key(path, key)
    return key

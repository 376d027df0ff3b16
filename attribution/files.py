"""Files only their owner may read: private keys, saved session secrets (mode 0600).

Writing: the bytes go to a new temporary file in the same directory, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (then ``fchmod`` 0600, whatever the
umask), so they are never readable by group or others, not even briefly; the file is
flushed and fsynced, then moved into place in one step and the directory fsynced. A crash
leaves either the old file or the new one, never a torn one.

Reading: a path that is missing, not a regular file, or whose permissions grant anything
beyond owner read/write (any bit outside 0600, e.g. 0640, 0644, 0700) is refused with a
:class:`~attribution.errors.UsageError`: a secret others could have read must be
considered leaked. The permissions are checked on the opened descriptor, so the file
cannot be swapped between the check and the read.

Sealed JSON (:func:`save_private_json`): saved state that must survive a crash and must
not be silently used when damaged carries a SHA-256 over its canonical JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, TypeVar

from attribution.encoding import canonical_json
from attribution.errors import StoreCorruptError, UsageError

PRIVATE_FILE_MODE = 0o600
R = TypeVar("R")


def write_private_file(
    path: str | os.PathLike[str], data: bytes, *, what: str, overwrite: bool = False
) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (see the module docstring).

    An existing ``path`` is kept (``UsageError``) unless ``overwrite=True``; then it is
    replaced atomically. ``what`` names the file in error messages ("private key").
    """
    target = Path(path)
    directory = target.parent
    tmp = directory / f".{target.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise UsageError(f"cannot write {what} to {target}: {exc.strerror}") from exc
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if target exists: no check-then-write race
            except FileExistsError as exc:
                raise UsageError(
                    f"{target} already exists; refusing to overwrite a {what}"
                ) from exc
            except OSError:  # file system without hard links: check, then rename
                if target.exists() or target.is_symlink():
                    raise UsageError(
                        f"{target} already exists; refusing to overwrite a {what}"
                    ) from None
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where unsupported)."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_private_file(path: str | os.PathLike[str], *, what: str) -> bytes:
    """The bytes of a 0600 file written by :func:`write_private_file` (see the module
    docstring for what is refused). ``what`` names the file in error messages."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as exc:
        raise UsageError(f"{what} file {p} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot open {what} file {p}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{what} {p} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "posix" and mode & ~PRIVATE_FILE_MODE:
            raise UsageError(
                f"{what} file {p} has permissions {mode:04o}, wider than 0600; "
                f"others may have read it. Restrict it with: chmod 600 {p}"
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _seal(kind: str, content: dict[str, Any]) -> str:
    body = canonical_json({"format": kind, "content": content}, allow_nan=True)
    return hashlib.sha256(body).hexdigest()


def save_private_json(
    path: str | os.PathLike[str], kind: str, content: dict[str, Any], *, what: str
) -> None:
    """Save ``content`` (JSON-able) as a 0600 file tagged ``kind`` with a SHA-256 seal over
    the canonical JSON (sorted keys, no spaces) of ``{"format": kind, "content": content}``;
    an existing file is replaced atomically."""
    record = {"format": kind, "content": content, "sha256": _seal(kind, content)}
    data = json.dumps(record, sort_keys=True, indent=1).encode()
    write_private_file(path, data, what=what, overwrite=True)


def load_private_json(path: str | os.PathLike[str], kind: str, *, what: str) -> dict[str, Any]:
    """The content saved by :func:`save_private_json`; a file of another kind, or whose seal
    does not match (a flipped byte, a torn edit), raises ``StoreCorruptError``."""
    raw = read_private_file(path, what=what)
    try:
        record = json.loads(raw)
        content = record["content"]
        ok = (
            isinstance(record, dict)
            and record.get("format") == kind
            and isinstance(content, dict)
            and hmac.compare_digest(str(record.get("sha256")), _seal(kind, content))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreCorruptError(f"{what} {path} is not valid JSON ({exc})") from exc
    if not ok:
        raise StoreCorruptError(f"{what} {path} is damaged (format or checksum mismatch)")
    return dict(content)


def record_to_json(record: Any, byte_fields: tuple[str, ...]) -> dict[str, Any]:
    """A dataclass as a JSON-able dict, its ``byte_fields`` as lowercase hex."""
    out: dict[str, Any] = dataclasses.asdict(record)
    for name in byte_fields:
        out[name] = out[name].hex()
    return out


def record_from_json(
    cls: type[R], data: dict[str, Any], byte_fields: tuple[str, ...], *, what: str
) -> R:
    """The inverse of :func:`record_to_json`: exactly the dataclass's fields, hex decoded;
    anything else raises ``StoreCorruptError``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if set(data) != names:
        raise StoreCorruptError(f"{what}: fields {sorted(data)} != {sorted(names)}")
    try:
        values = {k: bytes.fromhex(v) if k in byte_fields else v for k, v in data.items()}
    except (TypeError, ValueError) as exc:
        raise StoreCorruptError(f"{what}: {exc}") from exc
    return cls(**values)

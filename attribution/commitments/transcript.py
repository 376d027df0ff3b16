"""Hash-chained protocol transcript (docs/protocol.md section 3).

Chain (all integers unsigned big-endian)::

    h_0 = SHA-256("attribution.v1/transcript" || u32be(protocol_version) || session_id)
    h_i = SHA-256(h_{i-1} || u8(direction) || u32be(len(label)) || label
                  || u64be(len(msg)) || msg)                              i = 1, 2, ...

* ``"attribution.v1/transcript"`` is the 25 ASCII bytes, no terminator. ``protocol_version``
  is an integer (:data:`PROTOCOL_VERSION` = 1) written as 4 bytes; ``session_id`` is the
  raw session-id bytes (1..255 bytes). Because the prefix and the version have fixed
  widths, the remainder of the input is unambiguously the session id.
* ``direction``: 1 = Verifier -> Prover, 2 = Prover -> Verifier, 3 = local (a party's own
  step, e.g. the Verifier's decision), see :class:`Direction`.
* ``label``: UTF-8 bytes of the message label (e.g. ``"open"``); ``len`` counts bytes.
* ``msg``: the raw bytes exactly as sent (the envelope body), never a re-serialisation.

The report carries the final head; the full ordered log is stored next to it as JSON
Lines (:meth:`Transcript.to_jsonl`)::

    {"format":"attribution.v1/transcript","h0":"<hex>","protocol_version":1,"session_id":"<b64>"}
    {"direction":1,"head":"<hex h_1>","i":1,"label":"open","msg":"<b64>"}
    ...

one JSON object per line, keys sorted, no spaces, base64 = RFC 4648 standard alphabet with
padding, hashes in lowercase hex, ``"\\n"`` after every line. The stored heads are
redundant (anyone recomputes them); they let a reader name the first entry that was
altered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from attribution.commitments.errors import TranscriptError
from attribution.encoding import (
    DOMAIN,
    TAG_TRANSCRIPT,
    canonical_json,
    domain_hash,
    domain_prefix,
)
from attribution.encoding import PROTOCOL_VERSION as PROTOCOL_VERSION  # re-export

TRANSCRIPT_DOMAIN = domain_prefix(TAG_TRANSCRIPT, terminated=False)
JSONL_FORMAT = (DOMAIN + TAG_TRANSCRIPT.encode()).decode()
MAX_SESSION_ID = 255
_U32 = 1 << 32
_U64 = 1 << 64


class Direction(IntEnum):
    """Who sent a transcript entry (the ``u8(direction)`` byte)."""

    VERIFIER_TO_PROVER = 1
    PROVER_TO_VERIFIER = 2
    LOCAL = 3


def genesis_head(protocol_version: int, session_id: bytes) -> bytes:
    """``h_0 = SHA-256("attribution.v1/transcript" || u32be(version) || session_id)``."""
    if isinstance(protocol_version, bool) or not isinstance(protocol_version, int):
        raise TypeError("protocol_version must be an int")
    if not 0 <= protocol_version < _U32:
        raise ValueError(f"protocol_version {protocol_version} does not fit in u32")
    if not isinstance(session_id, bytes):
        raise TypeError("session_id must be bytes")
    if not 1 <= len(session_id) <= MAX_SESSION_ID:
        raise ValueError(f"session_id must be 1..{MAX_SESSION_ID} bytes, got {len(session_id)}")
    return domain_hash(
        TAG_TRANSCRIPT, struct.pack(">I", protocol_version), session_id, terminated=False
    )


def chain_step(prev: bytes, direction: Direction | int, label: str, msg: bytes) -> bytes:
    """``h_i`` from ``h_{i-1} = prev`` and one entry (formula in the module docstring)."""
    d = Direction(direction)
    label_bytes = label.encode("utf-8")
    if len(label_bytes) >= _U32:
        raise ValueError("label longer than 2**32 - 1 bytes")
    if len(msg) >= _U64:  # pragma: no cover - cannot be allocated
        raise ValueError("message longer than 2**64 - 1 bytes")
    h = hashlib.sha256(prev)
    h.update(struct.pack(">BI", d, len(label_bytes)))
    h.update(label_bytes)
    h.update(struct.pack(">Q", len(msg)))
    h.update(msg)
    return h.digest()


@dataclass(frozen=True)
class TranscriptEntry:
    """Entry ``index`` (1-based) of a transcript and the head ``h_index`` after it."""

    index: int
    direction: Direction
    label: str
    msg: bytes
    head: bytes


def verify_chain(
    entries: Sequence[TranscriptEntry],
    expected_head: bytes,
    *,
    protocol_version: int,
    session_id: bytes,
) -> None:
    """Recompute the chain from ``h_0`` and compare with the stored and expected heads.

    Raises :class:`~attribution.commitments.errors.TranscriptError` naming the first
    entry that is out of place (``index`` not ``1, 2, ...``) or whose stored head differs
    from the recomputed one (its ``index`` attribute is that entry's number). If every
    stored head matches but the final head differs from ``expected_head`` (e.g. the log
    was rewritten *and* re-chained), the error has ``index=None``: the log as a whole is
    not the one that was signed. Returns ``None`` when the chain is intact.
    """
    h = genesis_head(protocol_version, session_id)
    for pos, e in enumerate(entries, start=1):
        where = f"entry {pos} ({e.label!r}, {Direction(e.direction).name})"
        if e.index != pos:
            raise TranscriptError(f"{where}: numbered {e.index}, expected {pos}", pos)
        h = chain_step(h, e.direction, e.label, e.msg)
        if not hmac.compare_digest(h, e.head):
            raise TranscriptError(
                f"{where}: stored head {e.head.hex()} != recomputed {h.hex()}; "
                "this entry or its stored head was altered",
                pos,
            )
    if not hmac.compare_digest(h, expected_head):
        raise TranscriptError(
            f"final head {h.hex()} of {len(entries)} entries != expected "
            f"{expected_head.hex()}; the log is not the one committed to"
        )


class Transcript:
    """An append-only hash-chained log of protocol messages.

    >>> t = Transcript(session_id=b"session-1")
    >>> head = t.append(Direction.VERIFIER_TO_PROVER, "open", b"...")
    >>> head == t.head
    True
    """

    def __init__(self, session_id: bytes, protocol_version: int = PROTOCOL_VERSION) -> None:
        self._genesis = genesis_head(protocol_version, session_id)
        self._protocol_version = protocol_version
        self._session_id = session_id
        self._entries: list[TranscriptEntry] = []

    @property
    def protocol_version(self) -> int:
        return self._protocol_version

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def genesis(self) -> bytes:
        """``h_0``."""
        return self._genesis

    @property
    def head(self) -> bytes:
        """The current head: ``h_n`` after ``n`` entries (``h_0`` when empty)."""
        return self._entries[-1].head if self._entries else self._genesis

    @property
    def entries(self) -> list[TranscriptEntry]:
        """A copy of the entries, in order."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, direction: Direction | int, label: str, msg: bytes) -> bytes:
        """Append one message (raw bytes as sent) and return the new head ``h_i``."""
        if not isinstance(msg, bytes):
            raise TypeError(f"msg must be bytes, got {type(msg).__name__}")
        d = Direction(direction)
        head = chain_step(self.head, d, label, msg)
        self._entries.append(TranscriptEntry(len(self._entries) + 1, d, label, msg, head))
        return head

    def verify(self, expected_head: bytes) -> None:
        """:func:`verify_chain` of this transcript against ``expected_head``."""
        verify_chain(
            self._entries,
            expected_head,
            protocol_version=self._protocol_version,
            session_id=self._session_id,
        )

    def to_jsonl(self) -> str:
        """The log as JSON Lines (layout in the module docstring)."""
        lines = [
            _dump(
                {
                    "format": JSONL_FORMAT,
                    "protocol_version": self._protocol_version,
                    "session_id": _b64(self._session_id),
                    "h0": self._genesis.hex(),
                }
            )
        ]
        lines.extend(
            _dump(
                {
                    "i": e.index,
                    "direction": int(e.direction),
                    "label": e.label,
                    "msg": _b64(e.msg),
                    "head": e.head.hex(),
                }
            )
            for e in self._entries
        )
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_jsonl(cls, text: str, expected_head: bytes | None = None) -> Transcript:
        """Parse :meth:`to_jsonl` output and re-verify the whole chain.

        Every stored head (``h0`` included) must match its recomputation, and the final
        head must equal ``expected_head`` when given (pass the signed one). Raises
        :class:`~attribution.commitments.errors.TranscriptError` naming the first broken
        line/entry.
        """
        # Split on "\n" only: str.splitlines() would also split inside labels at U+2028 etc.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise TranscriptError("empty transcript file: no header line", 0)
        header = _load(lines[0], 1, {"format", "protocol_version", "session_id", "h0"})
        if header["format"] != JSONL_FORMAT:
            raise TranscriptError(f"line 1: unknown format {header['format']!r}", 0)
        version = header["protocol_version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise TranscriptError("line 1: protocol_version must be an integer", 0)
        try:
            t = cls(_unb64(header["session_id"], 1), version)
        except (TypeError, ValueError) as exc:
            raise TranscriptError(f"line 1: {exc}", 0) from exc
        if _unhex(header["h0"], 1) != t.genesis:
            raise TranscriptError(
                "line 1: stored h0 does not match protocol_version and session_id", 0
            )
        entries: list[TranscriptEntry] = []
        for lineno, line in enumerate(lines[1:], start=2):
            obj = _load(line, lineno, {"i", "direction", "label", "msg", "head"})
            index, direction, label = obj["i"], obj["direction"], obj["label"]
            if isinstance(index, bool) or not isinstance(index, int):
                raise TranscriptError(f"line {lineno}: 'i' must be an integer", lineno - 1)
            if not isinstance(label, str):
                raise TranscriptError(f"line {lineno}: 'label' must be a string", lineno - 1)
            try:
                d = Direction(direction)
            except ValueError as exc:
                raise TranscriptError(f"line {lineno}: {exc}", lineno - 1) from exc
            entries.append(
                TranscriptEntry(
                    index, d, label, _unb64(obj["msg"], lineno), _unhex(obj["head"], lineno)
                )
            )
        final = entries[-1].head if entries else t.genesis
        verify_chain(
            entries,
            final if expected_head is None else expected_head,
            protocol_version=t.protocol_version,
            session_id=t.session_id,
        )
        t._entries = entries
        return t


def _dump(obj: dict[str, Any]) -> str:
    # ensure_ascii=False and NaN allowed, as always: labels are written as UTF-8
    return canonical_json(obj, ascii=False, allow_nan=True).decode("utf-8")


def _load(line: str, lineno: int, keys: set[str]) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"line {lineno}: not JSON: {exc}", lineno - 1) from exc
    if not isinstance(obj, dict) or set(obj) != keys:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise TranscriptError(f"line {lineno}: expected keys {sorted(keys)}, got {got}", lineno - 1)
    return obj


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, lineno: int) -> bytes:
    if not isinstance(value, str):
        raise TranscriptError(f"line {lineno}: base64 field must be a string", lineno - 1)
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise TranscriptError(f"line {lineno}: bad base64: {exc}", lineno - 1) from exc
    if _b64(data) != value:
        raise TranscriptError(f"line {lineno}: non-canonical base64", lineno - 1)
    return data


def _unhex(value: object, lineno: int) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise TranscriptError(f"line {lineno}: hash must be 64 hex digits", lineno - 1)
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise TranscriptError(f"line {lineno}: bad hex: {exc}", lineno - 1) from exc

"""Protocol messages (docs/protocol.md section 2.4) and their canonical bytes.

Every message is sent as the canonical JSON of its fields (sorted keys, no spaces, bytes
as lowercase hex). The sender serialises once; both sides append exactly those bytes to
the hash-chained transcript and the receiver parses them with :func:`decode`, which
checks the type tag and every field. Vectors (the attribution and the f-values) are not
messages: they are bound by Merkle roots inside the commit messages and streamed apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

from attribution.encoding import PROTOCOL_VERSION as PROTOCOL_VERSION  # re-export
from attribution.encoding import canonical_json
from attribution.errors import RemoteProtocolError


class MessageError(RemoteProtocolError):
    """A malformed or unexpected protocol message (the other party's doing)."""


T = TypeVar("T", bound="Message")


VERDICTS = ("ACCEPT", "REJECT", "INCONCLUSIVE")


@dataclass(frozen=True)
class Message:
    kind: ClassVar[str] = "message"
    # exact byte lengths of the bytes fields (keys, digests, seeds, signatures)
    sizes: ClassVar[dict[str, int]] = {}
    # fields that are left out of the bytes when None (and decode to None when absent)
    optional: ClassVar[frozenset[str]] = frozenset()

    def check(self) -> None:
        """Field constraints beyond types; raises :class:`MessageError`."""
        for name, size in self.sizes.items():
            if len(getattr(self, name)) != size:
                raise MessageError(f"{self.kind}.{name} must be {size} bytes")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        for k, v in asdict(self).items():
            if v is None and k in self.optional:
                continue
            out[k] = v.hex() if isinstance(v, bytes) else v
        return out

    def to_bytes(self) -> bytes:
        # allow_nan=True keeps json.dumps' historical behaviour for these bytes
        return canonical_json(self.to_dict(), allow_nan=True)


@dataclass(frozen=True)
class OpenSession(Message):
    """1. V -> P: task, parameters, Verifier key and commitments to its three seeds."""

    kind: ClassVar[str] = "open"
    sizes: ClassVar[dict[str, int]] = {
        "task_digest": 32,
        "verifier_key": 32,
        "commit_e": 32,
        "commit_c": 32,
        "commit_m": 32,
    }
    protocol_version: int
    task_digest: bytes
    params: dict[str, Any]
    verifier_key: bytes
    commit_e: bytes
    commit_c: bytes
    commit_m: bytes


@dataclass(frozen=True)
class SessionOpened(Message):
    """1'. P -> V: session id, the Prover's nonce and key, signed."""

    kind: ClassVar[str] = "opened"
    sizes: ClassVar[dict[str, int]] = {
        "session_id": 16,
        "nonce": 32,
        "prover_key": 32,
        "signature": 64,
    }
    session_id: bytes
    nonce: bytes
    prover_key: bytes
    signature: bytes


@dataclass(frozen=True)
class AttributionCommitment(Message):
    """2. P -> V: Merkle root of the attribution matrix (outputs, 1 + N), row-major."""

    kind: ClassVar[str] = "commit_attribution"
    sizes: ClassVar[dict[str, int]] = {"root": 32, "signature": 64}
    root: bytes
    rows: int
    cols: int
    signature: bytes


@dataclass(frozen=True)
class ChallengeReveal(Message):
    """3. V -> P: the challenge seed and its salt (checked against commit_e); with planning
    "pilot" also ``plan``, the sizes fixed from the Verifier's pilot (the keys of
    :data:`attribution.protocol.params.PILOT_SIZED`), absent otherwise."""

    kind: ClassVar[str] = "reveal_challenge"
    sizes: ClassVar[dict[str, int]] = {"seed": 32, "salt": 32}
    optional: ClassVar[frozenset[str]] = frozenset({"plan"})
    seed: bytes
    salt: bytes
    plan: dict[str, Any] | None = None

    def check(self) -> None:
        super().check()
        if self.plan is not None and not isinstance(self.plan, dict):
            raise MessageError("reveal_challenge.plan must be an object")


@dataclass(frozen=True)
class EvaluationCommitment(Message):
    """5. P -> V: Merkle root of the f-values of E, (|E|, outputs) row-major, signed."""

    kind: ClassVar[str] = "commit_evaluations"
    sizes: ClassVar[dict[str, int]] = {"root": 32, "signature": 64}
    root: bytes
    rows: int
    cols: int
    signature: bytes


@dataclass(frozen=True)
class VerdictMessage(Message):
    """7. V -> P / report: the verdict, the certificate digest, revealed secret seeds."""

    kind: ClassVar[str] = "verdict"
    sizes: ClassVar[dict[str, int]] = {
        "certificate_digest": 32,
        "seed_c": 32,
        "salt_c": 32,
        "seed_m": 32,
        "salt_m": 32,
        "signature": 64,
    }
    verdict: str
    reason: str
    certificate_digest: bytes
    seed_c: bytes
    salt_c: bytes
    seed_m: bytes
    salt_m: bytes
    signature: bytes

    def check(self) -> None:
        super().check()
        if self.verdict not in VERDICTS:
            raise MessageError(f"verdict must be one of {', '.join(VERDICTS)}")


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        OpenSession,
        SessionOpened,
        AttributionCommitment,
        ChallengeReveal,
        EvaluationCommitment,
        VerdictMessage,
    )
}


def decode(data: bytes, expected: type[T]) -> T:
    """Parse canonical bytes into ``expected``; any deviation raises :class:`MessageError`."""
    try:
        raw = json.loads(data)
        # canonical JSON is UTF-8: no lone surrogate ("\\ud800") anywhere, keys included
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        # ValueError: not JSON (JSONDecodeError), not UTF-8 (UnicodeDecodeError), a lone
        # surrogate (UnicodeEncodeError), an integer of more than 4300 digits;
        # RecursionError: nested deeper than the interpreter's recursion limit
        raise MessageError(f"message is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != expected.kind:
        raise MessageError(f"expected a {expected.kind!r} message")
    values: dict[str, Any] = {}
    for f in fields(expected):
        if f.name not in raw and f.name in expected.optional:
            continue
        if f.name not in raw:
            raise MessageError(f"{expected.kind}: missing field {f.name!r}")
        v = raw[f.name]
        if f.type in ("bytes", bytes):
            if not isinstance(v, str):
                raise MessageError(f"{expected.kind}.{f.name} must be hex")
            try:
                v = bytes.fromhex(v)
            except ValueError as exc:
                raise MessageError(f"{expected.kind}.{f.name} is not valid hex") from exc
        elif f.type in ("int", int) and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise MessageError(f"{expected.kind}.{f.name} must be a non-negative integer")
        elif f.type in ("str", str) and not isinstance(v, str):
            raise MessageError(f"{expected.kind}.{f.name} must be a string")
        values[f.name] = v
    extra = set(raw) - {f.name for f in fields(expected)} - {"type"}
    if extra:
        raise MessageError(f"{expected.kind}: unknown field(s) {sorted(extra)}")
    msg = expected(**values)
    if msg.to_bytes() != data:
        raise MessageError(f"{expected.kind}: bytes are not in canonical form")
    msg.check()
    return msg

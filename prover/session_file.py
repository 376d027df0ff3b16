"""What a Prover saves of each session so that a restarted server resumes it.

One sealed 0600 file per session, ``<store_root>/<session id hex>/session.json``
(:func:`attribution.files.save_private_json`), rewritten atomically after every
step that changes the session. It holds the *inputs* of the session, never derived state:
the Verifier's OpenSession bytes, the Prover's nonce and public key, SHA-256 of the session
token (the file never holds the capability itself), the caller's identity, the messages
committed and received so far, the training job's id, and whether the session is closed
(decided, or abandoned: evicted after ``session_ttl`` idle; closed sessions are never
resumed). On restart the session is replayed step by step through
:class:`attribution.protocol.prover.ProverSession`; Ed25519 signatures are
deterministic, so every replayed commitment must come out byte-identical to the saved one
-- if it does not (another key, another attribution), the session is not resumed.
The training rows themselves live in the session's resumable result store
(``<store_root>/<session id hex>/retrain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.errors import StoreCorruptError
from attribution.files import (
    load_private_json,
    record_from_json,
    record_to_json,
    save_private_json,
)

SESSION_FILE = "session.json"
FORMAT = "vattr-prover-session/1"
WHAT = "Prover session state"
CLOSED = ("", "decided", "abandoned")
_BYTES = (
    "session_id",
    "open_body",
    "nonce",
    "prover_key",
    "token_digest",
    "attribution_body",
    "reveal_body",
    "evaluations_body",
)


@dataclass
class SessionRecord:
    """The saved inputs of one session (bytes are stored as hex)."""

    session_id: bytes
    open_body: bytes
    nonce: bytes
    prover_key: bytes
    token_digest: bytes
    owner: str
    attribution_body: bytes = b""
    reveal_body: bytes = b""
    job_id: str = ""
    evaluations_body: bytes = b""
    closed: str = ""  # "" while open; "decided" or "abandoned" (evicted when idle)

    def to_json(self) -> dict[str, Any]:
        return record_to_json(self, _BYTES)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        rec = record_from_json(cls, data, _BYTES, what=WHAT)
        if not isinstance(rec.owner, str) or not isinstance(rec.job_id, str):
            raise StoreCorruptError(f"{WHAT}: owner and job_id must be strings")
        if rec.closed not in CLOSED or len(rec.session_id) != 16:
            raise StoreCorruptError(f"{WHAT}: malformed session id or closed state")
        return rec

    def save(self, store_root: Path) -> None:
        directory = store_root / self.session_id.hex()
        directory.mkdir(parents=True, exist_ok=True)
        save_private_json(directory / SESSION_FILE, FORMAT, self.to_json(), what=WHAT)

    @classmethod
    def load(cls, path: Path) -> SessionRecord:
        rec = cls.from_json(load_private_json(path, FORMAT, what=WHAT))
        if path.parent.name != rec.session_id.hex():
            raise StoreCorruptError(f"{WHAT} {path} belongs to session {rec.session_id.hex()}")
        return rec

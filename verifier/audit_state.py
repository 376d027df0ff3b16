"""What a Verifier saves during an audit so that a killed audit resumes where it stopped.

One sealed 0600 file, ``<work dir>/audit-state.json``
(:func:`attribution.files.save_private_json`), rewritten atomically after each
answer of the Prover. It holds the audit's *secrets* -- the seeds and salts of E, C and M
(C and M stay secret until the verdict) and the session token -- which is why it is
readable only by its owner and is refused when its permissions are wider. Everything
else is replayable: the Verifier's state machine is re-run from the saved Prover messages
(Ed25519 is deterministic, so the transcript comes out identical), the training job is
watched again under its saved id (the Prover is not asked to train anything again), and
the Verifier's own spot-check and MSE trainings resume from their result stores in the
same work directory.

A session is saved only once the Prover has answered OpenSession: an audit killed before
that holds nothing worth keeping and starts a new session with fresh secrets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attribution.errors import StoreCorruptError, UsageError
from attribution.files import (
    load_private_json,
    record_from_json,
    record_to_json,
    save_private_json,
)
from attribution.protocol.params import ProtocolParams
from attribution.protocol.verifier import VerifierSecrets

STATE_FILE = "audit-state.json"
FORMAT = "vattr-audit-state/1"
WHAT = "audit state"
_BYTES = (
    "task_digest",
    "verifier_key",
    "session_id",
    "session_token",
    "opened_body",
    "attribution_body",
    "evaluations_body",
)


@dataclass
class AuditState:
    """The saved progress of one audit (bytes are stored as hex)."""

    target: str
    task_digest: bytes
    params: dict[str, Any]
    verifier_key: bytes
    secrets: dict[str, str]
    session_id: bytes
    session_token: bytes
    opened_body: bytes
    attribution_body: bytes = b""
    job_id: str = ""
    evaluations_body: bytes = b""
    delivered: bool = False

    @property
    def protocol_params(self) -> ProtocolParams:
        return ProtocolParams.from_dict(self.params)

    @property
    def verifier_secrets(self) -> VerifierSecrets:
        try:
            return VerifierSecrets(**{k: bytes.fromhex(v) for k, v in self.secrets.items()})
        except (TypeError, ValueError) as exc:
            raise StoreCorruptError(f"{WHAT}: malformed secrets ({exc})") from exc

    @staticmethod
    def secrets_json(s: VerifierSecrets) -> dict[str, str]:
        return {k: v.hex() for k, v in asdict(s).items()}

    def save(self, work_dir: Path) -> None:
        save_private_json(work_dir / STATE_FILE, FORMAT, record_to_json(self, _BYTES), what=WHAT)

    @classmethod
    def load(cls, work_dir: Path) -> AuditState:
        data = load_private_json(work_dir / STATE_FILE, FORMAT, what=WHAT)
        state = record_from_json(cls, data, _BYTES, what=WHAT)
        state.verifier_secrets  # noqa: B018 -- validates the secrets now, not mid-audit
        return state

    @classmethod
    def find(cls, work_dir: Path) -> AuditState | None:
        """The saved state in ``work_dir``, or None if there is none; a damaged one is a
        :class:`UsageError` naming the file (never silently replaced)."""
        if not (work_dir / STATE_FILE).exists():
            return None
        try:
            return cls.load(work_dir)
        except StoreCorruptError as exc:
            raise UsageError(f"{exc}; move {work_dir} aside to start a new audit") from exc

"""One error hierarchy: whose fault (ours or the other party's) and which exit code."""

from __future__ import annotations

import pytest

from attribution.commitments import SigningKey
from attribution.errors import (
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
    StoreCorruptError,
    TransportError,
    UsageError,
    VattrError,
)
from attribution.protocol.common import TaskInfo
from attribution.protocol.messages import MessageError, SessionOpened
from attribution.protocol.planner import plan_run
from attribution.protocol.verifier import VerifierSession

TASK = TaskInfo(n_points=10, n_outputs=1, bound=1.0, tau=0.0, p=0.5)


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (UsageError, 2, "INVALID_ARGUMENT"),
        (IntegrityError, 3, "DATA_LOSS"),
        (StoreCorruptError, 3, "DATA_LOSS"),
        (RemoteProtocolError, 3, "INVALID_ARGUMENT"),
        (MessageError, 3, "INVALID_ARGUMENT"),
        (TransportError, 3, "UNAVAILABLE"),
        (LocalProtocolError, 5, "FAILED_PRECONDITION"),
    ],
)
def test_each_class_has_one_exit_code_and_status(
    cls: type[VattrError], code: int, status: str
) -> None:
    assert issubclass(cls, VattrError)
    assert (cls.exit_code, cls.grpc_status) == (code, status)
    assert cls.exit_code not in (0, 1, 4)  # those are verdicts


def _session() -> VerifierSession:
    plan = plan_run(TASK, 0.2, 0.05, hint=0.01)
    return VerifierSession(TASK, b"\x01" * 32, plan.params, SigningKey.from_seed(b"v" * 32))


def test_a_step_out_of_order_is_our_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        _session().reveal_challenge()


def test_a_badly_signed_opening_is_the_provers_doing() -> None:
    v = _session()
    v.open()
    forged = SessionOpened(
        session_id=v.session_id,
        nonce=b"n" * 32,
        prover_key=SigningKey.from_seed(b"p" * 32).public_key_raw,
        signature=b"\x00" * 64,
    )
    with pytest.raises(RemoteProtocolError, match="signature"):
        v.on_opened(forged.to_bytes())
    with pytest.raises(MessageError):
        _opened_garbage()


def _opened_garbage() -> None:
    v = _session()
    v.open()
    v.on_opened(b"not json")

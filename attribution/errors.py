"""One error hierarchy, each class with one exit code and one gRPC status.

Two distinctions a caller needs: *our* misuse (a bug, or a step called out of order)
versus the *other party's* misbehaviour, and bad input versus integrity versus transport
failures:

============================  ====  ===================  ===================================
class                         exit  gRPC status          meaning
============================  ====  ===================  ===================================
:class:`UsageError`           2     INVALID_ARGUMENT     bad input from our own user; nothing
                                                         was written
:class:`IntegrityError`       3     DATA_LOSS            stored or received data fails its
                                                         digest, seal or manifest
:class:`RemoteProtocolError`  3     INVALID_ARGUMENT     the other party broke the protocol
                                                         (malformed message, bad signature)
:class:`TransportError`       3     UNAVAILABLE          the other party could not be reached
                                                         or answered with an error status
:class:`LocalProtocolError`   5     FAILED_PRECONDITION  our own misuse: a protocol step out
                                                         of order, missing state (a bug)
any other exception           5     INTERNAL             a bug of vattr's (never exit 1,
                                                         which means REJECT)
============================  ====  ===================  ===================================

Exit codes 0, 1 and 4 are verdicts (ACCEPT, REJECT, INCONCLUSIVE), never errors. A Prover
whose *content* is wrong (a stream that does not match its root, a failed spot check) is
not an error at all: it is a signed REJECT.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_USAGE, EXIT_PROTOCOL, EXIT_INTERNAL = 2, 3, 5


class VattrError(Exception):
    """The root of the project's errors."""

    exit_code: ClassVar[int] = EXIT_INTERNAL
    grpc_status: ClassVar[str] = "INTERNAL"


class UsageError(VattrError):
    """Bad input from the user: unknown task, malformed spec, p outside (0, 1), ..."""

    exit_code = EXIT_USAGE
    grpc_status = "INVALID_ARGUMENT"


class StoreMismatchError(UsageError):
    """A result store belongs to another task, plan or layout."""


class IntegrityError(VattrError):
    """Stored or received data disagrees with its digest, seal or manifest."""

    exit_code = EXIT_PROTOCOL
    grpc_status = "DATA_LOSS"


class StoreCorruptError(IntegrityError):
    """A result store's (or a saved state's) files disagree with their manifest or seal."""


class ProtocolError(VattrError):
    """A protocol rule was broken; see the two subclasses for whose doing it was."""

    exit_code = EXIT_PROTOCOL
    grpc_status = "FAILED_PRECONDITION"


class LocalProtocolError(ProtocolError):
    """Our own misuse of a state machine: a step called out of order, missing state."""

    exit_code = EXIT_INTERNAL
    grpc_status = "FAILED_PRECONDITION"


class RemoteProtocolError(ProtocolError):
    """The other party broke the protocol: a malformed message, a bad signature, a
    revealed seed that does not match its commitment."""

    exit_code = EXIT_PROTOCOL
    grpc_status = "INVALID_ARGUMENT"


class TransportError(VattrError):
    """The other party could not be reached or answered with an error status.

    ``code`` is the gRPC status name (``"UNAVAILABLE"``, ...) when there was one; ``hint``
    the one-line explanation of a connection failure, if any."""

    exit_code = EXIT_PROTOCOL
    grpc_status = "UNAVAILABLE"

    def __init__(self, message: str, code: str | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint

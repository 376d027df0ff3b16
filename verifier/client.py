"""The Verifier's gRPC client: channel (TLS, tokens), calls with deadlines, and the
float64 chunk streams checked value by value. The audit itself is :mod:`verifier.audit`.

Every call carries a deadline; transport failures raise :class:`TransportError`
(exit code 3); a stream that breaks its framing raises :class:`MalformedStream`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from attribution.errors import TransportError
from attribution.v1 import prover_pb2, prover_pb2_grpc
from verifier.transport_errors import EXPIRED, HOSTNAME, SERVER_NOT_TLS, UNTRUSTED, explain

FloatArray = npt.NDArray[np.float64]
R = TypeVar("R")
RETRYABLE = frozenset({"UNAVAILABLE"})
# misconfigurations that waiting does not cure (a restarting Prover refuses connections or
# closes sockets, which stays retryable)
CONFIG_ERRORS = frozenset({EXPIRED, UNTRUSTED, HOSTNAME, SERVER_NOT_TLS})


__all__ = [
    "CONFIG_ERRORS",
    "RETRYABLE",
    "ClientTLS",
    "MalformedStream",
    "ProverClient",
    "TransportError",
]


# The slowest a vector stream may be: its deadline is the call timeout plus its size at
# this rate (1 MiB/s: 8 MB of f-values in 68 s with the default 60 s timeout).
STREAM_MIN_BYTES_PER_S = float(1 << 20)


class MalformedStream(TransportError):
    """The Prover's stream broke its framing (wrong length or total, stray or
    misplaced chunks): the Prover sent a malformed vector."""


@dataclass(frozen=True)
class ClientTLS:
    ca: Path | None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None


class ProverClient:
    def __init__(
        self,
        target: str,
        *,
        tls: ClientTLS | None = None,
        token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        options: list[tuple[str, Any]] = []
        if tls is not None:
            from attribution.transport.tls import channel_credentials

            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            creds = channel_credentials(tls.ca, tls.cert, tls.key)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = prover_pb2_grpc.ProverServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout = timeout
        self.target = target
        self.tls = tls is not None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ProverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, name: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self.stub, name)(
                request, timeout=timeout or self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise self._error(name, exc) from exc

    def stream(self, name: str, request: Any, timeout: float | None = None) -> Iterator[Any]:
        try:
            yield from getattr(self.stub, name)(
                request, timeout=timeout or self.timeout, metadata=self.metadata
            )
        except grpc.RpcError as exc:
            raise self._error(name, exc) from exc

    def _error(self, name: str, exc: grpc.RpcError) -> TransportError:
        """The TransportError of a failed call; connection failures get a one-line hint."""
        code, details = exc.code().name, exc.details() or ""
        hint = explain(code, details, tls=self.tls)
        message = f"{name}: {code}: {details}" + (f" (hint: {hint})" if hint else "")
        return TransportError(message, code, hint)

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            # the ready future keeps no reason: one fail-fast call recovers it
            reason = ""
            try:
                self.call("DescribeTasks", prover_pb2.DescribeTasksRequest(), min(timeout, 5.0))
            except TransportError as probe:
                reason = f": {probe}"
            raise TransportError(f"cannot reach the Prover at {self.target}{reason}") from exc

    def fetch_vector(self, name: str, request: Any, expected: int) -> FloatArray:
        """Collect a chunked float64 stream; offsets must be contiguous, lengths exact.

        The whole stream must arrive within ``timeout + 8 expected / STREAM_MIN_BYTES_PER_S``
        seconds (DEADLINE_EXCEEDED, a :class:`TransportError`, beyond). Every message
        announces ``expected`` values and holds whole float64 values that
        continue exactly where the previous chunk ended; the only empty chunk allowed is the
        single message of a zero-length vector. A stream that breaks these rules, or ends
        cleanly before ``expected`` values, raises :class:`MalformedStream` (the Prover's
        doing: a signed REJECT, not a retry); a failed call raises :class:`TransportError`.
        """
        out = np.empty(expected, dtype="<f8")  # bounded memory: one copy plus one chunk
        received = 0
        messages = 0
        # the whole stream's deadline: the call timeout plus the vector's size at a floor
        # rate, so a Prover that drips its values ends within it (exit 3), however slow
        deadline = self.timeout + 8 * expected / STREAM_MIN_BYTES_PER_S
        for msg in self.stream(name, request, timeout=deadline):
            messages += 1
            data = bytes(msg.chunk.values_f64le)
            if msg.total != expected:
                raise MalformedStream(f"{name}: announced {msg.total} values, expected {expected}")
            if len(data) % 8:
                raise MalformedStream(
                    f"{name}: chunk at offset {msg.chunk.offset} holds {len(data)} bytes, "
                    "not a multiple of 8 (whole float64 values)"
                )
            if msg.chunk.offset != received:
                raise MalformedStream(
                    f"{name}: chunk at offset {msg.chunk.offset} "
                    f"({len(data)} bytes) does not continue at {received}"
                )
            count = len(data) // 8
            if count == 0 and (expected != 0 or messages > 1):
                raise MalformedStream(
                    f"{name}: empty chunk at offset {received} (only a zero-length vector "
                    "is sent as one empty chunk)"
                )
            if received + count > expected:
                raise MalformedStream(f"{name}: more values than announced")
            out[received : received + count] = np.frombuffer(data, dtype="<f8")
            received += count
        if received != expected or messages == 0:
            raise MalformedStream(
                f"{name}: stream ended after {received} of {expected} values"
                + ("" if messages else " (no chunk at all)")
            )
        return out.astype(np.float64, copy=False)

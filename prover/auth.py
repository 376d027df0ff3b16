"""Transport security for the Prover server: bearer tokens and TLS / mutual TLS.

Bearer tokens: ``authorization: Bearer <token>`` metadata, compared with
``hmac.compare_digest`` against every accepted token (constant time in the token's
content); the health service is always reachable. A rejected call ends with
UNAUTHENTICATED through a handler of the same cardinality as the method.
Transport identity is not protocol identity: who committed and who judged comes from the
Ed25519 keys in the transcript.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from attribution.errors import UsageError

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def read_token_file(path: Path) -> list[bytes]:
    """Tokens, one per line (blank lines and ``#`` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror}") from exc
    tokens = [ln.strip().encode() for ln in lines if ln.strip() and not ln.startswith("#")]
    if not tokens:
        raise UsageError(f"token file {path} holds no token")
    return tokens


def _abort_handler(
    handler: grpc.RpcMethodHandler[Any, Any], message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            deny, handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            deny, handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            deny, handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        deny, handler.request_deserializer, handler.response_serializer
    )


class TokenInterceptor(grpc.ServerInterceptor):
    """Requires a valid bearer token on every call except health and reflection."""

    def __init__(self, tokens: Sequence[bytes]) -> None:
        # compare fixed-length digests so that the comparison time does not depend on
        # the candidate's length either
        self._digests = [hashlib.sha256(t).digest() for t in tokens]

    def _valid(self, presented: bytes) -> bool:
        d = hashlib.sha256(presented).digest()
        ok = False
        for ref in self._digests:
            ok |= hmac.compare_digest(d, ref)
        return ok

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        value = metadata.get("authorization", "")
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if not value.startswith("Bearer ") or not self._valid(value[7:].encode()):
            return _abort_handler(handler, "missing or invalid bearer token")
        return handler

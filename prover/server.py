"""Building and running the Prover's gRPC server (``vattr serve``).

Sync gRPC server with the health service always on, optional
reflection, TLS / mutual TLS, bearer tokens, a cap on concurrent RPCs
(RESOURCE_EXHAUSTED beyond it), ``so_reuseport`` off so that a second bind of the same
port fails loudly, and graceful shutdown: health goes NOT_SERVING, new sessions are
refused, running calls get ``grace`` seconds, training jobs pause at their next block
boundary and their stores are closed; a restart on the same store resumes them.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from attribution.commitments import SigningKey
from attribution.errors import UsageError
from attribution.execution.executors import Executor
from attribution.transport.tls import server_credentials
from attribution.v1 import prover_pb2, prover_pb2_grpc
from prover.auth import TokenInterceptor
from prover.served import ServedTask
from prover.service import ProverServicer

log = logging.getLogger("vattr.prover")
SERVICE_NAME = prover_pb2.DESCRIPTOR.services_by_name["ProverService"].full_name
_MALFORMED = object()  # stands in for a request that is not a valid protobuf message


def _lenient(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data) if parse is not None else data
        except Exception:  # DecodeError, or whatever a parser raises on garbage
            return _MALFORMED

    return deserialize


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """INVALID_ARGUMENT for a request whose bytes are not a valid protobuf message
    (gRPC Python itself answers INTERNAL "Exception deserializing request!" and logs a
    traceback). Placed after the token interceptor, whose refusal then still wins."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        parse = _lenient(handler.request_deserializer)

        def guard(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                if request is _MALFORMED:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "the request is not a valid protobuf message",
                    )
                return behavior(request, context)

            return run

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                guard(handler.unary_unary), parse, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                guard(handler.unary_stream), parse, handler.response_serializer
            )
        return handler


@dataclass
class TLSConfig:
    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    servicer: ProverServicer
    health: health.HealthServicer

    def stop(self, grace: float | None = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.servicer.stop()
        self.server.stop(grace).wait()
        if not self.servicer.join_jobs():
            log.warning("training jobs still running at shutdown; their stores resume")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_server(
    served: ServedTask,
    key: SigningKey,
    executor: Executor,
    store_root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TLSConfig | None = None,
    tokens: list[bytes] | None = None,
    insecure: bool = False,
    reflection: bool = False,
    max_workers: int = 32,
    max_concurrent_rpcs: int = 64,
    max_sessions_per_client: int = 16,
    nonce_source: Callable[[], bytes] | None = None,
    batch_size: int = 256,
    resume: bool = True,
    max_challenges: int = 1_000_000,
    servicer_factory: Callable[..., ProverServicer] = ProverServicer,
) -> RunningServer:
    """Start serving on ``host:port`` (port 0 = a free port); returns the bound port.

    With ``resume`` (the default) the undecided sessions saved under ``store_root`` are
    resumed first (:meth:`ProverServicer.restore`): their training jobs continue where a
    crash left them. They can only be resumed under the same Prover key and attribution.
    ``servicer_factory`` builds the servicer (called like :class:`ProverServicer`); the
    red-team Provers of ``vattr.redteam`` pass a subclass.
    """
    if tls is None and not is_loopback(host) and not insecure:
        raise UsageError(
            f"refusing to serve on non-loopback address {host} without TLS "
            "(give --tls-cert/--tls-key, or --insecure explicitly)"
        )
    interceptors: list[grpc.ServerInterceptor] = [TokenInterceptor(tokens)] if tokens else []
    interceptors.append(MalformedRequestInterceptor())
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 0)],
    )
    servicer = servicer_factory(
        served,
        key,
        executor,
        store_root,
        max_sessions_per_client=max_sessions_per_client,
        nonce_source=nonce_source,
        batch_size=batch_size,
        max_challenges=max_challenges,
    )
    resumed = servicer.restore() if resume else 0
    if resumed:
        log.info("resumed %d saved session(s) from %s", resumed, store_root)
    prover_pb2_grpc.add_ProverServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection:
        from grpc_reflection.v1alpha import reflection as refl

        refl.enable_server_reflection(
            [SERVICE_NAME, refl.SERVICE_NAME, health.SERVICE_NAME], server
        )
    address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        if tls is not None:
            bound = server.add_secure_port(
                address, server_credentials(tls.cert, tls.key, tls.client_ca)
            )
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise UsageError(f"cannot bind {address}: {exc}") from exc
    if bound == 0:
        raise UsageError(f"cannot bind {address} (in use?)")
    server.start()
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving %s on %s:%d (%s)",
        served.task.spec.name,
        host,
        bound,
        "TLS" if tls else "plaintext",
    )
    return RunningServer(server, bound, servicer, health_servicer)


def install_signal_handlers() -> threading.Event:
    """SIGTERM/SIGINT set the returned event (install before announcing readiness)."""
    done = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return done


def wait_for_termination(
    running: RunningServer, done: threading.Event, grace: float = 30.0
) -> None:
    """Block until ``done`` is set (by a signal), then shut down gracefully."""
    done.wait()
    running.stop(grace)

"""``ProverClient.fetch_vector`` against a REAL gRPC server that misbehaves on purpose.

A scripted :class:`ProverServiceServicer` (one ``grpc.server`` on 127.0.0.1:0 for the
module) answers ``StreamAttribution`` / ``StreamEvaluations`` with hand-made chunks or
aborts, and every test checks that the production client either returns exactly the
values sent (bit for bit, NaN payloads included) or raises :class:`TransportError` with a
message that names the problem. Each case runs on both streaming RPCs.
A chunk whose length is not a multiple of 8 is named as such, an empty stream is never a
zero-length vector, and empty chunks are refused except as the single message of a
zero-length vector (so a server cannot keep a client busy with empty messages).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from attribution.v1 import common_pb2, prover_pb2_grpc
from attribution.v1 import prover_pb2 as pb
from verifier.client import ProverClient, TransportError

pytestmark = pytest.mark.timeout(60)

METHODS = ("StreamAttribution", "StreamEvaluations")
REQUESTS: dict[str, Any] = {
    "StreamAttribution": pb.StreamAttributionRequest,
    "StreamEvaluations": pb.StreamEvaluationsRequest,
}


# -- the scripted server ---------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """One stream message: ``data`` (raw bytes) at element ``offset``, announcing ``total``."""

    offset: int
    data: bytes
    total: int


@dataclass(frozen=True)
class Abort:
    """End the stream with a non-OK status."""

    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Crash:
    """Raise an exception inside the servicer's generator (gRPC answers UNKNOWN)."""

    message: str


Step = Chunk | Abort | Crash


class ScriptedProver(prover_pb2_grpc.ProverServiceServicer):
    """Plays ``script`` on either streaming RPC; counts the calls it answered."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.calls = 0

    def _play(self, cls: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.calls += 1
        for step in self.script:
            if isinstance(step, Abort):
                context.abort(step.code, step.details)
            if isinstance(step, Crash):
                raise RuntimeError(step.message)
            if isinstance(step, Chunk):
                chunk = common_pb2.Float64Chunk(offset=step.offset, values_f64le=step.data)
                yield cls(chunk=chunk, total=step.total)

    def StreamAttribution(
        self, request: pb.StreamAttributionRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamAttributionResponse]:
        yield from self._play(pb.StreamAttributionResponse, context)

    def StreamEvaluations(
        self, request: pb.StreamEvaluationsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamEvaluationsResponse]:
        yield from self._play(pb.StreamEvaluationsResponse, context)


@dataclass
class Served:
    servicer: ScriptedProver
    port: int


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # the typed stubs declare every RPC abstract; the other seven answer UNIMPLEMENTED here
    servicer = ScriptedProver()  # type: ignore[abstract]
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    prover_pb2_grpc.add_ProverServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    yield Served(servicer, port)
    server.stop(0).wait()


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@dataclass
class Fetch:
    """Set the server's script, then call the real client's ``fetch_vector``."""

    served: Served
    client: ProverClient
    method: str

    def __call__(self, script: Sequence[Step], expected: int) -> npt.NDArray[np.float64]:
        self.served.servicer.script = list(script)
        before = self.served.servicer.calls
        try:
            return self.client.fetch_vector(self.method, REQUESTS[self.method](), expected)
        finally:
            assert self.served.servicer.calls == before + 1, "the RPC never reached the server"

    def fails(self, script: Sequence[Step], expected: int, match: str) -> TransportError:
        """``fetch_vector`` must raise TransportError naming the RPC and matching ``match``."""
        with pytest.raises(TransportError) as info:
            self(script, expected)
        message = str(info.value)
        assert message.startswith(f"{self.method}: "), message
        assert re.search(match, message), f"{message!r} does not match {match!r}"
        return info.value


@pytest.fixture
def fetch(served: Served, method: str) -> Iterator[Fetch]:
    with ProverClient(f"127.0.0.1:{served.port}", timeout=10) as client:
        yield Fetch(served, client, method)


# -- building chunk scripts ------------------------------------------------------------------
def vector(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(size=n)


def raw(values: npt.NDArray[np.float64]) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def chunked(
    values: npt.NDArray[np.float64], sizes: Sequence[int], total: int | None = None
) -> list[Chunk]:
    """``values`` cut into consecutive chunks of ``sizes`` values (they must add up)."""
    assert sum(sizes) == values.size
    out: list[Chunk] = []
    start = 0
    for size in sizes:
        part = values[start : start + size]
        out.append(Chunk(start, raw(part), values.size if total is None else total))
        start += size
    return out


def bits(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(values, dtype="<f8").view("<u8")


# -- well-formed streams ---------------------------------------------------------------------
def test_several_chunks_with_a_short_last_one_give_exactly_the_values(fetch: Fetch) -> None:
    values = vector(10)
    got = fetch(chunked(values, [4, 4, 2]), 10)
    assert got.dtype == np.float64
    assert got.shape == (10,)
    np.testing.assert_array_equal(bits(got), bits(values))


def test_single_chunk_vector(fetch: Fetch) -> None:
    values = vector(7, seed=3)
    np.testing.assert_array_equal(bits(fetch(chunked(values, [7]), 7)), bits(values))


def test_special_values_keep_their_bit_patterns(fetch: Fetch) -> None:
    """Quiet and signalling NaNs with payloads, both signs, -0.0, infinities, subnormals."""
    patterns = np.array(
        [
            0x7FF8000000000000,  # the canonical quiet NaN
            0x7FF8000000000001,  # quiet NaN with a payload
            0xFFF8DEADBEEF0001,  # negative quiet NaN with a payload
            0x7FF0000000000001,  # signalling NaN
            0xFFF4000000000123,  # negative signalling NaN with a payload
            0x8000000000000000,  # -0.0
            0x7FF0000000000000,  # +inf
            0xFFF0000000000000,  # -inf
            0x0000000000000001,  # the smallest subnormal
            0x3FF0000000000000,  # 1.0
        ],
        dtype="<u8",
    )
    values = patterns.view("<f8")
    got = fetch(chunked(values, [3, 3, 3, 1]), values.size)
    np.testing.assert_array_equal(bits(got), patterns)


def test_zero_length_vector_is_one_empty_chunk(fetch: Fetch) -> None:
    got = fetch([Chunk(0, b"", 0)], 0)
    assert got.shape == (0,)
    assert got.dtype == np.float64


# -- malformed streams -----------------------------------------------------------------------
def test_chunks_out_of_order_are_refused(fetch: Fetch) -> None:
    first, second, third = chunked(vector(10), [4, 4, 2])
    fetch.fails([second, first, third], 10, r"offset 4 .*does not continue at 0")


def test_a_gap_between_chunks_is_refused(fetch: Fetch) -> None:
    first, _, third = chunked(vector(10), [4, 4, 2])
    fetch.fails([first, third], 10, r"offset 8 .*does not continue at 4")


def test_a_duplicate_chunk_is_refused(fetch: Fetch) -> None:
    first, second, third = chunked(vector(10), [4, 4, 2])
    fetch.fails([first, second, second, third], 10, r"offset 4 .*does not continue at 8")


def test_a_missing_final_chunk_is_refused(fetch: Fetch) -> None:
    first, second, _ = chunked(vector(10), [4, 4, 2])
    fetch.fails([first, second], 10, r"stream ended after 8 of 10 values")


@pytest.mark.parametrize(
    "sizes", [[8, 4], [10, 1]], ids=["last-chunk-too-long", "extra-chunk-after-the-end"]
)
def test_more_values_than_announced_are_refused(fetch: Fetch, sizes: list[int]) -> None:
    script = chunked(vector(sum(sizes)), sizes, total=10)
    fetch.fails(script, 10, r"more values than announced")


@pytest.mark.parametrize("announced", [9, 11, 0, 2**63])
def test_a_total_other_than_expected_is_refused(fetch: Fetch, announced: int) -> None:
    script = chunked(vector(10), [4, 4, 2], total=announced)
    fetch.fails(script, 10, rf"announced {announced} values, expected 10")


def test_a_total_that_changes_mid_stream_is_refused(fetch: Fetch) -> None:
    first, second, third = chunked(vector(10), [4, 4, 2])
    second = Chunk(second.offset, second.data, 12)
    fetch.fails([first, second, third], 10, r"announced 12 values, expected 10")


@pytest.mark.parametrize("n_bytes", [1, 7, 12, 20])
def test_a_chunk_of_partial_float64_values_is_refused(fetch: Fetch, n_bytes: int) -> None:
    data = raw(vector(3))[:n_bytes]
    fetch.fails([Chunk(0, data, 10)], 10, rf"\b{n_bytes} bytes\b")


def test_a_chunk_of_partial_values_is_named_as_such(fetch: Fetch) -> None:
    """The message must say what is wrong (today: '... does not continue at 0', which is
    about offsets, for a chunk that starts exactly where it should)."""
    data = raw(vector(3))[:12]
    fetch.fails([Chunk(0, data, 10)], 10, r"not a multiple of 8")


def test_an_empty_stream_is_refused(fetch: Fetch) -> None:
    fetch.fails([], 10, r"stream ended after 0 of 10 values")


def test_an_empty_stream_is_not_a_zero_length_vector(fetch: Fetch) -> None:
    """A zero-length vector is sent as one empty chunk announcing total 0; a stream without
    any message never announced a total and must not pass as one."""
    fetch.fails([], 0, r"stream ended|no chunk")


@pytest.mark.parametrize(
    "where", ["duplicate-of-the-zero-length-chunk", "after-the-last-chunk", "in-the-middle"]
)
def test_empty_chunks_beyond_the_zero_length_case_are_refused(fetch: Fetch, where: str) -> None:
    """Only a zero-length vector has an empty chunk (and exactly one). Accepting others lets a
    server stream unlimited empty messages until the 600 s stream deadline."""
    if where == "duplicate-of-the-zero-length-chunk":
        fetch.fails([Chunk(0, b"", 0), Chunk(0, b"", 0)], 0, r"empty chunk")
        return
    first, second = chunked(vector(8), [4, 4])
    if where == "after-the-last-chunk":
        script = [first, second, Chunk(8, b"", 8)]
    else:
        script = [first, Chunk(4, b"", 8), second]
    fetch.fails(script, 8, r"empty chunk")


# -- the server fails mid-stream -------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "after"),
    [
        (grpc.StatusCode.INTERNAL, 1),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 2),
        (grpc.StatusCode.FAILED_PRECONDITION, 0),
    ],
)
def test_a_server_abort_propagates_with_its_code(
    fetch: Fetch, code: grpc.StatusCode, after: int
) -> None:
    script: list[Step] = [*chunked(vector(10), [4, 4, 2])[:after], Abort(code, "disk on fire")]
    err = fetch.fails(script, 10, rf"^{fetch.method}: {code.name}: disk on fire$")
    cause = err.__cause__
    assert isinstance(cause, grpc.Call), f"no gRPC status behind {err!r}"
    assert cause.code() == code


def test_a_servicer_crash_mid_stream_is_a_transport_error(fetch: Fetch) -> None:
    script: list[Step] = [chunked(vector(10), [4, 4, 2])[0], Crash("boom")]
    err = fetch.fails(script, 10, r"UNKNOWN")
    cause = err.__cause__
    assert isinstance(cause, grpc.Call)
    assert cause.code() == grpc.StatusCode.UNKNOWN


def test_the_client_still_works_after_a_refused_stream(fetch: Fetch) -> None:
    """A refused stream (the client stops reading mid-way) leaves the channel usable."""
    first, second, third = chunked(vector(10), [4, 4, 2])
    fetch.fails([second, first, third], 10, r"does not continue")
    values = vector(10, seed=9)
    np.testing.assert_array_equal(bits(fetch(chunked(values, [4, 4, 2]), 10)), bits(values))

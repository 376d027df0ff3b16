"""Fuzz cases for every RPC of the Prover's gRPC service, shared by ``tests/test_fuzz_rpc.py``
(a few hundred derandomized cases) and ``benchmarks/bench_fuzz.py`` (10,000 and more).

A :class:`Case` is plain data drawn by hypothesis; :class:`Harness` renders it to request
bytes against a REAL in-process server on 127.0.0.1 (symbolic parts -- "the fresh
session", "the done session's verdict" -- are resolved at send time) and sends them on a
raw channel (``bytes`` in, ``bytes`` out), so the server parses arbitrary protobuf wire
bytes itself. Every answer must be a proper status (:data:`ALLOWED`) whose details do not
show an uncaught exception (:data:`LEAK_MARKERS`), and no uncaught exception may reach
gRPC's own loggers.

Two families of cases (:func:`wire_cases`, :func:`message_cases`; :func:`cases` mixes
them):

* wire: random bytes, "protobuf soup" (random tags, wire types, lengths and varints,
  well formed or not) and byte-level mutations of a valid serialized request;
* message: well-formed protobuf with random or real session refs (ids of any length,
  other sessions' tokens, flipped bytes), random job ids, random bodies, valid bodies of
  real sessions mutated at the JSON level (NaN/inf, negative and huge numbers, 5000-digit
  integers, 100000-deep nesting, wrong types, missing and extra keys, unknown enum
  strings, lone surrogates), re-encoded canonically or not (spaces, key order, UTF-16, a
  BOM, raw surrogates) and byte-mutated; replays of another session's open, reveal and
  verdict; verdicts re-signed by the real Verifier key after mutation (so the checks
  behind the signature are reached); unknown and duplicated protobuf fields; requests
  over the 4 MiB limit; and OpenSession cases that, when the server accepts mutated
  parameters, drive that session through every later RPC ("follow").

Live sessions (:class:`Live`): ``fresh`` (opened), ``committed`` (attribution committed;
replaced once a reveal is accepted), ``done`` (a whole real audit whose verdict was held
back: it has a finished job, both commitments and a valid verdict body to mutate).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from attribution.commitments import SigningKey
from attribution.execution import SerialExecutor
from attribution.protocol.messages import (
    AttributionCommitment,
    ChallengeReveal,
    EvaluationCommitment,
    OpenSession,
    SessionOpened,
    VerdictMessage,
)
from attribution.protocol.params import DeltaSplit, ProtocolParams
from attribution.protocol.verifier import VerifierSession
from attribution.v1 import prover_pb2 as pb
from prover.server import RunningServer, start_server
from tests.prover.test_service_security import Env, Manual, audit, new_verifier
from verifier.client import ProverClient

Code = grpc.StatusCode
SERVICE = pb.DESCRIPTOR.services_by_name["ProverService"]
METHODS: tuple[str, ...] = tuple(m.name for m in SERVICE.methods)
STREAMING = frozenset(m.name for m in SERVICE.methods if m.server_streaming)
REQUEST = {m.name: getattr(pb, m.input_type.name) for m in SERVICE.methods}
RESPONSE = {m.name: getattr(pb, m.output_type.name) for m in SERVICE.methods}
WITH_SESSION = frozenset(n for n in METHODS if "session" in REQUEST[n].DESCRIPTOR.fields_by_name)
WITH_BODY = frozenset(n for n in METHODS if "body" in REQUEST[n].DESCRIPTOR.fields_by_name)

ALLOWED = frozenset(
    {
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.FAILED_PRECONDITION,
        Code.NOT_FOUND,
        Code.PERMISSION_DENIED,
        Code.ALREADY_EXISTS,
        Code.RESOURCE_EXHAUSTED,
        Code.UNAUTHENTICATED,
    }
)
# what gRPC Python puts in the details of a call whose handler raised (or whose request
# could not be parsed): an internal error, whatever the status code
LEAK_MARKERS = (
    "Traceback",
    "Exception calling application",
    "Exception deserializing request",
    "Exception iterating responses",
    "Exception serializing response",
)
MAX_MESSAGE = 4 * 1024 * 1024  # gRPC's default receive limit
FOLLOW_MAX_ROWS = 4096  # "follow" cases train E only when it is this small
CALL_TIMEOUT = 30.0


# -- the task, the server and the checks ------------------------------------------------------
def start_fuzz_server(env: Env, store: Path) -> RunningServer:
    """An honest Prover on 127.0.0.1:0 whose session limits are out of the way (fuzzed
    OpenSession calls succeed and would otherwise exhaust them; that path has its tests)."""
    running = start_server(
        env.honest,
        SigningKey.generate(),
        SerialExecutor(),
        store,
        host="127.0.0.1",
        port=0,
        max_sessions_per_client=10**9,
    )
    running.servicer.max_sessions = 10**9
    return running


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    responses: int  # messages received (streams), 1 for a successful unary call
    payload: bytes = b""  # the response of a successful unary call


def problem_of(answer: Answer) -> str | None:
    """Why ``answer`` is not a proper status, or None; the same cause gives the same text
    (numbers in the details are masked)."""
    cause = re.sub(r"\d+", "N", answer.details.removeprefix("Exception calling application: "))
    cause = cause if len(cause) <= 90 else cause[:87] + "..."
    if answer.code not in ALLOWED:
        return f"status {answer.code.name}: {cause}"
    leaked = [m for m in LEAK_MARKERS if m in answer.details]
    if leaked:
        return f"{answer.code.name} with internal-error details: {cause}"
    return None


class GrpcErrorLog(logging.Handler):
    """Counts what gRPC's server logs at ERROR: an exception that escaped a handler, a
    response iterator or the request parser."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.last = ""
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.count += 1
            self.last = record.getMessage()


# -- protobuf wire helpers ---------------------------------------------------------------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def wire_field(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


def unknown_field(number: int, wire_type: int, value: int, data: bytes) -> bytes:
    """A well-formed field (varint, fixed64, bytes or fixed32)."""
    if wire_type == 0:
        return wire_field(number, 0, varint(value))
    if wire_type == 1:
        return wire_field(number, 1, (value % 2**64).to_bytes(8, "little"))
    if wire_type == 5:
        return wire_field(number, 5, (value % 2**32).to_bytes(4, "little"))
    return wire_field(number, 2, varint(len(data)) + data)


# -- mutations -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ByteOp:
    kind: str  # flip | truncate | insert | delete | duplicate
    at: int
    data: bytes = b"\x01"
    length: int = 1


def apply_byte_ops(data: bytes, ops: Iterable[ByteOp]) -> bytes:
    for op in ops:
        n = len(data)
        i = op.at % (n + 1)
        if op.kind == "flip" and n:
            j = op.at % n
            data = data[:j] + bytes([data[j] ^ (op.data[0] or 1)]) + data[j + 1 :]
        elif op.kind == "truncate":
            data = data[:i]
        elif op.kind == "insert":
            data = data[:i] + op.data + data[i:]
        elif op.kind == "delete":
            data = data[:i] + data[i + op.length :]
        elif op.kind == "duplicate":
            seg = data[i : i + op.length]
            data = data[:i] + seg + seg + data[i + op.length :]
    return data


@dataclass(frozen=True)
class RawJSON:
    """JSON text inserted verbatim where a value goes (what ``json.dumps`` cannot or will
    not write: 5000-digit integers, deep nesting, 1e999, ...)."""

    text: str
    label: str = ""

    def __repr__(self) -> str:
        return f"RawJSON({self.label or self.text!r})"


NASTY_JSON: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0,
    -1,
    1,
    2,
    0.5,
    1.5,
    1e308,
    5e-324,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63,
    2**64,
    2**64 + 1,
    -(2**63) - 1,
    10**400,
    -(10**400),
    True,
    False,
    None,
    "",
    "\x00",
    "\ud800",
    "\udfff\ud800",
    "\u00e9",
    "ACCEPT",
    "REJECT",
    "INCONCLUSIVE",
    "MAYBE",
    "accept",
    "bogus",
    "open",
    "verdict",
    "reveal_challenge",
    "residual",
    "paper",
    "theory",
    "naive",
    "nnls",
    "delegated",
    "0",
    "00",
    "zz",
    "0g",
    "AB" * 32,
    "ab" * 31,
    "ab" * 33,
    "00" * 32,
    " 00",
    [],
    {},
    [1, 2, 3],
    [-1, -1, -1],
    [0, 0, 0],
    [2**64, 0, 0],
    [1.5, 1, 1],
    [math.nan, 1, 1],
    ["a"],
    [[]],
    {"noise": math.nan, "corruption": 0.25, "bias": 0.25},
    {"noise": 2.0, "corruption": -1.0, "bias": 0.0},
    {"": None},
    RawJSON("1" * 5000, "5000-digit integer"),
    RawJSON("-" + "9" * 4301, "-(4301 nines)"),
    RawJSON("[" * 100_000 + "]" * 100_000, "array nested 100000 deep"),
    RawJSON('{"a":' * 20_000 + "1" + "}" * 20_000, "object nested 20000 deep"),
    RawJSON("1e999"),
    RawJSON("-1e999"),
    RawJSON("NaN"),
    RawJSON("-Infinity"),
    RawJSON('"' + "x" * 100_000 + '"', "100000-character string"),
    RawJSON('"\\ud800"'),
    RawJSON('"\\u0000"'),
    RawJSON("1.0"),
    RawJSON("1E2"),
    RawJSON("0x10"),
    RawJSON("01"),
    RawJSON("tru"),
    RawJSON("", "nothing"),
)

NASTY_BODIES: tuple[bytes, ...] = (
    b"",
    b"{}",
    b"[]",
    b"null",
    b"NaN",
    b"Infinity",
    b"1" * 5000,
    b"[" * 100_000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"type":' * 10_000,
    b"\xff\xfe{\x00}\x00",
    b"\xef\xbb\xbf{}",
    b'"\\ud800"',
    b'{"type":"open"}',
    b'{"type":"verdict"}',
    b'{"type":"reveal_challenge","salt":"","seed":""}',
    b'{"salt":"","seed":"","type":"reveal_challenge"}',
    b'{"salt":"0","seed":"","type":"reveal_challenge"}',
    b'{"salt":"","seed":"","type":"reveal_challenge","zzz":1}',
    b'{"type":"reveal_challenge","type":"reveal_challenge"}',
    b"\x00" * 64,
)

FIELD_NAMES: tuple[str, ...] = tuple(
    sorted(
        {"type"}
        | {
            f
            for cls in (
                OpenSession,
                SessionOpened,
                AttributionCommitment,
                ChallengeReveal,
                EvaluationCommitment,
                VerdictMessage,
                ProtocolParams,
                DeltaSplit,
            )
            for f in cls.__dataclass_fields__
        }
    )
)


@dataclass(frozen=True)
class JsonOp:
    kind: str  # set | delete | add | param (set params[key])
    where: int  # index (mod the node count) into the document's nodes, root first
    value: Any = None
    key: str = ""


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for k in doc:
            out += _nodes(doc[k], (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _nodes(v, (*path, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def apply_json_ops(doc: Any, ops: Iterable[JsonOp]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        value = copy.deepcopy(op.value)  # never share (and so alter) a value between cases
        if op.kind == "param":  # set params[key]
            if isinstance(doc, dict) and isinstance(doc.get("params"), dict):
                doc["params"][op.key] = value
            continue
        nodes = _nodes(doc)
        path = nodes[op.where % len(nodes)]
        node = _get(doc, path)
        if op.kind == "add" and isinstance(node, dict):
            node[op.key] = value
        elif op.kind == "add" and isinstance(node, list):
            node.append(value)
        elif op.kind == "delete" and path:
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
        elif not path:
            doc = value
        else:
            _get(doc, path[:-1])[path[-1]] = value
    return doc


STYLES = ("canonical", "canonical", "canonical", "spaced", "reversed", "unicode", "utf16", "bom")
_PLACEHOLDER = "@@raw-json-{}@@"


def dump_json(doc: Any, style: str = "canonical") -> bytes:
    """``doc`` as JSON bytes; ``canonical`` is the protocol's form (sorted keys, no
    spaces, ASCII only, NaN/Infinity written as Python writes them)."""
    raws: list[RawJSON] = []

    def swap(v: Any) -> Any:
        if isinstance(v, RawJSON):
            raws.append(v)
            return _PLACEHOLDER.format(len(raws) - 1)
        if isinstance(v, dict):
            items = [(k, swap(x)) for k, x in v.items()]
            return dict(reversed(items) if style == "reversed" else items)
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    plain = swap(doc)
    if style == "spaced":
        text = json.dumps(plain, sort_keys=True)
    elif style == "reversed":
        text = json.dumps(plain, separators=(",", ":"))
    else:
        ascii_ = style != "unicode"
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(_PLACEHOLDER.format(i)), raw.text)
    if style == "utf16":
        return text.encode("utf-16", "surrogatepass")
    data = text.encode("utf-8", "surrogatepass")
    return b"\xef\xbb\xbf" + data if style == "bom" else data


# -- the symbolic parts of a case --------------------------------------------------------------
LIVE = ("fresh", "committed", "done")


@dataclass(frozen=True)
class LiveRef:
    """The ref of a live session, possibly mutated or with another session's token."""

    name: str
    id_ops: tuple[ByteOp, ...] = ()
    token_ops: tuple[ByteOp, ...] = ()
    token_of: str | None = None


@dataclass(frozen=True)
class LiteralRef:
    session_id: bytes
    session_token: bytes


Ref = LiveRef | LiteralRef


# bases of derived bodies: "open:new" is a fresh Verifier's open message (a new session
# each time); the others are messages of the live sessions (valid, or replays elsewhere)
BASES = (
    "open:new",
    "open:fresh",
    "open:done",
    "reveal:committed",
    "reveal:done",
    "reveal:forged",
    "verdict:done",
)
PREFERRED_BASES = {
    "OpenSession": ("open:new", "open:new", "open:fresh", "open:done"),
    "RevealChallengeSeed": ("reveal:committed", "reveal:committed", "reveal:done"),
    "DeliverVerdict": ("verdict:done",),
}
PREFERRED_TARGETS = {
    "CommitAttribution": ("fresh", "fresh", "committed", "done"),
    "RevealChallengeSeed": ("committed", "committed", "fresh", "done"),
}


@dataclass(frozen=True)
class DerivedBody:
    base: str
    json_ops: tuple[JsonOp, ...] = ()
    style: str = "canonical"
    byte_ops: tuple[ByteOp, ...] = ()
    resign: bool = False  # verdicts: signed again with the done session's Verifier key


@dataclass(frozen=True)
class LiteralBody:
    data: bytes

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 80 else self.data[:40] + b"..." + self.data[-8:]
        return f"LiteralBody({shown!r}, {len(self.data)} bytes)"


Body = DerivedBody | LiteralBody


@dataclass(frozen=True)
class Case:
    """One request. ``raw`` is sent as is; otherwise the request is built from ``ref``,
    ``body`` and ``job_id``, serialized (twice, concatenated, when ``twice``: protobuf
    merges), followed by ``extra`` and mutated by ``wire``."""

    method: str
    kind: str
    raw: bytes | None = None
    ref: Ref | None = None
    body: Body | None = None
    job_id: str | None = None  # "@job:done" is the done session's job
    extra: bytes = b""
    twice: bool = False
    wire: tuple[ByteOp, ...] = ()
    oversize: bool = False
    follow: bool = False


# -- strategies ------------------------------------------------------------------------------
byte_op = st.builds(
    ByteOp,
    kind=st.sampled_from(("flip", "truncate", "insert", "delete", "duplicate")),
    at=st.integers(0, 2**20),
    data=st.binary(min_size=1, max_size=16),
    length=st.integers(1, 64),
)
byte_ops = st.lists(byte_op, min_size=1, max_size=3).map(tuple)
some_byte_ops = st.one_of(st.just(()), st.just(()), byte_ops)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
json_value = st.one_of(
    st.sampled_from(NASTY_JSON),
    st.sampled_from(NASTY_JSON),
    st.recursive(
        json_leaf,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=6,
    ),
    st.binary(max_size=40).map(bytes.hex),
)
json_key = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.just("\ud800"))
json_op = st.builds(
    JsonOp,
    kind=st.sampled_from(("set", "set", "set", "delete", "add")),
    where=st.integers(0, 10**6),
    value=json_value,
    key=json_key,
)


# parameter values a Prover may well accept, at their extremes (for "follow" cases)
PLAUSIBLE_PARAMS: dict[str, tuple[Any, ...]] = {
    "n_pairs": ([0, 0, 0], [1, 0, 0], [0, 0, 1], [3, 2, 1], [0, 40, 0]),
    "n_single": (0, 1, 7),
    "k": (0, 1, 2**64, 10**30),
    "m": (0, 3, 2**63),
    "rho": (5e-324, 1e-9, 0.5, 0.25),
    "eta": (0.0, 0.0999),
    "epsilon": (5e-324, 1e308, 0.2),
    "delta": (5e-324, 0.999999),
    "outputs": ([], [0], [0, 0]),
    "estimator": ("paper", "residual"),
    "preset": ("theory", "explicit"),
    "mode": ("noninteractive", "naive"),
    "fit": ("nnls",),
    "mse_source": ("delegated",),
    "split": (
        {"noise": 1.0, "corruption": 0.0, "bias": 0.0},
        {"noise": 2.0, "corruption": -1.0, "bias": 0.0},
        {"noise": math.nan, "corruption": 0.25, "bias": 0.25},
    ),
}


@st.composite
def plausible_params(draw: st.DrawFn) -> tuple[JsonOp, ...]:
    """1 to 4 "set" operations on the open message's params (``where`` is resolved by
    key, see :func:`apply_json_ops`), rarely one arbitrary mutation on top."""
    keys = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE_PARAMS)), min_size=1, max_size=4))
    ops = [JsonOp("param", 0, draw(st.sampled_from(PLAUSIBLE_PARAMS[k])), k) for k in keys]
    if draw(st.integers(0, 9)) == 0:
        ops.append(draw(json_op))
    return tuple(ops)


def _session_id() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(min_size=16, max_size=16),
        st.sampled_from((b"", b"\x00" * 15, b"\x00" * 16, b"\x00" * 17, b"\xff" * 16)),
        st.binary(max_size=64),
    )


literal_ref = st.builds(LiteralRef, session_id=_session_id(), session_token=st.binary(max_size=40))


def live_ref(targets: tuple[str, ...] = LIVE) -> st.SearchStrategy[LiveRef]:
    clean = st.builds(LiveRef, name=st.sampled_from(targets))
    dirty = st.builds(
        LiveRef,
        name=st.sampled_from(targets),
        id_ops=some_byte_ops,
        token_ops=some_byte_ops,
        token_of=st.one_of(st.none(), st.sampled_from(LIVE)),
    )
    return st.one_of(clean, clean, dirty)


def refs(method: str) -> st.SearchStrategy[Ref | None]:
    targets = PREFERRED_TARGETS.get(method, ("done", "done", "fresh", "committed"))
    return st.one_of(live_ref(targets), live_ref(targets), literal_ref, st.none())


literal_body = st.one_of(
    st.sampled_from(NASTY_BODIES), st.binary(max_size=300), st.text(max_size=60).map(str.encode)
).map(LiteralBody)


def derived_body(method: str, *, mutate: bool) -> st.SearchStrategy[DerivedBody]:
    bases = st.one_of(st.sampled_from(PREFERRED_BASES[method]), st.sampled_from(BASES))
    if not mutate:  # replays: another session's valid message, unchanged
        return st.builds(DerivedBody, base=bases)
    return st.builds(
        DerivedBody,
        base=bases,
        json_ops=st.lists(json_op, max_size=3).map(tuple),
        style=st.sampled_from(STYLES),
        byte_ops=st.one_of(st.just(()), st.just(()), st.just(()), byte_ops),
        resign=st.booleans(),
    )


def bodies(method: str) -> st.SearchStrategy[Body | None]:
    if method not in WITH_BODY:
        return st.none()
    return st.one_of(
        derived_body(method, mutate=True),
        derived_body(method, mutate=True),
        derived_body(method, mutate=False),
        literal_body,
    )


job_ids = st.one_of(
    st.just("@job:done"),
    st.sampled_from(("", "no-such-job", "0" * 32, "x" * 10_000, "\u00e9\u0000")),
    st.text(max_size=40),
)
well_formed_unknown = st.lists(
    st.builds(
        unknown_field,
        st.integers(3, 2**29 - 1),
        st.sampled_from((0, 1, 2, 5)),
        st.integers(0, 2**64 - 1),
        st.binary(max_size=32),
    ),
    max_size=3,
).map(b"".join)


@st.composite
def proto_soup(draw: st.DrawFn) -> bytes:
    """Fields with random numbers (0 included), wire types 0..7 (3, 4, 6, 7: groups and
    invalid), varints of any length, length prefixes that lie: often not protobuf."""
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        number = draw(st.one_of(st.integers(0, 4), st.integers(0, 2**29 - 1)))
        wire_type = draw(st.integers(0, 7))
        if wire_type == 0:
            payload = draw(st.one_of(st.integers(0, 2**64 - 1).map(varint), st.binary(max_size=12)))
        elif wire_type == 2:
            data = draw(st.binary(max_size=48))
            declared = draw(st.one_of(st.just(len(data)), st.integers(0, 2**64 - 1)))
            payload = varint(declared) + data
        else:
            payload = draw(st.binary(max_size=9))
        parts.append(varint(number << 3 | wire_type) + payload)
    return b"".join(parts)


def _request_parts(method: str, kind: str, body: st.SearchStrategy[Body | None]) -> Any:
    return st.builds(
        Case,
        method=st.just(method),
        kind=st.just(kind),
        ref=refs(method) if method in WITH_SESSION else st.none(),
        body=body,
        job_id=job_ids if method == "WatchJob" else st.none(),
    )


def wire_cases(method: str) -> st.SearchStrategy[Case]:
    """Bytes that need not be protobuf at all."""
    raw = st.one_of(st.binary(max_size=512), proto_soup()).map(lambda b: Case(method, "raw", raw=b))
    valid = _request_parts(method, "wire", bodies(method))
    mutated = st.builds(
        lambda c, ops, soup: Case(
            c.method, "wire", ref=c.ref, body=c.body, job_id=c.job_id, extra=soup, wire=ops
        ),
        valid,
        st.one_of(byte_ops, st.just(())),
        st.one_of(st.just(b""), proto_soup()),
    )
    return st.one_of(raw, mutated)


def message_cases(method: str) -> st.SearchStrategy[Case]:
    """Well-formed protobuf whose contents are random, mutated or replayed."""
    branches: list[st.SearchStrategy[Case]] = [
        _request_parts(method, "fields", st.none() if method not in WITH_BODY else literal_body),
        st.builds(
            lambda c, extra, twice: Case(
                c.method,
                "fields",
                ref=c.ref,
                body=c.body,
                job_id=c.job_id,
                extra=extra,
                twice=twice,
            ),
            _request_parts(method, "fields", bodies(method)),
            well_formed_unknown,
            st.booleans(),
        ),
    ]
    if method in WITH_BODY:
        branches += [
            _request_parts(method, "body-mutation", derived_body(method, mutate=True)),
            _request_parts(method, "body-mutation", derived_body(method, mutate=True)),
            _request_parts(method, "replay", derived_body(method, mutate=False)),
        ]
    if method == "OpenSession":
        follow = st.builds(DerivedBody, base=st.just("open:new"), json_ops=plausible_params())
        branches += [
            st.builds(lambda b: Case(method, "follow", body=b, follow=True), follow),
            st.builds(
                lambda b: Case(method, "follow", body=b, follow=True),
                derived_body(method, mutate=True),
            ),
        ]
    weighted = st.sampled_from(tuple(range(len(branches))) * 12 + (-1,))
    oversized = _request_parts(method, "oversized", bodies(method)).map(
        lambda c: Case(c.method, c.kind, ref=c.ref, body=c.body, job_id=c.job_id, oversize=True)
    )
    return weighted.flatmap(lambda i: oversized if i < 0 else branches[i])


def cases(method: str) -> st.SearchStrategy[Case]:
    return st.one_of(wire_cases(method), message_cases(method), message_cases(method))


# -- the harness ---------------------------------------------------------------------------------
@dataclass
class Live:
    """A session the harness drove itself: its Verifier state, ref and messages."""

    manual: Manual
    open_body: bytes
    reveal_body: bytes = b""
    job_id: str = ""
    verdict_body: bytes = b""
    key: SigningKey | None = None

    @property
    def ref(self) -> pb.SessionRef:
        return self.manual.ref


@dataclass
class Stats:
    cases: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, kind)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, code)
    calls: int = 0
    problems: list[tuple[str, Case, Answer]] = field(default_factory=list)

    def table(self) -> str:
        codes = sorted({c for _, c in self.codes})
        kinds = sorted({k for _, k in self.cases})
        lines = []
        head = f"{'RPC':<20} {'cases':>6} " + " ".join(f"{c[:13]:>13}" for c in codes)
        lines.append(head)
        for m in METHODS:
            n = sum(v for (mm, _), v in self.cases.items() if mm == m)
            row = " ".join(f"{self.codes[(m, c)]:>13}" for c in codes)
            lines.append(f"{m:<20} {n:>6} {row}")
        lines.append("")
        lines.append(f"{'RPC':<20} " + " ".join(f"{k[:13]:>13}" for k in kinds))
        for m in METHODS:
            lines.append(f"{m:<20} " + " ".join(f"{self.cases[(m, k)]:>13}" for k in kinds))
        return "\n".join(lines)


def _same(data: bytes) -> bytes:
    return data


class Harness:
    def __init__(self, running: RunningServer, env: Env, work: Path) -> None:
        self.running = running
        self.env = env
        self.work = work
        self.target = f"127.0.0.1:{running.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stats = Stats()
        self.errors = GrpcErrorLog()
        logging.getLogger("grpc").addHandler(self.errors)
        self._unary: dict[str, grpc.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self._stream: dict[str, grpc.UnaryStreamMultiCallable[bytes, bytes]] = {}
        for m in METHODS:
            path = f"/{SERVICE.full_name}/{m}"
            if m in STREAMING:
                self._stream[m] = self.channel.unary_stream(path, _same, _same)
            else:
                self._unary[m] = self.channel.unary_unary(path, _same, _same)
        self._live: dict[str, Live] = {}
        self.done = self.completed()
        self._live["done"] = self.done

    def close(self) -> None:
        logging.getLogger("grpc").removeHandler(self.errors)
        self.channel.close()

    # -- transport ---------------------------------------------------------------------------
    def send(self, method: str, data: bytes) -> Answer:
        try:
            if method in STREAMING:
                n = 0
                for item in self._stream[method](data, timeout=CALL_TIMEOUT):
                    RESPONSE[method].FromString(item)
                    n += 1
                return Answer(Code.OK, "", n)
            payload = self._unary[method](data, timeout=CALL_TIMEOUT)
            RESPONSE[method].FromString(payload)
            return Answer(Code.OK, "", 1, payload)
        except grpc.RpcError as exc:
            call: Any = exc  # a grpc.Call too
            return Answer(call.code(), call.details() or "", 0)

    def request(self, method: str, **fields: Any) -> Answer:
        return self.send(method, REQUEST[method](**fields).SerializeToString())

    # -- live sessions -----------------------------------------------------------------------
    def call(self, method: str, request: Any) -> Any:
        """A call that must succeed; returns the parsed response (unary) or list (stream)."""
        data = request.SerializeToString()
        if method in STREAMING:
            raw = list(self._stream[method](data, timeout=CALL_TIMEOUT))
            return [RESPONSE[method].FromString(r) for r in raw]
        return RESPONSE[method].FromString(self._unary[method](data, timeout=CALL_TIMEOUT))

    def opened(self, verifier: VerifierSession | None = None) -> Live:
        v = verifier or new_verifier(self.env)
        body = v.open().to_bytes()
        resp = self.call("OpenSession", pb.OpenSessionRequest(body=body))
        v.on_opened(bytes(resp.body))
        ref = pb.SessionRef(session_id=resp.session_id, session_token=resp.session_token)
        return Live(Manual(v, ref), body, key=v.key)

    def committed(self) -> Live:
        live = self.opened()
        resp = self.call("CommitAttribution", pb.CommitAttributionRequest(session=live.ref))
        live.manual.v.on_attribution_commitment(bytes(resp.body))
        s = live.manual.v.secrets
        live.reveal_body = ChallengeReveal(seed=s.seed_e, salt=s.salt_e).to_bytes()
        return live

    def completed(self) -> Live:
        """A session driven through every step up to the verdict, which is kept back: a
        valid verdict body (signed by the Verifier key over the transcript, revealing the
        committed seeds) is ready to be delivered, replayed or mutated."""
        live = self.committed()
        v, ref = live.manual.v, live.ref
        job = self.call(
            "RevealChallengeSeed", pb.RevealChallengeSeedRequest(session=ref, body=live.reveal_body)
        )
        live.job_id = job.job_id
        updates = self.call("WatchJob", pb.WatchJobRequest(session=ref, job_id=job.job_id))
        assert updates[-1].state == pb.JOB_STATE_DONE, updates[-1]
        resp = self.call("CommitEvaluations", pb.CommitEvaluationsRequest(session=ref))
        v.reveal_challenge()
        v.on_evaluation_commitment(bytes(resp.body))
        s = v.secrets
        unsigned = VerdictMessage(
            verdict="ACCEPT",
            reason="",
            certificate_digest=bytes(range(32)),
            seed_c=s.seed_c,
            salt_c=s.salt_c,
            seed_m=s.seed_m,
            salt_m=s.salt_m,
            signature=b"",
        )
        live.verdict_body = dump_json(self.signed_verdict(live, unsigned.to_dict()))
        return live

    def live(self, name: str) -> Live:
        if name not in self._live:
            self._live[name] = self.opened() if name == "fresh" else self.committed()
        return self._live[name]

    def signed_verdict(self, live: Live, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` (a verdict) with a valid signature by ``live``'s Verifier key."""
        assert live.key is not None
        sig = live.key.sign(
            "verdict",
            bytes(live.ref.session_id),
            live.manual.v.head,  # = the Prover's head: the Verifier logged no verdict
            doc["verdict"].encode("utf-8", "surrogatepass"),
            doc["reason"].encode("utf-8", "surrogatepass"),
            bytes.fromhex(doc["certificate_digest"]),
        )
        return {**doc, "signature": sig.hex()}

    def assert_audit_accepts(self) -> None:
        """The server still serves a normal, complete audit (and a health check)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health: Any = health_pb2_grpc.HealthStub(self.channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        with ProverClient(self.target, timeout=CALL_TIMEOUT) as c:
            result = audit(c, self.env, self.work)
        assert result.outcome.verdict == "ACCEPT", result.outcome

    # -- rendering -----------------------------------------------------------------------------
    def ref(self, ref: Ref) -> pb.SessionRef:
        if isinstance(ref, LiteralRef):
            return pb.SessionRef(session_id=ref.session_id, session_token=ref.session_token)
        own = self.live(ref.name).ref
        token = self.live(ref.token_of).ref.session_token if ref.token_of else own.session_token
        return pb.SessionRef(
            session_id=apply_byte_ops(bytes(own.session_id), ref.id_ops),
            session_token=apply_byte_ops(bytes(token), ref.token_ops),
        )

    def base(self, name: str) -> tuple[bytes, Live | VerifierSession | None]:
        kind, _, which = name.partition(":")
        if name == "open:new":
            v = new_verifier(self.env)
            return v.open().to_bytes(), v
        if name == "reveal:forged":
            live = self.live("committed")
            salt = live.manual.v.secrets.salt_e
            return ChallengeReveal(seed=bytes(32), salt=salt).to_bytes(), live
        live = self.live(which)
        body = {"open": live.open_body, "reveal": live.reveal_body, "verdict": live.verdict_body}
        return body[kind], live

    def body(self, body: Body) -> tuple[bytes, Live | VerifierSession | None]:
        if isinstance(body, LiteralBody):
            return body.data, None
        data, origin = self.base(body.base)
        if not (body.json_ops or body.byte_ops or body.resign) and body.style == "canonical":
            return data, origin
        doc = apply_json_ops(json.loads(data), body.json_ops)
        if body.resign and isinstance(origin, Live) and origin.key is not None:
            # not a verdict any more (wrong types, missing fields): left unsigned
            with contextlib.suppress(TypeError, KeyError, ValueError, AttributeError):
                doc = self.signed_verdict(origin, doc)
        return apply_byte_ops(dump_json(doc, body.style), body.byte_ops), origin

    def render(self, case: Case) -> tuple[bytes, VerifierSession | None]:
        """The request bytes, and the Verifier of an "open:new" body (for ``follow``)."""
        if case.raw is not None:
            return case.raw, None
        req = REQUEST[case.method]()
        verifier = None
        if case.ref is not None:
            req.session.CopyFrom(self.ref(case.ref))
        if case.body is not None:
            req.body, origin = self.body(case.body)
            verifier = origin if isinstance(origin, VerifierSession) else None
        if case.job_id is not None:
            req.job_id = self.live("done").job_id if case.job_id == "@job:done" else case.job_id
        if case.oversize and case.method in WITH_BODY:
            req.body = b"x" * (MAX_MESSAGE + 1)
        data = req.SerializeToString()
        if case.twice:
            data += data
        data = apply_byte_ops(data + case.extra, case.wire)
        if case.oversize and case.method not in WITH_BODY:
            data += unknown_field(15, 2, 0, b"x" * (MAX_MESSAGE + 1))
        return data, verifier

    # -- running a case ----------------------------------------------------------------------
    def record(self, method: str, kind: str, case: Case, answer: Answer, logged: int) -> None:
        self.stats.calls += 1
        self.stats.codes[(method, answer.code.name)] += 1
        problem = problem_of(answer)
        if problem is None and self.errors.count > logged:
            problem = f"gRPC logged an uncaught exception: {self.errors.last}"
        if problem is not None:
            self.stats.problems.append((f"{method}: {problem}", case, answer))

    def run(self, case: Case) -> list[str]:
        """Send ``case`` (and, for ``follow``, the session's later steps); every problem."""
        before = len(self.stats.problems)
        self.stats.cases[(case.method, case.kind)] += 1
        data, verifier = self.render(case)
        logged = self.errors.count
        answer = self.send(case.method, data)
        self.record(case.method, case.kind, case, answer, logged)
        moved = case.method in ("CommitAttribution", "RevealChallengeSeed")
        ref = case.ref
        if answer.code == Code.OK and moved and isinstance(ref, LiveRef) and ref.name != "done":
            self._live.pop(ref.name, None)  # the step moved it on: a new one from now on
        if case.follow and answer.code == Code.OK and verifier is not None:
            self.follow(case, data, answer, verifier)
        return [p for p, _, _ in self.stats.problems[before:]]

    def follow(self, case: Case, data: bytes, answer: Answer, verifier: VerifierSession) -> None:
        """Drive a session opened with mutated parameters through every later RPC (when
        its E is small enough to train here)."""
        opened = pb.OpenSessionResponse.FromString(answer.payload)
        doc = json.loads(pb.OpenSessionRequest.FromString(data).body)
        if ProtocolParams.from_dict(doc["params"]).n_challenges > FOLLOW_MAX_ROWS:
            return
        ref = pb.SessionRef(session_id=opened.session_id, session_token=opened.session_token)
        s = verifier.secrets
        reveal = ChallengeReveal(seed=s.seed_e, salt=s.salt_e).to_bytes()

        def step(method: str, request: Any) -> Answer:
            logged = self.errors.count
            got = self.send(method, request.SerializeToString())
            self.record(method, "follow", case, got, logged)
            return got

        step("CommitAttribution", pb.CommitAttributionRequest(session=ref))
        step("StreamAttribution", pb.StreamAttributionRequest(session=ref))
        got = step("RevealChallengeSeed", pb.RevealChallengeSeedRequest(session=ref, body=reveal))
        job_id = pb.RevealChallengeSeedResponse.FromString(got.payload).job_id
        step("WatchJob", pb.WatchJobRequest(session=ref, job_id=job_id))
        step("CommitEvaluations", pb.CommitEvaluationsRequest(session=ref))
        step("StreamEvaluations", pb.StreamEvaluationsRequest(session=ref))
        step("DeliverVerdict", pb.DeliverVerdictRequest(session=ref, body=b"{}"))


# -- running many cases ------------------------------------------------------------------------
def fuzz(
    harness: Harness,
    strategy: st.SearchStrategy[Case],
    examples: int,
    *,
    seed: int | None = None,
    strict: bool = True,
) -> None:
    """Run ``examples`` cases drawn from ``strategy``: derandomized when ``seed`` is None;
    ``strict`` fails (and shrinks) at the first problem, otherwise problems are only
    recorded in ``harness.stats``."""

    def check(case: Case) -> None:
        problems = harness.run(case)
        if strict:
            assert not problems, f"{problems[0]}\ncase: {case!r}"

    run: Callable[[], None] = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink)
        if strict
        else (Phase.explicit, Phase.generate),
        print_blob=False,
    )(given(strategy)(check))
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()

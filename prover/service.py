"""The Prover's gRPC servicer: sessions, training jobs, commitments and streams.

Training never runs inside an RPC: ``RevealChallengeSeed`` starts a job on a background
thread that feeds the shared executor and writes a resumable result store (one per
session, ``<store_root>/<session id hex>/retrain``); ``WatchJob`` streams its progress.
Sessions live until the verdict and survive client disconnects (a client resumes with the
session id and token) and server crashes: every step is saved to the session's sealed
``session.json`` (:mod:`prover.session_file`) before it is answered, and
:meth:`ProverServicer.restore` replays the saved sessions of a store on start-up and
restarts their unfinished training jobs, which skip the rows already in the store. Bad
input maps to gRPC status codes (docs/protocol.md section 2.8) and never takes the server down.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from attribution import __version__
from attribution.commitments import LEAF_VALUES, SigningKey
from attribution.errors import ProtocolError, StoreCorruptError, StoreMismatchError, UsageError
from attribution.execution import ResultStore, run_plan
from attribution.execution.executors import Executor
from attribution.protocol import need
from attribution.protocol.common import Phase
from attribution.protocol.messages import MessageError
from attribution.protocol.prover import ChallengeTooLarge, ProverSession
from attribution.v1 import common_pb2, prover_pb2, prover_pb2_grpc
from prover.served import ServedTask
from prover.session_file import SESSION_FILE, SessionRecord

log = logging.getLogger("vattr.prover")
FloatArray = npt.NDArray[np.float64]
R = TypeVar("R")
CHUNK_VALUES = 64 * LEAF_VALUES  # 512 KiB of float64 per stream message


@dataclass
class Job:
    job_id: str
    total: int
    done: int = 0
    state: prover_pb2.JobState.ValueType = prover_pb2.JOB_STATE_RUNNING
    message: str = ""
    values: FloatArray | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    trained: int = 0  # trainings run by this process (rows found in the store excluded)


@dataclass
class ServerSession:
    session: ProverSession
    token_digest: bytes  # SHA-256 of the session token: the capability is not kept
    owner: str
    open_body: bytes = b""  # the Verifier's OpenSession bytes; b"" = not persisted (tests)
    closed: str = ""  # "decided" or "abandoned" once closed (see prover.session_file)
    lock: threading.Lock = field(default_factory=threading.Lock)
    attribution_body: bytes = b""
    reveal_body: bytes = b""
    job: Job | None = None
    evaluations: FloatArray | None = None
    evaluations_body: bytes = b""
    created: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)

    def idle(self, now: float) -> float:
        """Seconds since the last call; a running job counts as activity."""
        job = self.job
        if job is not None and not job.finished.is_set():
            return 0.0
        return now - self.last_seen


class _Paused(Exception):
    """Raised between blocks of a training job when the server stops."""


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _details(message: str) -> str:
    """``message`` as gRPC can send it (UTF-8): an error message may quote the client's
    input, and a lone surrogate in it would make the abort itself raise."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _peer_identity(context: grpc.ServicerContext) -> str:
    """Who is calling, for per-client limits: the TLS client certificate's identity, else
    a digest of the bearer token, else the peer's host."""
    auth: Any = context.auth_context()
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        if auth.get(key):
            return "cert:" + b",".join(list(auth[key])).decode(errors="replace")
    md = dict(context.invocation_metadata())
    token = md.get("authorization")
    if token:
        raw = token.encode() if isinstance(token, str) else bytes(token)
        return "token:" + hashlib.sha256(raw).hexdigest()[:16]
    peer = context.peer()  # e.g. ipv4:127.0.0.1:53412 -- the host, not the port
    return "peer:" + peer.rsplit(":", 1)[0]


class ProverServicer(prover_pb2_grpc.ProverServiceServicer):
    def __init__(
        self,
        served: ServedTask,
        key: SigningKey,
        executor: Executor,
        store_root: Path,
        *,
        max_sessions: int = 64,
        max_sessions_per_client: int = 16,
        batch_size: int = 256,
        nonce_source: Callable[[], bytes] | None = None,
        session_ttl: float = 24 * 3600.0,
        max_challenges: int = 1_000_000,
    ) -> None:
        # max_challenges: the most trainings one session may ask for (|E|); a bound on
        # the work any authenticated client can make this Prover do per session
        self.max_challenges = max_challenges
        self.session_ttl = session_ttl
        # nonce_source: reproducible nonces for tests and benchmarks only (default: random)
        self._nonce_source = nonce_source
        self.served = served
        self.key = key
        self.executor = executor
        self.store_root = store_root
        self.max_sessions = max_sessions
        self.max_sessions_per_client = max_sessions_per_client
        self.batch_size = batch_size
        self._sessions: dict[bytes, ServerSession] = {}
        self._lock = threading.Lock()
        self._executor_lock = threading.Lock()
        self._stopping = threading.Event()
        self._job_threads: list[threading.Thread] = []

    # -- what is committed and streamed ---------------------------------------------------
    # The honest Prover commits to the f-values it trained and streams exactly what it
    # committed to. These are the only points where a Prover's content is chosen; the
    # red-team Provers of ``vattr.redteam`` override them (this package has no such code).
    def committed_evaluations(self, session: ProverSession, trained: FloatArray) -> FloatArray:
        """The f-values of E to commit to (``trained``: the job's values, (|E|, outputs))."""
        return trained

    def streamed_evaluations(self, committed: FloatArray) -> FloatArray:
        """The f-values streamed after their commitment."""
        return committed

    def streamed_attribution(self) -> FloatArray:
        """The attribution streamed after its commitment."""
        return self.served.attribution

    # -- plumbing ------------------------------------------------------------------------
    def stop(self) -> None:
        """Refuse new sessions and pause running jobs at their next block boundary (their
        stores keep every finished row; a restart on the same store resumes them)."""
        self._stopping.set()

    def join_jobs(self, timeout: float = 120.0) -> bool:
        """Wait for paused or finished job threads (after :meth:`stop`), so that their
        stores are closed and unlocked; False if some are still running at the timeout."""
        deadline = time.monotonic() + timeout
        for thread in list(self._job_threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._job_threads)

    def _call(self, context: grpc.ServicerContext, fn: Callable[..., R], *args: Any) -> R:
        try:
            return fn(*args)
        except _Abort as exc:
            context.abort(exc.code, _details(exc.message))
        except MessageError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _details(str(exc)))
        except ProtocolError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _details(str(exc)))
        except UsageError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _details(str(exc)))
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _session(self, ref: prover_pb2.SessionRef) -> ServerSession:
        if len(ref.session_id) != 16:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id must be 16 bytes")
        with self._lock:
            s = self._sessions.get(bytes(ref.session_id))
        if s is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, "unknown session")
        given = hashlib.sha256(bytes(ref.session_token)).digest()
        if not hmac.compare_digest(given, s.token_digest):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, "wrong session token")
        s.last_seen = time.monotonic()
        return s

    # -- RPCs ----------------------------------------------------------------------------
    def DescribeTasks(
        self, request: prover_pb2.DescribeTasksRequest, context: grpc.ServicerContext
    ) -> prover_pb2.DescribeTasksResponse:
        t = self.served.task
        info = common_pb2.TaskDescription(
            name=t.spec.name,
            digest=t.digest,
            num_points=t.n_points,
            num_outputs=t.n_outputs,
            output_bound=t.bound,
            p_u32=round(t.spec.p * 2**32),
            tolerance=t.tau,
        )
        served = prover_pb2.ServedTask(task=info, residual_hint=list(self.served.residual_hint))
        return prover_pb2.DescribeTasksResponse(
            tasks=[served], prover_key=self.key.public_key_raw, version=__version__
        )

    def OpenSession(
        self, request: prover_pb2.OpenSessionRequest, context: grpc.ServicerContext
    ) -> prover_pb2.OpenSessionResponse:
        return self._call(context, self._open, bytes(request.body), _peer_identity(context))

    def _open(self, body: bytes, owner: str) -> prover_pb2.OpenSessionResponse:
        if self._stopping.is_set():
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        nonce = self._nonce_source() if self._nonce_source is not None else None
        session = ProverSession(self.served.info, self.served.task.digest, self.key, nonce)
        try:
            opened = session.on_open(body)
        except ProtocolError as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        self._check_params(session)
        abandoned: list[ServerSession] = []
        try:
            return self._admit(session, owner, body, opened.to_bytes(), abandoned)
        finally:
            for gone in abandoned:  # a restart must not bring them back
                gone.closed = "abandoned"
                with contextlib.suppress(_Abort):
                    self._save(gone)
                log.info("session %s abandoned (idle) and evicted", gone.session.session_id.hex())

    def _admit(
        self,
        session: ProverSession,
        owner: str,
        body: bytes,
        reply: bytes,
        abandoned: list[ServerSession],
    ) -> prover_pb2.OpenSessionResponse:
        """Register an opened session within the limits; evicted idle sessions are
        appended to ``abandoned``."""
        with self._lock:
            existing = self._sessions.get(session.session_id)
            if existing is not None:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS, "this session is already open")
            if len(self._sessions) >= self.max_sessions:
                # make room: decided sessions have served their purpose, and sessions idle
                # longer than session_ttl were abandoned (a resumable client comes back
                # well within it)
                now = time.monotonic()
                for sid in [
                    k
                    for k, v in self._sessions.items()
                    if v.session.phase == Phase.DECIDED or v.idle(now) > self.session_ttl
                ]:
                    gone = self._sessions.pop(sid)
                    if gone.session.phase != Phase.DECIDED:
                        abandoned.append(gone)
            if len(self._sessions) >= self.max_sessions:
                raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many open sessions")
            mine = sum(
                1
                for s in self._sessions.values()
                if s.owner == owner and s.session.phase != Phase.DECIDED
            )
            if mine >= self.max_sessions_per_client:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"at most {self.max_sessions_per_client} open sessions per client",
                )
            token = secrets.token_bytes(32)
            s = ServerSession(session, hashlib.sha256(token).digest(), owner, body)
            self._sessions[session.session_id] = s
        try:
            self._save(s)
        except _Abort:
            with self._lock:
                self._sessions.pop(session.session_id, None)
            raise
        log.info("session %s opened by %s", session.session_id.hex(), owner)
        return prover_pb2.OpenSessionResponse(
            body=reply, session_id=session.session_id, session_token=token
        )

    def _save(self, s: ServerSession) -> None:
        """Save the session's inputs (atomically, before the step is answered, so a crash
        never loses an answered step)."""
        if not s.open_body:
            return
        record = SessionRecord(
            s.session.session_id,
            s.open_body,
            s.session.nonce,
            self.key.public_key_raw,
            s.token_digest,
            s.owner,
            s.attribution_body,
            s.reveal_body,
            s.job.job_id if s.job is not None else "",
            s.evaluations_body,
            s.closed,
        )
        try:
            record.save(self.store_root)
        except (OSError, UsageError) as exc:
            log.error("cannot save session %s: %s", s.session.session_id.hex(), exc)
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "the Prover cannot save its state") from exc

    def restore(self) -> int:
        """Resume the sessions saved under ``store_root`` (after a crash or restart).

        Each undecided session is replayed from its saved inputs; every replayed
        commitment must equal the saved bytes. Unfinished training jobs restart and skip
        the rows already in their stores. A session that cannot be replayed (another key
        or attribution, a damaged file) is logged and left on disk untouched. Returns the
        number of sessions resumed.
        """
        records: list[tuple[float, Path, SessionRecord]] = []
        for path in self.store_root.glob(f"*/{SESSION_FILE}"):
            try:
                rec = SessionRecord.load(path)
            except (UsageError, StoreCorruptError) as exc:
                log.warning("session state %s not resumed: %s", path, exc)
                continue
            if not rec.closed:
                records.append((path.stat().st_mtime, path, rec))
        records.sort(key=lambda r: r[0])
        resumed = 0
        for _, path, rec in records[-self.max_sessions :]:  # the most recent open ones
            try:
                s = self._replay(rec)
            except (UsageError, StoreCorruptError, ProtocolError, MessageError, _Abort) as exc:
                log.warning("session state %s not resumed: %s", path, exc)
                continue
            with self._lock:
                self._sessions[s.session.session_id] = s
            if s.job is not None and not s.job.finished.is_set():
                self._start(s, s.job)
            resumed += 1
            log.info("session %s resumed (%s)", path.parent.name, s.session.phase.name)
        return resumed

    def _replay(self, rec: SessionRecord) -> ServerSession:
        if rec.prover_key != self.key.public_key_raw:
            raise StoreMismatchError("opened under another Prover key")
        session = ProverSession(self.served.info, self.served.task.digest, self.key, rec.nonce)
        session.on_open(rec.open_body)
        if session.session_id != rec.session_id:
            raise StoreCorruptError("the saved OpenSession is not this session's")
        self._check_params(session)
        s = ServerSession(session, rec.token_digest, rec.owner, rec.open_body)
        if rec.attribution_body:
            s.attribution_body = session.commit_attribution(self.served.attribution).to_bytes()
            if s.attribution_body != rec.attribution_body:
                raise ProtocolError("the served attribution is not the one committed to")
        if rec.reveal_body:
            plan = session.on_challenge(rec.reveal_body)
            s.reveal_body = rec.reveal_body
            s.job = Job(rec.job_id, plan.n_rows)
        if rec.evaluations_body:
            job = need(s.job, "training job")
            self._train(s, job)  # the store is complete: this reloads the rows
            self._commit_evaluations_locked(s)
            if s.evaluations_body != rec.evaluations_body:
                raise ProtocolError("the replayed f-value commitment differs from the saved one")
        return s

    def _check_params(self, session: ProverSession) -> None:
        params = session.params
        if params is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "missing protocol parameters")
        if any(not 0 <= o < self.served.task.n_outputs for o in params.outputs):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "output index out of range")
        if params.n_challenges > self.max_challenges:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"|E| = {params.n_challenges} exceeds this Prover's limit of "
                f"{self.max_challenges} trainings per session",
            )

    def CommitAttribution(
        self, request: prover_pb2.CommitAttributionRequest, context: grpc.ServicerContext
    ) -> prover_pb2.CommitAttributionResponse:
        return self._call(context, self._commit_attribution, request.session)

    def _commit_attribution(
        self, ref: prover_pb2.SessionRef
    ) -> prover_pb2.CommitAttributionResponse:
        s = self._session(ref)
        with s.lock:
            if not s.attribution_body:
                msg = s.session.commit_attribution(self.served.attribution)
                s.attribution_body = msg.to_bytes()
                self._save(s)
            return prover_pb2.CommitAttributionResponse(body=s.attribution_body)

    def RevealChallengeSeed(
        self, request: prover_pb2.RevealChallengeSeedRequest, context: grpc.ServicerContext
    ) -> prover_pb2.RevealChallengeSeedResponse:
        return self._call(context, self._reveal, request.session, bytes(request.body))

    def _reveal(
        self, ref: prover_pb2.SessionRef, body: bytes
    ) -> prover_pb2.RevealChallengeSeedResponse:
        s = self._session(ref)
        with s.lock:
            if s.job is not None:
                if body != s.reveal_body:
                    raise _Abort(grpc.StatusCode.ALREADY_EXISTS, "another challenge was revealed")
                return prover_pb2.RevealChallengeSeedResponse(
                    job_id=s.job.job_id, total=s.job.total
                )
            if s.session.phase != Phase.ATTRIBUTION:
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "reveal the challenge after the attribution commitment",
                )
            try:
                plan = s.session.on_challenge(body, max_rows=self.max_challenges)
            except ChallengeTooLarge as exc:  # a pilot-sized E beyond this Prover's limit
                raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
            s.reveal_body = body
            job = Job(uuid.uuid4().hex, plan.n_rows)
            s.job = job
            self._save(s)
        self._start(s, job)
        return prover_pb2.RevealChallengeSeedResponse(job_id=job.job_id, total=job.total)

    def _start(self, s: ServerSession, job: Job) -> None:
        thread = threading.Thread(
            target=self._train, args=(s, job), daemon=True, name=f"job-{job.job_id[:8]}"
        )
        self._job_threads = [t for t in self._job_threads if t.is_alive()] + [thread]
        thread.start()

    def _train(self, s: ServerSession, job: Job) -> None:
        task = self.served.task
        plan = s.session.plan
        try:
            if plan is None:
                raise RuntimeError("no challenge plan")
            store_dir = self.store_root / s.session.session_id.hex() / "retrain"
            with ResultStore.open(
                store_dir,
                task_digest=task.digest,
                task_name=task.spec.name,
                plan=plan.describe(),
                n_outputs=task.n_outputs,
                output_names=task.output_names,
            ) as store:
                job.done = plan.n_rows - len(store.pending_rows())
                if job.done:
                    log.info(
                        "job %s resumed: %d of %d trainings already in the store",
                        job.job_id,
                        job.done,
                        job.total,
                    )

                def progress(n: int) -> None:
                    job.done += n
                    job.trained += n
                    if self._stopping.is_set():
                        raise _Paused

                run_plan(
                    task.spec, task.digest, plan, store, self.executor, self.batch_size, progress
                )
                job.values = np.array(store.outputs)
            job.state = prover_pb2.JOB_STATE_DONE
            log.info(
                "job %s done: %d trainings, %d run by this process",
                job.job_id,
                job.total,
                job.trained,
            )
        except _Paused:
            # stays RUNNING: watchers see their stream end and reconnect to the restart
            log.info(
                "job %s paused at %d of %d trainings (server stopping; resumes on restart)",
                job.job_id,
                job.done,
                job.total,
            )
        except Exception as exc:
            job.state = prover_pb2.JOB_STATE_FAILED
            job.message = f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed", job.job_id)
        finally:
            job.finished.set()

    def WatchJob(
        self, request: prover_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[prover_pb2.WatchJobResponse]:
        s = self._call(context, self._session, request.session)
        job = s.job
        if job is None or job.job_id != request.job_id:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown job")
        last = -1
        while context.is_active():
            finished = job.finished.wait(timeout=0.25)
            if job.done != last or finished:
                last = job.done
                yield prover_pb2.WatchJobResponse(
                    state=job.state, done=job.done, total=job.total, message=job.message
                )
            if finished:
                return

    def CommitEvaluations(
        self, request: prover_pb2.CommitEvaluationsRequest, context: grpc.ServicerContext
    ) -> prover_pb2.CommitEvaluationsResponse:
        return self._call(context, self._commit_evaluations, request.session)

    def _commit_evaluations(
        self, ref: prover_pb2.SessionRef
    ) -> prover_pb2.CommitEvaluationsResponse:
        s = self._session(ref)
        with s.lock:
            if s.evaluations_body:
                return prover_pb2.CommitEvaluationsResponse(body=s.evaluations_body)
            self._commit_evaluations_locked(s)
            self._save(s)
            return prover_pb2.CommitEvaluationsResponse(body=s.evaluations_body)

    def _commit_evaluations_locked(self, s: ServerSession) -> None:
        """Commit to the f-values of the finished job (what a red-team strategy makes of
        them); sets ``s.evaluations`` and ``s.evaluations_body``."""
        job = s.job
        if job is None or job.state != prover_pb2.JOB_STATE_DONE or job.values is None:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the training job of E has not finished"
            )
        values = self.committed_evaluations(s.session, job.values)
        msg = s.session.commit_evaluations(values)
        s.evaluations = values
        s.evaluations_body = msg.to_bytes()

    def _chunks(self, values: FloatArray, kind: str) -> Iterator[Any]:
        flat = np.ascontiguousarray(values, dtype="<f8").ravel()
        total = flat.size
        cls = (
            prover_pb2.StreamEvaluationsResponse
            if kind == "evaluations"
            else prover_pb2.StreamAttributionResponse
        )
        for start in range(0, total, CHUNK_VALUES):
            part = flat[start : start + CHUNK_VALUES]
            yield cls(
                chunk=common_pb2.Float64Chunk(offset=start, values_f64le=part.tobytes()),
                total=total,
            )
        if total == 0:
            yield cls(chunk=common_pb2.Float64Chunk(offset=0, values_f64le=b""), total=0)

    def StreamEvaluations(
        self, request: prover_pb2.StreamEvaluationsRequest, context: grpc.ServicerContext
    ) -> Iterator[prover_pb2.StreamEvaluationsResponse]:
        s = self._call(context, self._session, request.session)
        if s.evaluations is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the f-values are streamed after their commitment",
            )
        yield from self._chunks(self.streamed_evaluations(s.evaluations), "evaluations")

    def StreamAttribution(
        self, request: prover_pb2.StreamAttributionRequest, context: grpc.ServicerContext
    ) -> Iterator[prover_pb2.StreamAttributionResponse]:
        s = self._call(context, self._session, request.session)
        if not s.attribution_body:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the attribution is streamed after its commitment",
            )
        yield from self._chunks(self.streamed_attribution(), "attribution")

    def DeliverVerdict(
        self, request: prover_pb2.DeliverVerdictRequest, context: grpc.ServicerContext
    ) -> prover_pb2.DeliverVerdictResponse:
        return self._call(context, self._verdict, request.session, bytes(request.body))

    def _verdict(
        self, ref: prover_pb2.SessionRef, body: bytes
    ) -> prover_pb2.DeliverVerdictResponse:
        s = self._session(ref)
        with s.lock:
            msg = s.session.on_verdict(body)
            s.closed = "decided"
            self._save(s)
        log.info("session %s: verdict %s %s", s.session.session_id.hex(), msg.verdict, msg.reason)
        return prover_pb2.DeliverVerdictResponse(acknowledged=True)

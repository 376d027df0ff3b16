"""Crash and resume across the protocol (issue 7, item 2), with real processes and SIGKILL.

* A Prover (``vattr serve``) killed in the middle of a session's training job and
  restarted on the same store resumes the session: the audit that was waiting on it
  finishes, the restarted job trains exactly the rows missing from the store, and the
  f-values equal, bit for bit, an uninterrupted training of the same challenge set.
* A Verifier (``vattr audit``) killed mid-audit and run again on the same work directory
  resumes the same session from its saved state (0600) without asking the Prover to train
  again: one training job, every row trained once.
* Damaged or over-readable saved state is refused, never used.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attribution.commitments import SigningKey
from attribution.errors import StoreCorruptError, UsageError
from attribution.estimators.sources import compute_attribution, residual_hint
from attribution.execution import SerialExecutor
from attribution.files import load_private_json, save_private_json
from attribution.protocol.common import task_info
from attribution.protocol.planner import Plan, plan_run
from attribution.protocol.verifier import VerifierSecrets
from attribution.tasks import load_task, resolve_spec
from prover.served import build_served
from prover.server import start_server
from prover.session_file import SESSION_FILE, SessionRecord
from vattr.redteam.provers import red_team_served
from vattr.redteam.strategies import parse_strategy
from verifier.audit import AuditResult, run_audit
from verifier.audit_state import STATE_FILE, AuditState
from verifier.client import ProverClient

VATTR = [sys.executable, "-m", "vattr"]
TASK = "breast_cancer-logreg"
EPSILON = 0.1  # |E| ~ 600-700 rows (fixed by the pilot): seconds of training at batch size 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plan(task: Any) -> Plan:
    mean = task.n_outputs - 1
    honest = compute_attribution(task, "datamodel")
    hint = max(residual_hint(task, honest)[mean], 1e-4 * task.bound**2)
    return plan_run(task_info(task), EPSILON, 0.05, outputs=(mean,), hint=hint)


def _completed(store: Path) -> int:
    try:
        return int(np.load(store / "completed.npy").sum())
    except (OSError, ValueError):
        return 0


def _wait(cond: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class ProverProcess:
    """``vattr serve`` on a fixed port and store, stderr captured to a file."""

    def __init__(self, store: Path, port: int, log: Path) -> None:
        self.log = log
        args = [
            *VATTR,
            "serve",
            "--task",
            TASK,
            "--method",
            "datamodel",
            "--store",
            str(store),
            "--port",
            str(port),
            "--executor",
            "serial",
            "--batch-size",
            "4",
        ]
        self.fh = open(log, "w")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=self.fh)
        _wait(lambda: "serving" in log.read_text() or self.proc.poll() is not None, "serve")
        assert self.proc.poll() is None, log.read_text()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=120)
        self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.fh.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_prover_killed_mid_job_then_restart_resumes_the_session(tmp_path: Path, sig: int) -> None:
    """SIGKILL: the job dies mid-block; SIGTERM: a graceful stop pauses it at the next
    block boundary. Either way the restart trains exactly the rows not in the store."""
    task = load_task(resolve_spec(TASK))
    plan = _plan(task)
    store, port = tmp_path / "prover", _free_port()
    first = ProverProcess(store, port, tmp_path / "prover-1.log")
    result: dict[str, Any] = {}
    messages: list[str] = []

    def audit() -> None:
        try:
            with ProverClient(f"127.0.0.1:{port}", timeout=30) as client:
                result["audit"] = run_audit(
                    client,
                    task,
                    plan,
                    SigningKey.from_seed(b"v" * 32),
                    tmp_path / "verifier",
                    executor="serial",
                    quiet=True,
                    secrets=VerifierSecrets.derive(b"crash-test"),
                    log=messages.append,
                    reconnect=120,
                )
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=audit)
    second: ProverProcess | None = None
    try:
        thread.start()
        _wait(lambda: list(store.glob("*/retrain/completed.npy")), "the training job")
        retrain = next(store.glob("*/retrain"))
        _wait(lambda: _completed(retrain) >= 40, "40 trained rows")
        first.kill(sig)
        done_at_kill = _completed(retrain)
        if sig == signal.SIGTERM:
            assert "paused at" in first.log.read_text()
        n_rows = int(np.load(retrain / "completed.npy").size)
        assert 0 < done_at_kill < n_rows, "the job finished before it could be killed"
        second = ProverProcess(store, port, tmp_path / "prover-2.log")
        thread.join(timeout=300)
        assert not thread.is_alive()
        log2 = second.log.read_text()
    finally:
        first.stop() if first.proc.poll() is None else None
        if second is not None:
            second.stop()
    assert "error" not in result, result.get("error")
    res: AuditResult = result["audit"]
    assert res.outcome.verdict == "ACCEPT", res.outcome.reason
    assert any("unavailable" in m for m in messages), messages

    # the restarted Prover resumed the session and trained exactly the missing rows
    assert "resumed 1 saved session" in log2, log2
    resumed = re.search(r"resumed: (\d+) of (\d+) trainings already in the store", log2)
    assert resumed is not None, log2
    assert (int(resumed[1]), int(resumed[2])) == (done_at_kill, n_rows)
    done = re.search(r"done: (\d+) trainings, (\d+) run by this process", log2)
    assert done is not None, log2
    assert (int(done[1]), int(done[2])) == (n_rows, n_rows - done_at_kill)

    # identical to an uninterrupted training of the same E (same blocks, same process
    # settings: a fresh 1-thread process, as the Prover's)
    assert res.evaluations is not None
    reference = _train_uninterrupted(res, tmp_path)
    assert np.array_equal(res.evaluations, reference)
    assert np.array_equal(np.load(retrain / "outputs.npy"), reference)


REFERENCE = """
import json, sys
import numpy as np
from attribution.execution import ResultStore, SerialExecutor, run_plan
from attribution.protocol.challenges import ChallengeLayout
from attribution.protocol.common import make_challenge_plan
from attribution.protocol.params import ProtocolParams
from attribution.tasks import load_task, resolve_spec
from attribution.protocol.common import task_info
spec = json.load(open(sys.argv[1]))
task = load_task(resolve_spec(spec["task"]))
params = ProtocolParams.from_dict(spec["params"])
layout = ChallengeLayout(params.n_pairs, params.n_single)
plan = make_challenge_plan(
    task_info(task), params, layout, bytes.fromhex(spec["seed"]), bytes.fromhex(spec["bind"])
)
with ResultStore.open(
    sys.argv[2], task_digest=task.digest, task_name=task.spec.name, plan=plan.describe(),
    n_outputs=task.n_outputs, output_names=task.output_names,
) as store:
    run_plan(task.spec, task.digest, plan, store, SerialExecutor(), 4)
"""


def _train_uninterrupted(res: AuditResult, tmp_path: Path) -> Any:
    """The challenge set of ``res`` trained start to finish by a fresh process."""
    s = res.session
    spec = {
        "task": TASK,
        "params": s.params.to_dict(),
        "seed": s.secrets.seed_e.hex(),
        "bind": s.bind.hex(),
    }
    (tmp_path / "reference.json").write_text(json.dumps(spec))
    out = tmp_path / "reference"
    subprocess.run(
        [sys.executable, "-c", REFERENCE, str(tmp_path / "reference.json"), str(out)],
        env=ENV,
        check=True,
    )
    return np.load(out / "outputs.npy")


def _audit_cmd(port: int, work: Path, report: Path) -> list[str]:
    return [
        *VATTR,
        "audit",
        "--prover",
        f"127.0.0.1:{port}",
        "--task",
        TASK,
        "--epsilon",
        str(EPSILON),
        "--work-dir",
        str(work),
        "--report",
        str(report),
        "--executor",
        "serial",
        "--json",
    ]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_verifier_sigkill_mid_audit_resumes_without_retraining(tmp_path: Path) -> None:
    task = load_task(resolve_spec(TASK))
    served = build_served(task, "datamodel", None)
    records = _Records()
    logger = logging.getLogger("vattr.prover")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    running = start_server(
        served, SigningKey.generate(), SerialExecutor(), tmp_path / "prover", batch_size=4
    )
    work, report = tmp_path / "verifier", tmp_path / "report.json"
    try:
        cmd = _audit_cmd(running.port, work, report)
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def job_saved() -> bool:
            try:
                return bool(AuditState.load(work).job_id)
            except (UsageError, StoreCorruptError):
                return False

        _wait(job_saved, "the saved job id")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        saved = AuditState.load(work)
        assert stat.S_IMODE((work / STATE_FILE).stat().st_mode) == 0o600
        assert not saved.evaluations_body, "the audit got past the job before the kill"
        with running.servicer._lock:
            (s,) = running.servicer._sessions.values()
        assert s.job is not None
        assert not s.job.finished.is_set()

        again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout)
        assert summary["verdict"] == "ACCEPT"
        assert summary["session_id"] == saved.session_id.hex()
    finally:
        running.stop(0)
        logger.removeHandler(records)
        logger.setLevel(old_level)
    # one session, one job, each row trained once
    assert len(running.servicer._sessions) == 1
    job = s.job
    assert job.finished.is_set()
    # |E| as the Verifier's pilot fixed it (docs/protocol.md section 6.14; 684 in one run)
    assert job.total == summary["sizes"]["E"] > 0
    assert job.trained == job.total
    assert len([m for m in records.lines if m.startswith("job ") and " done:" in m]) == 1
    check = subprocess.run([*VATTR, "check", str(report)], env=ENV, capture_output=True)
    assert check.returncode == 0, check.stdout


def test_damaged_or_readable_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_private_json(path, "kind/1", {"a": 1, "b": "x"}, what="test state")
    assert load_private_json(path, "kind/1", what="test state") == {"a": 1, "b": "x"}
    with pytest.raises(StoreCorruptError):
        load_private_json(path, "other/1", what="test state")
    raw = path.read_bytes()
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            got = load_private_json(path, "kind/1", what="test state")
        except (StoreCorruptError, UsageError):
            continue
        # whitespace-only flips (e.g. newline <-> other whitespace) keep the same JSON
        assert got == {"a": 1, "b": "x"}, f"byte {i} flipped went unnoticed"
    path.write_bytes(raw)
    path.chmod(0o644)
    with pytest.raises(UsageError, match="wider than 0600"):
        load_private_json(path, "kind/1", what="test state")


def test_prover_does_not_resume_a_session_under_another_key(tmp_path: Path) -> None:
    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    store = tmp_path / "store"
    plan = plan_run(task_info(task), 0.2, 0.05, outputs=(0,), hint=0.01)
    first = start_server(served, SigningKey.from_seed(b"a" * 32), SerialExecutor(), store)
    with ProverClient(f"127.0.0.1:{first.port}") as client:
        from attribution.protocol.verifier import VerifierSession
        from attribution.v1 import prover_pb2

        v = VerifierSession(
            task_info(task), task.digest, plan.params, SigningKey.generate(), task_name="t"
        )
        opened = client.call("OpenSession", prover_pb2.OpenSessionRequest(body=v.open().to_bytes()))
    first.stop(0)
    (path,) = store.glob(f"*/{SESSION_FILE}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rec = SessionRecord.load(path)
    assert rec.session_id == bytes(opened.session_id)
    assert bytes(opened.session_token).hex() not in path.read_text()  # only its digest
    same = start_server(served, SigningKey.from_seed(b"a" * 32), SerialExecutor(), store)
    assert len(same.servicer._sessions) == 1
    same.stop(0)
    other = start_server(served, SigningKey.from_seed(b"b" * 32), SerialExecutor(), store)
    assert len(other.servicer._sessions) == 0
    other.stop(0)


def test_prover_restarted_after_every_step_keeps_the_session(tmp_path: Path) -> None:
    """The Prover is stopped and started again on its store between every two steps of one
    audit (open, commit, reveal, job, commit f-values, streams, verdict): each restart
    resumes the session in the phase it had reached, and the audit ends ACCEPT with the
    same commitments an uninterrupted Prover would have signed (deterministic replay)."""
    from attribution.protocol.verifier import VerifierSession
    from attribution.v1 import prover_pb2 as pb

    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    key, store = SigningKey.from_seed(b"p" * 32), tmp_path / "store"
    # sizes fixed at open: the messages are driven by hand below
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2, planning="fixed")
    v = VerifierSession(
        task_info(task),
        task.digest,
        plan.params,
        SigningKey.from_seed(b"v" * 32),
        VerifierSecrets.derive(b"every-step"),
    )
    servers: list[Any] = []

    def client() -> ProverClient:
        if servers:
            servers[-1].stop(0)
        servers.append(start_server(served, key, SerialExecutor(), store))
        return ProverClient(f"127.0.0.1:{servers[-1].port}")

    try:
        with client() as c:
            opened = c.call("OpenSession", pb.OpenSessionRequest(body=v.open().to_bytes()))
        v.on_opened(bytes(opened.body))
        ref = pb.SessionRef(session_id=opened.session_id, session_token=opened.session_token)
        with client() as c:
            commit = c.call("CommitAttribution", pb.CommitAttributionRequest(session=ref))
        v.on_attribution_commitment(bytes(commit.body))
        reveal = v.reveal_challenge().to_bytes()
        with client() as c:
            job = c.call(
                "RevealChallengeSeed", pb.RevealChallengeSeedRequest(session=ref, body=reveal)
            )
        with client() as c:  # the job restarted on its store; watch it to the end
            states = [
                u.state
                for u in c.stream("WatchJob", pb.WatchJobRequest(session=ref, job_id=job.job_id))
            ]
            assert states[-1] == pb.JOB_STATE_DONE
            again = c.call("CommitAttribution", pb.CommitAttributionRequest(session=ref))
            assert again.body == commit.body  # replayed byte for byte
        with client() as c:
            evals = c.call("CommitEvaluations", pb.CommitEvaluationsRequest(session=ref))
        v.on_evaluation_commitment(bytes(evals.body))
        n_a = task.n_outputs * (task.n_points + 1)
        with client() as c:  # the f-value commitment is replayed from the store
            assert (
                c.call("CommitEvaluations", pb.CommitEvaluationsRequest(session=ref)).body
                == evals.body
            )
            v.receive_attribution(
                c.fetch_vector("StreamAttribution", pb.StreamAttributionRequest(session=ref), n_a)
            )
            v.receive_evaluations(
                c.fetch_vector(
                    "StreamEvaluations",
                    pb.StreamEvaluationsRequest(session=ref),
                    v.layout.n_rows * task.n_outputs,
                )
            )
        plan_e = v.challenge_plan()
        rows = v.spot_check_rows()
        spot = task.train_batch(plan_e.masks(rows), plan_e.seeds(rows))
        m_plan = v.mse_plan()  # the committed band's pilot (docs/protocol.md section 6.13)
        assert m_plan is not None
        pilot = task.train_batch(
            m_plan.masks(range(m_plan.n_rows)), m_plan.seeds(range(m_plan.n_rows))
        )
        outcome = v.decide(spot, pilot)
        assert outcome.verdict == "ACCEPT", outcome.reason
        with client() as c:
            ack = c.call(
                "DeliverVerdict",
                pb.DeliverVerdictRequest(session=ref, body=outcome.message.to_bytes()),
            )
        assert ack.acknowledged
        with client():  # decided: not resumed any more
            assert not servers[-1].servicer._sessions
    finally:
        servers[-1].stop(0)
    assert len(servers) == 8


def test_served_attribution_is_cached_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vattr serve --store`` keeps what it serves, so a restart serves the very matrix its
    sessions committed to without recomputing it; another strategy or a damaged cache is
    recomputed."""
    import prover.served

    task = load_task(resolve_spec("synthetic"))
    cache = tmp_path / "served-attribution.npz"
    first = build_served(task, None, None, cache)
    assert cache.exists()

    def no_recompute(*args: Any) -> Any:
        raise AssertionError("recomputed")

    monkeypatch.setattr(prover.served, "compute_attribution", no_recompute)
    again = build_served(task, None, None, cache)
    assert np.array_equal(again.attribution, first.attribution)
    assert again.residual_hint == first.residual_hint
    with pytest.raises(AssertionError, match="recomputed"):
        red_team_served(task, None, None, parse_strategy("scale:0.5"), cache)
    monkeypatch.undo()
    cache.write_bytes(cache.read_bytes()[:100])  # damaged: recomputed, not used
    fresh = build_served(task, None, None, cache)
    assert np.array_equal(fresh.attribution, first.attribution)

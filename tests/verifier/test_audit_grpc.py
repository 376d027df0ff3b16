"""A real audit over gRPC on loopback: bit-identical to the in-process simulation with the
same seeds, and its report checks out offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from attribution.execution import SerialExecutor
from attribution.protocol.common import task_info
from attribution.protocol.planner import plan_run
from attribution.protocol.verifier import VerifierSecrets
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask
from prover.served import build_served
from prover.server import start_server
from vattr.redteam.provers import red_team_prover
from vattr.redteam.strategies import parse_strategy
from vattr.simulate import run_keys, run_once
from verifier.audit import run_audit
from verifier.client import ProverClient
from verifier.reports.report import check_report, write_audit_report


def test_grpc_audit_equals_simulation_bit_for_bit(
    tmp_path: Path, synthetic_task: OracleTask
) -> None:
    task = synthetic_task
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2)
    expected = {
        "honest": ("ACCEPT", ""),
        "scale:0.5": ("INCONCLUSIVE", "budget"),  # at eps = 0.2 the plan is too small
        # commits to the honest attribution, then streams a changed one
        "swap": ("REJECT", "commitment_mismatch"),
        # streams one value too few: a framing error of the Prover's, so a signed REJECT
        "bad-length": ("REJECT", "malformed"),
        "non-finite": ("REJECT", "malformed"),
    }
    for strategy in expected:
        served, factory = red_team_prover(task, "exact", None, strategy)
        keys = run_keys(seed=9, run=0)
        simulated = run_once(
            task,
            plan,
            parse_strategy(strategy),
            build_served(task, "exact", None).attribution,
            9,
            0,
        )
        running = start_server(
            served,
            keys.prover_key,
            SerialExecutor(),
            tmp_path / strategy,
            nonce_source=lambda k=keys: k.nonce,
            servicer_factory=factory,
        )
        try:
            with ProverClient(f"127.0.0.1:{running.port}") as client:
                client.wait_ready()
                audited = run_audit(
                    client,
                    task,
                    plan,
                    keys.verifier_key,
                    tmp_path / f"v-{strategy}",
                    executor="serial",
                    quiet=True,
                    secrets=VerifierSecrets.derive(keys.master),
                )
        finally:
            running.stop(0)
        a, s = audited.outcome.certificate, simulated.outcome.certificate
        assert a["outputs"] == s["outputs"]  # every statistic, bit for bit
        assert (a["verdict"], a["reason"]) == (s["verdict"], s["reason"])
        # one message loop: the same transcript, message for message
        assert a["transcript_head"] == s["transcript_head"]
        assert (a["verdict"], a["reason"]) == expected[strategy]
        assert a["evaluations_root"] == s["evaluations_root"]
        assert a["transcript_head"] == s["transcript_head"]

        path = write_audit_report(tmp_path / f"{strategy}.json", audited, task.spec.name)
        result = check_report(path, replay=True)
        assert result.ok, result.problems


def test_abandoned_sessions_are_evicted_when_full(tmp_path: Path) -> None:
    """An undecided session idle longer than session_ttl makes room for a new one; an
    active one (within the ttl) does not."""
    from attribution.commitments import SigningKey
    from attribution.protocol.verifier import VerifierSession
    from attribution.v1 import prover_pb2

    task = load_task(resolve_spec("synthetic"))
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2)
    running = start_server(
        build_served(task, "exact", None),
        SigningKey.generate(),
        SerialExecutor(),
        tmp_path / "s",
    )
    running.servicer.max_sessions = 1

    def open_one(client: ProverClient) -> None:
        v = VerifierSession(task_info(task), task.digest, plan.params, SigningKey.generate())
        client.call("OpenSession", prover_pb2.OpenSessionRequest(body=v.open().to_bytes()))

    try:
        with ProverClient(f"127.0.0.1:{running.port}") as client:
            open_one(client)
            from verifier.client import TransportError

            running.servicer.session_ttl = 3600.0
            with pytest.raises(TransportError, match="RESOURCE_EXHAUSTED"):
                open_one(client)
            running.servicer.session_ttl = 0.0
            open_one(client)  # the first, idle session was evicted
            assert len(running.servicer._sessions) == 1
    finally:
        running.stop(0)
    # a restart on the same store resumes the open session, not the abandoned one
    again = start_server(
        build_served(task, "exact", None),
        running.servicer.key,
        SerialExecutor(),
        tmp_path / "s",
    )
    try:
        assert set(again.servicer._sessions) == set(running.servicer._sessions)
        assert len(list((tmp_path / "s").glob("*/session.json"))) == 2
    finally:
        again.stop(0)


def _audit_against(tmp_path: Path, strategy: str, argv_extra: tuple[str, ...] = ()) -> Any:
    """Serve ``strategy`` on loopback and run ``vattr audit`` against it in process."""
    from attribution.commitments import SigningKey
    from vattr.cli import main

    task = load_task(resolve_spec("synthetic"))
    served, factory = red_team_prover(task, "exact", None, strategy)
    running = start_server(
        served, SigningKey.generate(), SerialExecutor(), tmp_path / "store",
        servicer_factory=factory,
    )
    report = tmp_path / "audit.json"
    argv = [
        "audit", "--prover", f"127.0.0.1:{running.port}", "--task", "synthetic",
        "--epsilon", "0.2", "--hint", str(task.oracle.exact().B_ge2), "--report", str(report),
        "--work-dir", str(tmp_path / "work"), "--executor", "serial", "--quiet",
        "--reconnect", "0", *argv_extra,
    ]
    try:
        code = main(argv)
        again = main(argv)  # the same command on the same work dir
    finally:
        running.stop(0)
    return code, again, report


def test_a_prover_refusing_the_verdict_cannot_suppress_it(tmp_path: Path) -> None:
    """The signed report is written before DeliverVerdict; the refusal is on record and
    the exit code is the verdict's, on the first run and on a rerun."""
    import json

    code, again, report = _audit_against(tmp_path, "refuse-verdict")
    assert (code, again) == (0, 0)  # honest content: ACCEPT, delivered or not
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "ACCEPT"
    assert "refused by the Prover" in doc["prover"]["verdict_delivery"]
    checked = check_report(report, replay=True)
    assert checked.ok, checked.problems
    # the replay runs the same loop and reproduces the signed verdict message exactly
    assert any("byte for byte" in n for n in checked.notes), checked.notes


def test_a_malformed_stream_is_rejected_without_local_training(tmp_path: Path) -> None:
    """Cheap checks first: a stream one value short is a signed REJECT before a single
    spot check is trained (no local store, zero Verifier trainings)."""
    import json

    code, _, report = _audit_against(tmp_path, "bad-length")
    assert code == 1
    doc = json.loads(report.read_text())
    assert (doc["verdict"], doc["reason"]) == ("REJECT", "malformed")
    assert doc["certificate"]["sizes"]["verifier_trainings"] == 0
    assert not (tmp_path / "work" / "spot").exists()
    checked = check_report(report, replay=True)
    assert checked.ok, checked.problems
    assert any("byte for byte" in n for n in checked.notes), checked.notes


def test_a_never_finishing_job_ends_the_audit_within_its_deadline(tmp_path: Path) -> None:
    """``--job-timeout`` bounds the wait for the Prover's training: exit 3 (transport),
    with no report, within seconds of the deadline."""
    import time

    start = time.monotonic()
    code, again, report = _audit_against(tmp_path, "never-finish", ("--job-timeout", "2"))
    assert (code, again) == (3, 3)
    assert time.monotonic() - start < 30
    assert not report.exists()


@pytest.mark.parametrize("lie", [0.0, 1e-12, float("nan"), float("inf"), 1e300])
def test_a_lying_residual_hint_cannot_steer_the_sizes(tmp_path: Path, lie: float) -> None:
    """Red team (docs/protocol.md section 6.14): the Prover's DescribeTasks hint is a lie.
    The sizes come from the Verifier's pilot after the commitment, so an honest Prover is
    never rejected and the audit never exceeds --max-trainings: a hint too small (0,
    1e-12) only caps the run at twice its tiny forecast (ACCEPT or INCONCLUSIVE, the
    liar's own loss), a non-finite one is ignored, a huge one (1e300, clamped) only lifts
    the cap to --max-trainings, below which the pilot's own sizes hold (ACCEPT)."""
    import dataclasses
    import json

    from attribution.commitments import SigningKey
    from vattr.cli import main

    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    lying = dataclasses.replace(served, residual_hint=(lie,) * task.n_outputs)
    running = start_server(lying, SigningKey.generate(), SerialExecutor(), tmp_path / "store")
    report = tmp_path / "audit.json"
    cap = 200_000
    argv = [
        "audit", "--prover", f"127.0.0.1:{running.port}", "--task", "synthetic",
        "--epsilon", "0.2", "--report", str(report), "--work-dir", str(tmp_path / "work"),
        "--executor", "serial", "--quiet", "--max-trainings", str(cap),
    ]  # fmt: skip
    try:
        code = main(argv)
    finally:
        running.stop(0)
    doc = json.loads(report.read_text())
    cert = doc["certificate"]
    assert doc["verdict"] != "REJECT"
    assert code == {"ACCEPT": 0, "INCONCLUSIVE": 4}[doc["verdict"]]
    sizes = cert["sizes"]
    assert sizes["E"] + sizes["verifier_trainings"] <= cert["params"]["budget"] <= cap
    assert cert["planning"]["sized"]
    if lie >= 1e-4 or lie != lie or lie == float("inf"):
        # not capped by a small forecast: the pilot's own plan, which decides
        assert not cert["planning"]["capped"]
        assert doc["verdict"] == "ACCEPT"
    checked = check_report(report, replay=True)
    assert checked.ok, checked.problems


def test_a_slow_drip_stream_ends_the_audit_within_its_deadline(tmp_path: Path) -> None:
    """A Prover that streams its attribution one value a second (1,001 values on the
    synthetic task: 17 minutes) cannot hold ``vattr audit --timeout 5``: the stream's
    deadline is the timeout plus the vector's size at 1 MiB/s, so exit 3 (transport) and no
    report within seconds."""
    import time

    start = time.monotonic()
    code, again, report = _audit_against(tmp_path, "slow-drip", ("--timeout", "5"))
    assert (code, again) == (3, 3)
    assert time.monotonic() - start < 60
    assert not report.exists()


def test_a_stalled_job_ends_the_audit_without_a_job_timeout(tmp_path: Path) -> None:
    """``vattr audit --timeout 2`` against a job that reports the same row forever (and
    the default --job-timeout of a day): WatchJob is polled with a deadline of
    STALL_FACTOR = 5 call timeouts and a window without progress ends the audit (the first
    window sees the job's first report, the second none), exit 3, no report, on both
    runs: at most 2 runs x 2 windows x 10 s, plus set-up."""
    import time

    start = time.monotonic()
    code, again, report = _audit_against(tmp_path, "never-finish", ("--timeout", "2"))
    assert (code, again) == (3, 3)
    assert time.monotonic() - start < 2 * 2 * 5 * 2 + 30
    assert not report.exists()

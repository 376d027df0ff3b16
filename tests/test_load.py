"""Load on one Prover over loopback: 16 concurrent audits (honest and cheating sessions
on one server) all finish with the right verdicts; a second wave of 16 adds at most a
few pool threads, not one per audit (the RPC pool is bounded and job threads exit)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attribution.commitments import SigningKey
from attribution.execution import SerialExecutor
from attribution.tasks import load_task, resolve_spec
from prover.commands import build_served
from prover.server import start_server
from verifier.client import ProverClient, run_audit
from verifier.planner import plan_run
from verifier.simulate import task_info


@pytest.mark.timeout(300)
def test_sixteen_concurrent_audits(tmp_path: Path) -> None:
    task = load_task(resolve_spec("synthetic"))
    honest = build_served(task, "exact", None, "honest")
    running = start_server(honest, SigningKey.generate(), SerialExecutor(), tmp_path / "store")
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2)
    target = f"127.0.0.1:{running.port}"
    baseline = threading.active_count()

    def audit(i: int) -> str:
        with ProverClient(target, timeout=120) as client:
            result = run_audit(
                client,
                task,
                plan,
                SigningKey.generate(),
                tmp_path / f"v{i}",
                executor="serial",
                quiet=True,
            )
            return result.outcome.verdict

    def settled_threads(limit: int) -> int:
        deadline = time.monotonic() + 10
        while threading.active_count() > limit and time.monotonic() < deadline:
            time.sleep(0.1)
        return threading.active_count()

    try:
        counts = []
        for wave in range(2):
            start = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                verdicts = list(pool.map(audit, range(16 * wave, 16 * wave + 16)))
            assert verdicts == ["ACCEPT"] * 16, verdicts
            assert time.perf_counter() - start < 240
            sessions = list(running.servicer._sessions.values())
            assert all(s.job is not None and s.job.finished.is_set() for s in sessions)
            counts.append(settled_threads(counts[0] if counts else baseline + 32))
        # the sync server keeps at most max_workers = 32 idle RPC threads and job threads
        # exit; a per-audit leak would add 16 threads per wave, the pool may add a couple
        assert counts[0] <= baseline + 32
        assert counts[1] <= counts[0] + 3, counts
    finally:
        running.stop(0)

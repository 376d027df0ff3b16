"""Load on one Prover over loopback: 16 concurrent audits of an honest Prover all finish
with ACCEPT; a second wave of 16 adds at most a few pool threads, not one per audit (the
RPC pool is bounded and job threads exit). The measured thread counts and RSS change are
printed (``pytest -s tests/test_load.py``)."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attribution.commitments import SigningKey
from attribution.execution import SerialExecutor
from attribution.protocol.common import task_info
from attribution.protocol.planner import plan_run
from attribution.tasks import load_task, resolve_spec
from prover.served import build_served
from prover.server import start_server
from verifier.audit import run_audit
from verifier.client import ProverClient


@pytest.mark.timeout(300)
def test_sixteen_concurrent_audits(tmp_path: Path) -> None:
    task = load_task(resolve_spec("synthetic"))
    honest = build_served(task, "exact", None)
    running = start_server(honest, SigningKey.generate(), SerialExecutor(), tmp_path / "store")
    # the task band, sized at open from the exact B_>=2: this test is about 32 concurrent
    # audits, each of which must end ACCEPT. With the default committed band and pilot
    # sizing an honest run at eps 0.2 is INCONCLUSIVE 2 times in 300 (measured; its pilot
    # read E[r^2] 17-23 % low), so 32 of 32 would fail about one time in five.
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2, band="task")
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
            print(f"wave {wave + 1}: 16 audits in {time.perf_counter() - start:.1f} s")
            assert time.perf_counter() - start < 240
            sessions = list(running.servicer._sessions.values())
            assert all(s.job is not None and s.job.finished.is_set() for s in sessions)
            counts.append(settled_threads(counts[0] if counts else baseline + 32))
        # the sync server keeps at most max_workers = 32 idle RPC threads and job threads
        # exit; a per-audit leak would add 16 threads per wave, the pool may add a couple
        print(f"threads: {baseline} before, {counts} after each wave")
        assert counts[0] <= baseline + 32
        assert counts[1] <= counts[0] + 3, counts
    finally:
        running.stop(0)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.timeout(300)
def test_clients_hanging_up_mid_stream_leak_nothing(tmp_path: Path) -> None:
    """50 clients each read one chunk of a 10^6-value stream and hang up (cancel, then
    close the channel): the server stays healthy, serves a full stream afterwards, and
    its threads and memory (server and client in this process) stay flat."""
    import secrets

    import grpc
    import numpy as np

    from attribution.protocol.prover import ProverSession
    from attribution.v1 import prover_pb2
    from prover.service import ServerSession

    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    key = SigningKey.generate()
    running = start_server(served, key, SerialExecutor(), tmp_path / "store")
    values = np.linspace(-1, 1, 1_000_000).reshape(-1, 1)
    sid, token = secrets.token_bytes(16), secrets.token_bytes(32)
    state = ServerSession(
        ProverSession(served.info, task.digest, key), hashlib.sha256(token).digest(), "test"
    )
    state.evaluations = values
    running.servicer._sessions[sid] = state
    ref = prover_pb2.SessionRef(session_id=sid, session_token=token)
    target = f"127.0.0.1:{running.port}"

    def hang_up() -> None:
        channel = grpc.insecure_channel(target)
        stub = prover_pb2_grpc.ProverServiceStub(channel)
        stream = stub.StreamEvaluations(
            prover_pb2.StreamEvaluationsRequest(session=ref), timeout=30
        )
        next(stream)
        stream.cancel()
        channel.close()

    from attribution.v1 import prover_pb2_grpc

    try:
        for _ in range(5):  # warm-up: pools, allocator arenas
            hang_up()
        threads, rss = threading.active_count(), _rss_kb()
        for _ in range(50):
            hang_up()
        time.sleep(1.0)
        print(
            f"50 hang-ups: threads {threads} -> {threading.active_count()}, "
            f"RSS change {(_rss_kb() - rss) / 1024:+.1f} MB"
        )
        assert threading.active_count() <= threads + 3
        # 50 abandoned streams of 8 MB each would be 400 MB if buffers were kept
        assert _rss_kb() - rss < 64_000
        with ProverClient(target) as client:
            got = client.fetch_vector(
                "StreamEvaluations", prover_pb2.StreamEvaluationsRequest(session=ref), 1_000_000
            )
        assert np.array_equal(got, values.ravel())
    finally:
        running.stop(0)

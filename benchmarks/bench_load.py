"""Load on one Prover: waves of concurrent audits and clients hanging up mid-stream.

The Prover runs as a real ``vattr serve`` subprocess on loopback (synthetic task with
N = 10^5 points by default, so the attribution stream is 800 KB, two chunks), and its
resident memory (VmRSS) and thread count are read from ``/proc/<pid>/status`` between
phases, so that nothing the clients allocate is counted. Phases:

1. ``--waves`` waves of ``--concurrency`` concurrent audits (each a full interactive
   audit to a signed verdict; all must ACCEPT);
2. ``--hangups`` clients that open ``StreamAttribution``, read one chunk and hang up,
   in ``--concurrency`` parallel threads;
3. one more full audit, which must still ACCEPT.

Usage: ``.venv/bin/python benchmarks/bench_load.py [--waves 5] [--concurrency 16]
[--hangups 500] [--n 100000]``. Prints a table and one JSON line; exits 1 if a verdict
is wrong or the server's threads grew by more than ``--concurrency`` over the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from attribution.commitments import SigningKey  # noqa: E402
from attribution.protocol.common import task_info  # noqa: E402
from attribution.protocol.planner import plan_run  # noqa: E402
from attribution.protocol.verifier import VerifierSession  # noqa: E402
from attribution.tasks import load_task, resolve_spec  # noqa: E402
from attribution.v1 import prover_pb2  # noqa: E402
from verifier.audit import run_audit  # noqa: E402
from verifier.client import ProverClient, TransportError  # noqa: E402


def proc_status(pid: int) -> tuple[float, int]:
    """(VmRSS in MB, thread count) of process ``pid``."""
    rss, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def start_prover(store: Path, overrides: list[str]) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, "-m", "vattr", "serve", "--task", "synthetic", "--port", "0"]
    for o in overrides:
        args += ["--set", o]
    args += ["--store", str(store), "--executor", "serial", "--max-sessions-per-client", "1000"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("serving "):
            port = int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1])
            # keep draining stderr so the server never blocks on a full pipe
            ThreadPoolExecutor(1).submit(lambda: [None for _ in proc.stderr or ()])
            return proc, port
    raise RuntimeError("the Prover did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--hangups", type=int, default=500)
    ap.add_argument("--n", type=int, default=100_000, help="training points (stream size)")
    args = ap.parse_args()

    overrides = [f"data.synthetic.n={args.n}"]
    task = load_task(resolve_spec("synthetic", overrides))
    plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        proc, port = start_prover(root / "store", overrides)
        target = f"127.0.0.1:{port}"
        rows: list[dict[str, Any]] = []
        ok = True
        try:
            print(
                f"Prover pid {proc.pid} on {target} (N = {args.n}), up in "
                f"{time.perf_counter() - t0:.1f} s; plan |E| = {plan.params.n_challenges}"
            )

            def audit(i: int) -> str:
                with ProverClient(target, timeout=300) as client:
                    res = run_audit(
                        client,
                        task,
                        plan,
                        SigningKey.generate(),
                        root / f"v{i}",
                        executor="serial",
                        quiet=True,
                    )
                return res.outcome.verdict

            def record(phase: str, seconds: float, **extra: Any) -> None:
                rss, threads = proc_status(proc.pid)
                row = {
                    "phase": phase,
                    "seconds": round(seconds, 2),
                    "server_rss_mb": round(rss, 1),
                    "server_threads": threads,
                    **extra,
                }
                rows.append(row)
                print(json.dumps(row))

            record("idle", 0.0)
            with ProverClient(target) as c:  # warm-up: one audit, pools and arenas
                c.wait_ready()
            start = time.perf_counter()
            first = audit(-1)
            record("warm-up audit", time.perf_counter() - start, verdicts={first: 1})
            n = 0
            for wave in range(args.waves):
                start = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    verdicts = list(pool.map(audit, range(n, n + args.concurrency)))
                n += args.concurrency
                counts = {v: verdicts.count(v) for v in set(verdicts)}
                ok &= counts == {"ACCEPT": args.concurrency}
                record(f"wave {wave + 1}", time.perf_counter() - start, verdicts=counts)

            # a live session whose attribution stream is 8 (N + 1) bytes
            with ProverClient(target) as c:
                v = VerifierSession(
                    task_info(task), task.digest, plan.params, SigningKey.generate()
                )
                opened = c.call(
                    "OpenSession", prover_pb2.OpenSessionRequest(body=v.open().to_bytes())
                )
                ref = prover_pb2.SessionRef(
                    session_id=opened.session_id, session_token=opened.session_token
                )
                c.call("CommitAttribution", prover_pb2.CommitAttributionRequest(session=ref))

            def hang_up(_: int) -> int:
                with ProverClient(target, timeout=30) as c:
                    stream = c.stub.StreamAttribution(
                        prover_pb2.StreamAttributionRequest(session=ref), timeout=30
                    )
                    chunk = next(stream)
                    stream.cancel()
                    return len(chunk.chunk.values_f64le)

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                got = list(pool.map(hang_up, range(args.hangups)))
            time.sleep(1.0)
            record(
                f"{args.hangups} hang-ups",
                time.perf_counter() - start,
                bytes_read_each=got[0] if got else 0,
            )
            with ProverClient(target) as c:
                full = c.fetch_vector(
                    "StreamAttribution",
                    prover_pb2.StreamAttributionRequest(session=ref),
                    task.n_outputs * (task.n_points + 1),
                )
            start = time.perf_counter()
            last = audit(10**6)
            ok &= last == "ACCEPT"
            record(
                "final audit",
                time.perf_counter() - start,
                verdicts={last: 1},
                full_stream_values=int(full.size),
            )
        except TransportError as exc:
            print(f"transport error: {exc}")
            ok = False
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    growth_threads = rows[-1]["server_threads"] - rows[1]["server_threads"] if len(rows) > 1 else 0
    ok &= growth_threads <= args.concurrency
    summary = {
        "bench": "load",
        "waves": args.waves,
        "concurrency": args.concurrency,
        "audits": args.waves * args.concurrency + 2,
        "hangups": args.hangups,
        "n": args.n,
        "rss_mb_after_warmup": rows[1]["server_rss_mb"] if len(rows) > 1 else None,
        "rss_mb_end": rows[-1]["server_rss_mb"] if rows else None,
        "threads_after_warmup": rows[1]["server_threads"] if len(rows) > 1 else None,
        "threads_end": rows[-1]["server_threads"] if rows else None,
        "ok": ok,
    }
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

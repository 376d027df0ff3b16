"""Streaming benchmark: f-values from a real Prover gRPC server to a client on loopback.

    .venv/bin/python benchmarks/bench_stream.py                      # 10^6 values, 5 runs
    .venv/bin/python benchmarks/bench_stream.py --values 4000000 --repeats 3

The Prover runs in a child process (so that the two peak RSS figures are separate): a
real server (``prover.server.start_server``, synthetic task) into whose servicer a
finished session is injected -- a ``ServerSession`` with a session token and
``.evaluations`` set to ``--values`` float64 values of shape (n, 1). The client fetches
them with ``ProverClient.fetch_vector("StreamEvaluations", ...)``, i.e. the chunked raw
little-endian float64 stream of ``ProverServicer._chunks``; one warm-up run (reported
separately), then ``--repeats`` timed runs. Memory: before each run both processes'
peak RSS is reset (``/proc/PID/clear_refs``, "5") and the increase is ``VmHWM`` after
the run minus ``VmRSS`` before it (without a resettable peak: ``VmHWM`` against the RSS
before the first run). Then the Merkle root of the received vector is recomputed
(``attribution.commitments.vector_root``) and compared with the server's root.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TARGET_S = 5.0


def make_values(n: int, seed: int = 0) -> FloatArray:
    """The benchmark's f-values: uniform in [-1, 1] (the synthetic task's bound), (n, 1)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 1))


# -- /proc memory figures ----------------------------------------------------------------
def _status_kib(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


def rss_kib(pid: int | str = "self") -> int:
    return _status_kib(pid, "VmRSS")


def peak_kib(pid: int | str = "self") -> int:
    return _status_kib(pid, "VmHWM")


def reset_peak(pid: int | str = "self") -> bool:
    """Reset the peak RSS (VmHWM) of ``pid`` to its current RSS; False if not possible."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


# -- the Prover (child process) ------------------------------------------------------------
def serve(n: int) -> None:
    """Start a server with one finished session holding ``n`` f-values; print its
    coordinates as one JSON line; serve until stdin closes."""
    from attribution.commitments import SigningKey, vector_root
    from attribution.execution import SerialExecutor
    from attribution.protocol.prover import ProverSession
    from attribution.tasks import load_task, resolve_spec
    from prover.served import build_served
    from prover.server import start_server
    from prover.service import ServerSession

    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as store:
        running = start_server(served, key, SerialExecutor(), Path(store))
        try:
            values = make_values(n)
            session_id, token = secrets.token_bytes(16), secrets.token_bytes(32)
            state = ServerSession(
                ProverSession(served.info, task.digest, key),
                hashlib.sha256(token).digest(),
                "bench",
            )
            state.evaluations = values
            servicer = running.servicer
            with servicer._lock:
                servicer._sessions[session_id] = state
            root = vector_root(values.ravel()).hex()
            info = {
                "port": running.port,
                "pid": os.getpid(),
                "session_id": session_id.hex(),
                "token": token.hex(),
                "root": root,
            }
            print(json.dumps(info), flush=True)
            sys.stdin.read()  # until the client closes our stdin
        finally:
            running.stop(0)


# -- the client ------------------------------------------------------------------------------
def bench(n: int, repeats: int) -> dict[str, Any]:
    from attribution.commitments import vector_root
    from attribution.v1 import prover_pb2
    from verifier.client import ProverClient

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--values", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        server_pid = int(info["pid"])
        ref = prover_pb2.SessionRef(
            session_id=bytes.fromhex(info["session_id"]),
            session_token=bytes.fromhex(info["token"]),
        )
        request = prover_pb2.StreamEvaluationsRequest(session=ref)
        with ProverClient(f"127.0.0.1:{info['port']}") as client:
            client.wait_ready(timeout=30.0)
            resettable = reset_peak() and reset_peak(server_pid)
            first_client, first_server = rss_kib(), rss_kib(server_pid)
            walls: list[float] = []
            client_inc: list[int] = []
            server_inc: list[int] = []
            received: FloatArray | None = None
            for _ in range(repeats + 1):  # the first run is the (reported) warm-up
                received = None  # drop the previous vector before measuring
                if resettable:
                    reset_peak()
                    reset_peak(server_pid)
                base_client = rss_kib() if resettable else first_client
                base_server = rss_kib(server_pid) if resettable else first_server
                start = time.perf_counter()
                received = client.fetch_vector("StreamEvaluations", request, n)
                walls.append(time.perf_counter() - start)
                client_inc.append(peak_kib() - base_client)
                server_inc.append(peak_kib(server_pid) - base_server)
        assert received is not None
        root_s: list[float] = []
        root = ""
        for _ in range(3):
            start = time.perf_counter()
            root = vector_root(received).hex()
            root_s.append(time.perf_counter() - start)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
    wall = statistics.median(walls[1:])
    mb = n * 8 / 1e6
    return {
        "bench": "stream_evaluations",
        "values": n,
        "megabytes": mb,
        "repeats": repeats,
        "wall_s_median": round(wall, 4),
        "wall_s_all": [round(w, 4) for w in walls[1:]],
        "wall_s_first_run": round(walls[0], 4),
        "mb_per_s": round(mb / wall, 1),
        "values_per_s": round(n / wall),
        "client_peak_rss_increase_mb": round(max(client_inc[1:]) / 1024, 1),
        "server_peak_rss_increase_mb": round(max(server_inc[1:]) / 1024, 1),
        "client_peak_rss_increase_mb_first_run": round(client_inc[0] / 1024, 1),
        "server_peak_rss_increase_mb_first_run": round(server_inc[0] / 1024, 1),
        "peak_reset_per_run": resettable,
        "merkle_root_s_median": round(statistics.median(root_s), 4),
        "root_matches_server": root == info["root"],
        "target_s": TARGET_S,
        "meets_target": wall < TARGET_S and root == info["root"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.values < 1 or args.repeats < 1:
        parser.error("--values and --repeats must be positive")
    if args.serve:
        serve(args.values)
        return
    print(json.dumps(bench(args.values, args.repeats)), flush=True)


if __name__ == "__main__":
    main()

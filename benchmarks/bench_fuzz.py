"""Fuzz benchmark: random and mutated requests to every RPC of a real Prover on loopback.

    .venv/bin/python benchmarks/bench_fuzz.py                       # 10,000 cases, seed 0
    .venv/bin/python benchmarks/bench_fuzz.py --cases 2000 --seed 7

One in-process Prover (``prover.server.start_server``, synthetic task, session limits
raised) receives ``--cases`` requests drawn by hypothesis from the strategies of
``tests/prover/fuzz_rpc_cases.py`` -- random bytes, protobuf soup, byte-mutated requests, random
and real session refs, JSON-mutated, re-encoded and replayed bodies, re-signed verdicts,
unknown and duplicated fields, requests over 4 MiB, and sessions opened with mutated
parameters that are then driven through every later RPC -- split evenly over the nine
RPCs (seeded: the same ``--seed`` draws the same cases). Printed: per RPC the cases and
the status codes seen, the cases per family, the wall time, every distinct problem (a
status outside the allowed set, details showing an uncaught exception, an exception
logged by gRPC) with one example; then a normal audit against the same server and its
verdict, and one JSON line. Exit status 1 if there was a problem or the audit did not
ACCEPT.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def bench(n_cases: int, seed: int, show: int) -> dict[str, Any]:
    if str(REPO) not in sys.path:  # `tests` is imported from the checkout
        sys.path.insert(0, str(REPO))
    from tests.prover.fuzz_rpc_cases import (
        METHODS,
        Harness,
        cases,
        fuzz,
        start_fuzz_server,
    )
    from tests.prover.test_service_security import build_env

    env = build_env()
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        running = start_fuzz_server(env, Path(tmp) / "store")
        harness = Harness(running, env, Path(tmp))
        try:
            print(
                f"fuzzing {n_cases} cases (seed {seed}) over {len(METHODS)} RPCs, "
                f"server on 127.0.0.1:{running.port}",
                flush=True,
            )
            start = time.perf_counter()
            per_method: dict[str, float] = {}
            for i, method in enumerate(METHODS):
                n = n_cases // len(METHODS) + (i < n_cases % len(METHODS))
                t0 = time.perf_counter()
                fuzz(harness, cases(method), n, seed=seed * 1000 + i, strict=False)
                per_method[method] = time.perf_counter() - t0
            wall = time.perf_counter() - start
            stats = harness.stats
            t0 = time.perf_counter()
            try:
                harness.assert_audit_accepts()
                verdict = "ACCEPT"
            except AssertionError as exc:
                verdict = f"FAILED: {exc}"
            audit_s = time.perf_counter() - t0
        finally:
            harness.close()
            running.stop(0)

    print()
    print(stats.table())
    print()
    total = sum(stats.cases.values())
    print(
        f"cases: {total} in {wall:.1f} s ({total / wall:.0f} cases/s); "
        f"RPC calls: {stats.calls} (with the steps of followed sessions)"
    )
    print("seconds per RPC: " + ", ".join(f"{m} {s:.1f}" for m, s in per_method.items()))
    distinct = Counter(p for p, _, _ in stats.problems)
    print(f"problems: {len(stats.problems)} ({len(distinct)} distinct)")
    shown: Counter[str] = Counter()
    for problem, case, answer in stats.problems:
        if shown[problem] >= show:
            continue
        if not shown[problem]:
            print(f"  {problem}  x{distinct[problem]}")
        shown[problem] += 1
        print(f"    e.g. {_short(repr(case))}")
        print(f"         -> {answer.code.name}: {_short(answer.details)}")
    print(f"normal audit after the fuzz: {verdict} ({audit_s:.2f} s)")
    codes: Counter[str] = Counter()
    for (_, code), count in stats.codes.items():
        codes[code] += count
    return {
        "bench": "fuzz_rpc",
        "cases": total,
        "seed": seed,
        "calls": stats.calls,
        "wall_s": round(wall, 2),
        "cases_per_s": round(total / wall, 1),
        "codes": dict(sorted(codes.items())),
        "cases_per_rpc": {
            m: sum(v for (mm, _), v in stats.cases.items() if mm == m) for m in METHODS
        },
        "problems": len(stats.problems),
        "distinct_problems": dict(distinct),
        "audit_verdict": verdict,
        "ok": not stats.problems and verdict == "ACCEPT",
    }


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases in all (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--show", type=int, default=1, help="examples per distinct problem")
    args = parser.parse_args()
    if args.cases < 1 or args.seed < 0 or args.show < 0:
        parser.error("--cases must be positive, --seed and --show non-negative")
    result = bench(args.cases, args.seed, args.show)
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Every single-byte change of a signed report, its values file and a receipt must fail.

Builds an ACCEPT report with a real audit over loopback (synthetic task) and a receipt
for one contributor, then, for every byte position of

* the report JSON: each of the 8 one-bit flips,
* the values file (``.values.npz``): one bit flip per byte (the bit cycles with the
  position),
* the receipt: each of the 8 one-bit flips,

writes the changed file and runs the same checks as ``vattr check`` / ``vattr receipt
verify``. A change passes only if it leaves the parsed content identical (e.g. the 17th
digit of a float that parses to the same double); such cases are counted as "same".
Anything else that passes, or any exception other than the documented ``UsageError`` for
an unreadable file, is a failure of the benchmark (exit 1).

Usage: ``.venv/bin/python benchmarks/bench_tamper.py [--stride K]`` (every K-th byte
position; default 1 = all).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from attribution.commitments import SigningKey  # noqa: E402
from attribution.errors import UsageError  # noqa: E402
from attribution.execution import SerialExecutor  # noqa: E402
from attribution.protocol.common import task_info  # noqa: E402
from attribution.protocol.planner import plan_run  # noqa: E402
from attribution.tasks import load_task, resolve_spec  # noqa: E402
from prover.served import build_served  # noqa: E402
from prover.server import start_server  # noqa: E402
from vattr.cli import main as vattr  # noqa: E402
from verifier.audit import run_audit  # noqa: E402
from verifier.client import ProverClient  # noqa: E402
from verifier.pricing.receipts import verify_receipt  # noqa: E402
from verifier.reports.report import check_report, values_path, write_audit_report  # noqa: E402


def make_report(out: Path) -> Path:
    task = load_task(resolve_spec("synthetic"))
    served = build_served(task, "exact", None)
    running = start_server(served, SigningKey.generate(), SerialExecutor(), out / "store")
    try:
        plan = plan_run(task_info(task), 0.2, 0.05, hint=task.oracle.exact().B_ge2)
        with ProverClient(f"127.0.0.1:{running.port}") as client:
            res = run_audit(
                client, task, plan, SigningKey.generate(), out / "v", executor="serial", quiet=True
            )
    finally:
        running.stop(0)
    return write_audit_report(out / "report.json", res, task.spec.name)


def same_npz(a: bytes, b: bytes) -> bool:
    """Same arrays; an empty placeholder array counts as absent (the report records an
    absent value set as "none" either way, e.g. no MSE samples)."""
    try:
        x, y = np.load(io.BytesIO(a)), np.load(io.BytesIO(b))
        xs = {k: x[k] for k in x.files if x[k].size}
        ys = {k: y[k] for k in y.files if y[k].size}
        return set(xs) == set(ys) and all(
            np.array_equal(xs[k], ys[k], equal_nan=True) and xs[k].dtype == ys[k].dtype for k in xs
        )
    except Exception:  # a broken archive is not the same content
        return False


def same_json(a: bytes, b: bytes) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return False


def sweep(
    name: str,
    path: Path,
    flips: Callable[[int], list[int]],
    check: Callable[[], bool],
    same: Callable[[bytes, bytes], bool],
    stride: int,
) -> Counter[str]:
    data = path.read_bytes()
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    for pos in range(0, len(data), stride):
        for bit in flips(pos):
            buf = bytearray(data)
            buf[pos] ^= 1 << bit
            path.write_bytes(bytes(buf))
            try:
                ok = check()
            except UsageError:
                ok = False
                counts["refused as unreadable"] += 1
            except Exception as exc:  # the benchmark fails on any other exception
                counts["raised"] += 1
                print(f"  {name} byte {pos} bit {bit}: {type(exc).__name__}: {exc}")
                continue
            if ok and same(data, bytes(buf)):
                counts["same content"] += 1
            elif ok:
                counts["PASSED"] += 1
                print(
                    f"  {name} byte {pos} bit {bit} passed: {data[max(0, pos - 20) : pos + 10]!r}"
                )
            else:
                counts["failed"] += 1
    path.write_bytes(data)
    counts["changes"] = sum(v for k, v in counts.items() if k != "refused as unreadable")
    print(
        f"{name}: {len(data)} bytes, {counts['changes']} changes in "
        f"{time.perf_counter() - start:.1f} s: {dict(counts)}"
    )
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stride", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tamper-") as tmp:
        root = Path(tmp)
        report = make_report(root)
        assert check_report(report).ok
        receipt = root / "receipt.json"
        args_r = ["receipt", str(report), "--contributor", "17", "--out", str(receipt)]
        assert vattr([*args_r, "--budget", "1000"]) == 0
        assert verify_receipt(receipt.read_bytes()).ok
        backup = root / "backup"
        backup.mkdir()
        shutil.copy(values_path(report), backup)

        results = {
            "report": sweep(
                "report JSON",
                report,
                lambda pos: list(range(8)),
                lambda: check_report(report).ok,
                same_json,
                args.stride,
            ),
            "values": sweep(
                "values file",
                values_path(report),
                lambda pos: [pos % 8],
                lambda: check_report(report).ok,
                same_npz,
                args.stride,
            ),
            "receipt": sweep(
                "receipt",
                receipt,
                lambda pos: list(range(8)),
                lambda: verify_receipt(receipt.read_bytes()).ok,
                same_json,
                args.stride,
            ),
        }
    bad = sum(c["PASSED"] + c["raised"] for c in results.values())
    print(
        json.dumps(
            {
                "bench": "tamper",
                "stride": args.stride,
                "bad": bad,
                **{k: dict(v) for k, v in results.items()},
            }
        )
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

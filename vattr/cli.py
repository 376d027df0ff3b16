"""The ``vattr`` command line.

Results go to stdout (``--json``: exactly one JSON object); logs and progress go to
stderr. Exit codes: 0 ok / ACCEPT, 1 REJECT, 2 usage error (bad input; nothing written),
3 protocol or transport error, 4 INCONCLUSIVE, 5 internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attribution import __version__
from attribution.errors import EXIT_INTERNAL, UsageError, VattrError
from vattr.cli_args import add_task_args
from vattr.commands import attribute, audit, pricing, serve

EXIT_OK, EXIT_REJECT, EXIT_USAGE, EXIT_PROTOCOL, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse's own convention)
        self.exit(EXIT_USAGE, f"vattr: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vattr", description="verifiable training-data attribution")
    parser.add_argument("--version", action="version", version=f"vattr {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an internal error"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("tasks", help="list the built-in tasks (name, N, outputs, digest)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show", metavar="TASK", help="print the TOML spec of a built-in task")

    p = sub.add_parser("retrain", help="train models on random B_p subsets into a result store")
    add_task_args(p, with_p=True, with_device=True)
    p.add_argument("--count", type=int, required=True, help="number of subsets (rows)")
    p.add_argument("--seed", type=int, default=0, help="root seed of the subsets (u64)")
    p.add_argument("--store", type=Path, required=True, help="result store directory")
    p.add_argument("--executor", choices=["serial", "local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None, help="worker processes / actors")
    p.add_argument("--batch-size", type=int, default=None, help="models per block")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("bench", help="benchmarks measured side by side in one run")
    bsub = p.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    b = bsub.add_parser("retrain", help="batched trainer vs a per-subset reference loop")
    add_task_args(b, with_p=True, with_device=True)
    b.add_argument("--models", type=int, default=256)
    b.add_argument("--batch-size", type=int, default=None)
    b.add_argument(
        "--reference-models",
        type=int,
        default=None,
        help="time the reference on the first K subsets only (default: all)",
    )
    b.add_argument("--solver", default="newton-cholesky", help="scikit-learn reference solver")
    b.add_argument("--json", action="store_true")

    for module in (audit, pricing, serve, attribute):
        module.register(sub)
    return parser


def _default_batch(task_trainer: str) -> int:
    return {"logistic": 256, "ridge": 256, "multinomial": 16, "mlp": 64, "oracle": 1024}.get(
        task_trainer, 16
    )


def cmd_tasks(args: argparse.Namespace) -> int:
    from attribution.tasks import builtin_names, load_task, resolve_spec
    from attribution.tasks.registry import BUILTIN_DIR

    if args.show:
        if args.show not in builtin_names():
            raise UsageError(f"unknown task {args.show!r}; built-in: {', '.join(builtin_names())}")
        sys.stdout.write((BUILTIN_DIR / f"{args.show}.toml").read_text(encoding="utf-8"))
        return EXIT_OK
    rows, unavailable = [], []
    for name in builtin_names():
        try:
            rows.append(load_task(resolve_spec(name)).describe())
        except UsageError as exc:  # e.g. a task whose optional data package is missing
            unavailable.append({"name": name, "unavailable": str(exc)})
    if args.json:
        print(json.dumps({"tasks": rows, "unavailable": unavailable}, indent=1))
        return EXIT_OK
    print(f"{'name':<22} {'N':>6} {'outputs':>7} {'p':>5} {'tau':>7}  digest")
    for r in rows:
        print(
            f"{r['name']:<22} {r['n_points']:>6} {r['n_outputs']:>7} {r['p']:>5} "
            f"{r['tau']:>7.0e}  {r['digest']}"
        )
    for u in unavailable:
        print(f"{u['name']:<22} unavailable: {u['unavailable']}")
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from attribution.execution import ResultStore, make_executor, retrain_plan, run_plan
    from attribution.progress import Progress
    from attribution.tasks import load_task, resolve_spec
    from attribution.training.device import resolve_device

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    spec = resolve_spec(args.task, args.overrides, args.p)
    task = load_task(spec)
    resolve_device(args.device)
    plan = retrain_plan(task.digest, task.n_points, args.count, spec.p, args.seed)
    batch = args.batch_size or _default_batch(spec.training.trainer)
    if batch < 1:
        raise UsageError("--batch-size must be at least 1")
    with ResultStore.open(
        args.store,
        task_digest=task.digest,
        task_name=spec.name,
        plan=plan.describe(),
        n_outputs=task.n_outputs,
        output_names=task.output_names,
    ) as store:
        pending = len(store.pending_rows())
        bar = Progress(pending, f"retrain {spec.name}", enabled=not (args.quiet or args.json))
        executor = make_executor(args.executor, workers=args.workers, device=args.device)
        try:
            summary = run_plan(spec, task.digest, plan, store, executor, batch, bar)
        finally:
            executor.close()
    result = {
        "task": spec.name,
        "task_digest": task.digest.hex(),
        "store": str(args.store),
        "rows": summary.rows_total,
        "trained": summary.rows_trained,
        "skipped": summary.rows_skipped,
        "seconds": round(summary.seconds, 3),
        "models_per_s": round(summary.rows_trained / summary.seconds, 1)
        if summary.seconds > 0 and summary.rows_trained
        else None,
        "outputs_sha256": summary.outputs_sha256,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{spec.name}: {summary.rows_trained} trained, {summary.rows_skipped} already "
            f"complete, {summary.rows_total} rows in {args.store} "
            f"({summary.seconds:.1f} s); outputs {summary.outputs_sha256}"
        )
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from vattr.bench import bench_retrain

    result = bench_retrain(
        args.task,
        args.overrides,
        args.p,
        args.models,
        args.batch_size,
        args.device,
        args.solver,
        args.reference_models,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    handlers = {"tasks": cmd_tasks, "retrain": cmd_retrain, "bench": cmd_bench}
    try:
        handler = handlers.get(args.command) or args.handler
        code: int = handler(args)
        return code
    except VattrError as exc:  # one line; the class says whose fault and which code
        print(f"vattr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vattr: interrupted (completed rows are kept; rerun to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: one line and its own exit code, never 1
        if args.debug:
            traceback.print_exc()
        print(
            f"vattr: internal error: {type(exc).__name__}: {exc}"
            + ("" if args.debug else " (rerun with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())

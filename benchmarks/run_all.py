"""Run the retraining benchmarks recorded in docs/benchmarks.md.

Each line is one `vattr bench retrain` result (batched vs the per-subset reference on the
same subsets, in the same process): JSON with batched_models_per_s,
reference_models_per_s, speedup and max_abs_diff.

    .venv/bin/python benchmarks/run_all.py            # all tasks
    .venv/bin/python benchmarks/run_all.py --quick    # fewer models
"""

from __future__ import annotations

import argparse
import json

from vattr.bench import bench_retrain

CASES = [
    # task, models, batch size, reference models timed
    ("breast_cancer-logreg", 1024, 1024, None),
    ("digits-logreg", 64, 16, 8),
    ("digits-mlp", 64, 64, 8),
    ("synthetic", 4096, 4096, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--task", action="append", help="only these tasks")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for task, models, batch, ref in CASES:
        if args.task and task not in args.task:
            continue
        if args.quick:
            models, batch = max(8, models // 8), max(8, batch // 8)
            ref = min(ref or models, models)
        result = bench_retrain(task, [], None, models, batch, args.device, "newton-cholesky", ref)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

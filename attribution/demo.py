"""``vattr demo``: the README's main job on the built-in default task.

Until the gRPC service lands this is a local retraining demo: it trains 512 models of
``breast_cancer-logreg`` on random B_p subsets with the default process-pool executor into
a resumable result store, measures the batched trainer against scikit-learn on the same
subsets, and fits an empirical-influence attribution of the mean validation margin.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from attribution.bench import bench_retrain
from attribution.estimators.empirical_influence import empirical_influence
from attribution.execution import ResultStore, make_executor, retrain_plan, run_plan
from attribution.progress import Progress
from attribution.tasks import load_task, resolve_spec

DEFAULT_TASK = "breast_cancer-logreg"


def run_demo(out: Path, quiet: bool = False, count: int = 512) -> dict[str, Any]:
    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr if quiet else sys.stdout)

    spec = resolve_spec(DEFAULT_TASK)
    task = load_task(spec)
    say(
        f"task {spec.name}: N = {task.n_points} training points, {task.n_outputs} outputs, "
        f"digest {task.digest.hex()[:16]}..."
    )
    plan = retrain_plan(task.digest, task.n_points, count, spec.p, 0)
    store_dir = out / "store"
    with ResultStore.open(
        store_dir,
        task_digest=task.digest,
        task_name=spec.name,
        plan=plan.describe(),
        n_outputs=task.n_outputs,
        output_names=task.output_names,
    ) as store:
        executor = make_executor("local")
        try:
            summary = run_plan(
                spec,
                task.digest,
                plan,
                store,
                executor,
                64,
                Progress(len(store.pending_rows()), "retrain", not quiet),
            )
        finally:
            executor.close()
        outputs = np.array(store.outputs)
    say(
        f"trained {summary.rows_trained} models ({summary.rows_skipped} already in the store) "
        f"into {store_dir}; outputs {summary.outputs_sha256}"
    )
    bench = bench_retrain(DEFAULT_TASK, [], None, 256, None, "cpu", "newton-cholesky", None)
    say(
        f"batched Newton: {bench['batched_models_per_s']:.0f} models/s, scikit-learn loop: "
        f"{bench['reference_models_per_s']:.0f} models/s, speedup {bench['speedup']:.1f}x, "
        f"max |diff| {bench['max_abs_diff']:.1e}"
    )
    attr = empirical_influence(plan.masks(range(count)), outputs[:, -1:], spec.p)
    order = np.argsort(attr.a[0])
    top = [
        {"point": int(i), "a": float(attr.a[0, i]), "stderr": float(attr.stderr[0, i])}
        for i in order[::-1][:5]
    ]
    bottom = [
        {"point": int(i), "a": float(attr.a[0, i]), "stderr": float(attr.stderr[0, i])}
        for i in order[:5]
    ]
    say("empirical influence on the mean validation margin (+-1 coefficient, +- stderr):")
    for label, rows in (("most helpful", top), ("most harmful", bottom)):
        say(
            f"  {label}: "
            + ", ".join(f"#{r['point']} {r['a']:+.4f}+-{r['stderr']:.4f}" for r in rows)
        )
    return {
        "task": spec.name,
        "store": str(store_dir),
        "models": count,
        "outputs_sha256": summary.outputs_sha256,
        "bench": bench,
        "top_helpful": top,
        "top_harmful": bottom,
    }

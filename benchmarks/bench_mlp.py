"""Benchmark: vmap-batched vs python-loop training of M small MLPs on digits.

Full scikit-learn digits, 80/20 stratified split (random_state 0: 1,437 training points),
features standardised with the training statistics; MLP 64-32-10, full-batch Adam,
Bernoulli(½) training subsets. Both trainers train the same M (subset, seed) pairs for the
same number of steps; ``max_abs_diff`` is the largest |Δ logit| between them on the 360
held-out points (``max_abs_margin_diff`` the same for correct-class margins
``z_y − logsumexp_{k≠y} z_k``).

``--check-invariance`` also trains models 0, M/2 and M−1 alone (batch of 1) and the whole
batch with one thread, and reports the largest differences against the batched run.

Usage::

    .venv/bin/python benchmarks/bench_mlp.py --models 64 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

from attribution.training.mlp import MLPConfig, mlp_logits, train_mlp_batch, train_mlp_loop
from attribution.training.outputs import multiclass_margins

N_CLASSES = 10


def load_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Standardised digits: (X_train, y_train, X_test, y_test) as torch tensors."""
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X.astype(np.float64), y, test_size=0.2, random_state=0, stratify=y
    )
    mu, sd = X_tr.mean(0), X_tr.std(0)
    sd[sd == 0] = 1.0
    return (
        torch.from_numpy((X_tr - mu) / sd),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy((X_te - mu) / sd),
        torch.from_numpy(y_te).long(),
    )


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", type=int, default=64, help="number of models M (default 64)")
    ap.add_argument("--steps", type=int, default=300, help="full-batch steps (default 300)")
    ap.add_argument("--hidden", type=int, default=32, help="hidden width (default 32)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--repeats", type=int, default=1, help="timing repeats; best is reported")
    ap.add_argument("--seed", type=int, default=0, help="seed for subsets and model seeds")
    ap.add_argument("--check-invariance", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.models < 1 or args.steps < 0 or args.repeats < 1:
        ap.error("--models and --repeats must be >= 1, --steps >= 0")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device("cpu")
    X_tr, y_tr, X_te, y_te = load_data()
    gen = torch.Generator().manual_seed(args.seed)
    weights = (torch.rand(args.models, X_tr.shape[0], generator=gen) < 0.5).double()
    seeds = [int(s) for s in torch.randint(0, 2**31 - 1, (args.models,), generator=gen)]
    cfg = MLPConfig(
        hidden=(args.hidden,),
        steps=args.steps,
        lr=args.lr,
        optimizer=args.optimizer,
        dtype=args.dtype,
    )

    def timed(fn: Any) -> tuple[float, dict[str, Tensor]]:
        best, out = float("inf"), {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn(X_tr, y_tr, weights, seeds, N_CLASSES, cfg, device)
            best = min(best, time.perf_counter() - t0)
        return best, out

    # warm-up (first-call overheads of vmap / MKL) on a tiny problem
    warm_cfg = MLPConfig(hidden=cfg.hidden, steps=2, dtype=cfg.dtype)
    train_mlp_batch(X_tr, y_tr, weights[:2], seeds[:2], N_CLASSES, warm_cfg, device)
    train_mlp_loop(X_tr, y_tr, weights[:1], seeds[:1], N_CLASSES, warm_cfg, device)

    t_batch, p_batch = timed(train_mlp_batch)
    t_loop, p_loop = timed(train_mlp_loop)
    z_batch = mlp_logits(p_batch, X_te)
    z_loop = mlp_logits(p_loop, X_te)
    m_batch = multiclass_margins(z_batch, y_te)
    acc = (mlp_logits(p_batch, X_tr).argmax(-1) == y_tr).double().mean(1)
    result: dict[str, Any] = {
        "models": args.models,
        "steps": args.steps,
        "arch": f"{X_tr.shape[1]}-{args.hidden}-{N_CLASSES}",
        "dtype": args.dtype,
        "optimizer": args.optimizer,
        "n_train": int(X_tr.shape[0]),
        "n_eval": int(X_te.shape[0]),
        "threads": threads,
        "repeats": args.repeats,
        "batched_s": round(t_batch, 3),
        "loop_s": round(t_loop, 3),
        "batched_models_per_s": round(args.models / t_batch, 3),
        "loop_models_per_s": round(args.models / t_loop, 3),
        "speedup": round(t_loop / t_batch, 3),
        "max_abs_diff": _maxdiff(z_batch, z_loop),
        "max_abs_margin_diff": _maxdiff(m_batch, multiclass_margins(z_loop, y_te)),
        "test_accuracy_mean": float((z_batch.argmax(-1) == y_te).double().mean()),
        "train_subset_accuracy_mean": float(acc.mean()),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }

    if args.check_invariance:
        positions = sorted({0, args.models // 2, args.models - 1})
        d_logit, d_margin = 0.0, 0.0
        for pos in positions:
            p1 = train_mlp_batch(
                X_tr, y_tr, weights[pos : pos + 1], seeds[pos : pos + 1], N_CLASSES, cfg, device
            )
            z1 = mlp_logits(p1, X_te)
            d_logit = max(d_logit, _maxdiff(z1[0], z_batch[pos]))
            d_margin = max(d_margin, _maxdiff(multiclass_margins(z1, y_te)[0], m_batch[pos]))
        torch.set_num_threads(1)
        try:
            z_t1 = mlp_logits(
                train_mlp_batch(X_tr, y_tr, weights, seeds, N_CLASSES, cfg, device), X_te
            )
        finally:
            torch.set_num_threads(threads)
        result["invariance"] = {
            "positions": positions,
            "batch1_vs_batchM_logit": d_logit,
            "batch1_vs_batchM_margin": d_margin,
            "threads1_vs_default_logit": _maxdiff(z_t1, z_batch),
            "threads1_vs_default_margin": _maxdiff(multiclass_margins(z_t1, y_te), m_batch),
        }

    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

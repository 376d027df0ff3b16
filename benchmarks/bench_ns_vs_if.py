"""Benchmark: group-removal parameter error of IF, NS and RIF against exact retraining.

Synthetic Gaussian logistic regression (docs/benchmarks.md): ``x ~ N(0, I_d)``,
``y ~ Bernoulli(sigmoid(theta*.x))`` with ``||theta*|| = signal``, no intercept, L2
``lam`` in convention A. For each group size k, ``groups`` uniformly random groups T of
k training points; for each T the exact ``theta_{-T}`` (warm-started Newton to 1e-10)
and the estimates ``theta + delta_T`` of IF, NS (Woodbury) and RIF. Reported per k (one
JSON line each): the mean true effect ``||theta_{-T} - theta||``, the mean errors
``||theta_{-T} - theta_T^est||`` and the relative errors (error / effect). The last line
holds the least-squares slopes of log(mean error) against log(k).

Theory (Rubinstein & Hopkins, arXiv 2512.12572), at fixed (n, d)::

    E ||theta_T - theta_T^NS||    = O~(k d / n^2)              slope 1 in k
    E ||theta_T^NS - theta_T^IF|| = O~((k + d) sqrt(k d) / n^2)  slope 1/2 (k << d) .. 3/2 (k >> d)

``theory_slope_if`` is the slope of ``(k + d) sqrt(k)`` fitted over the same k values.
``--n-scaling`` adds the slopes in n at fixed k (theory: -2 for both errors).

Usage::

    .venv/bin/python benchmarks/bench_ns_vs_if.py
    .venv/bin/python benchmarks/bench_ns_vs_if.py --n 400 --d 10 --groups 20 --n-scaling
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from attribution.estimators.convex import ConvexInfluence, ConvexProblem

F64 = torch.float64


def make_problem(n: int, d: int, lam: float, signal: float, seed: int) -> ConvexProblem:
    """Gaussian design, logistic labels, no intercept (every coordinate penalised)."""
    rng = np.random.default_rng(seed)
    theta_star = rng.normal(size=d)
    theta_star *= signal / np.linalg.norm(theta_star)
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-X @ theta_star))).astype(np.float64)
    return ConvexProblem(
        kind="logistic",
        Xa=torch.from_numpy(X),
        targets=torch.from_numpy(y),
        lam=lam,
        pen=torch.ones(d, dtype=F64),
    )


def errors_for_k(
    est: ConvexInfluence, k: int, groups: int, rng: np.random.Generator
) -> dict[str, float]:
    """Mean effect size and mean IF / NS / RIF parameter errors over random groups."""
    gs = [rng.choice(est.n, k, replace=False) for _ in range(groups)]
    exact = est.retrain_parameters(gs)
    out: dict[str, float] = {"effect": float(exact.norm(dim=1).mean())}
    for method in ("if", "ns", "rif"):
        delta = est.group_parameters(gs, method)
        err = (delta - exact).norm(dim=1)
        out[f"err_{method}"] = float(err.mean())
        out[f"rel_{method}"] = float((err / exact.norm(dim=1)).mean())
    return out


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(ys) against log(xs)."""
    return float(np.polyfit(np.log(np.asarray(xs)), np.log(np.asarray(ys)), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--signal", type=float, default=2.0, help="||theta*||")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--ks", default="1,2,4,8,16,32,64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-scaling", action="store_true", help="also vary n at fixed k")
    parser.add_argument("--scaling-k", type=int, default=4)
    parser.add_argument("--scaling-ns", default="200,400,800,1600")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    t0 = time.perf_counter()
    ks = [int(v) for v in args.ks.split(",")]
    est = ConvexInfluence(make_problem(args.n, args.d, args.lam, args.signal, args.seed))
    rng = np.random.default_rng(args.seed + 1)
    rows: list[dict[str, Any]] = []
    for k in ks:
        row: dict[str, Any] = {"n": args.n, "d": args.d, "lam": args.lam, "k": k}
        row.update(errors_for_k(est, k, args.groups, rng))
        row["ns_over_if"] = row["err_ns"] / row["err_if"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    k_arr = np.asarray(ks, dtype=np.float64)
    summary: dict[str, Any] = {
        "summary": "k-scaling",
        "n": args.n,
        "d": args.d,
        "groups": args.groups,
        "slope_if": slope(ks, [r["err_if"] for r in rows]),
        "slope_ns": slope(ks, [r["err_ns"] for r in rows]),
        "slope_rif": slope(ks, [r["err_rif"] for r in rows]),
        "slope_effect": slope(ks, [r["effect"] for r in rows]),
        "theory_slope_ns": 1.0,
        "theory_slope_if": slope(ks, list((k_arr + args.d) * np.sqrt(k_arr))),
        "theory_slope_effect": 0.5,
    }
    small = [i for i, k in enumerate(ks) if k <= args.d]
    large = [i for i, k in enumerate(ks) if k >= args.d]
    for tag, sel in (("k<=d", small), ("k>=d", large)):
        if len(sel) >= 2:
            sk = [ks[i] for i in sel]
            summary[f"slope_if[{tag}]"] = slope(sk, [rows[i]["err_if"] for i in sel])
            summary[f"slope_ns[{tag}]"] = slope(sk, [rows[i]["err_ns"] for i in sel])
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary), flush=True)

    if args.n_scaling:
        ns = [int(v) for v in args.scaling_ns.split(",")]
        res: list[dict[str, Any]] = []
        for n in ns:
            e = ConvexInfluence(make_problem(n, args.d, args.lam, args.signal, args.seed))
            row = {"n": n, "d": args.d, "lam": args.lam, "k": args.scaling_k}
            row.update(errors_for_k(e, args.scaling_k, args.groups, np.random.default_rng(n)))
            res.append(row)
            print(json.dumps(row), flush=True)
        print(
            json.dumps(
                {
                    "summary": "n-scaling",
                    "k": args.scaling_k,
                    "slope_if": slope(ns, [r["err_if"] for r in res]),
                    "slope_ns": slope(ns, [r["err_ns"] for r in res]),
                    "slope_effect": slope(ns, [r["effect"] for r in res]),
                    "theory_slope_errors": -2.0,
                    "theory_slope_effect": -1.0,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

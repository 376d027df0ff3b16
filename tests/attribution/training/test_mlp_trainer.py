"""Tests of the batched small-MLP trainer (attribution/training/mlp.py).

Setup: the first 800 points of scikit-learn's digits, standardised; MLP 64-16-10, 60
full-batch Adam steps (lr 0.01, l2 1e-4); 8 models with Bernoulli(½) subsets.
n = 800 (not 300) on purpose: on the reference machine (2-core Intel Xeon, AVX-512,
torch 2.13.0+cpu, MKL 2024.2) a *single* GEMM whose reduction dimension is the number of
points (the weight gradients, e.g. (16 × n) @ (n × 64)) is split across threads by MKL
from n ≈ 800 on, which changes the summation order. That is the only source of
batch/thread dependence observed:

* a stacked batch of M ≥ 2 models uses one ``bmm`` whose per-model products are
  computed like a single-threaded GEMM, independently of M and of the thread count;
* a batch of one model (and the python-loop reference) uses one multi-threaded GEMM, which
  differs in the last bits from the single-threaded one when ≥ 2 threads are used.

Measured max |Δ logits| over all 800 points (2 threads, default MKL settings)::

                         float32     float64
    batch vs loop        1.1e-5      2.8e-14     (Adam; SGD: 3.8e-6, 7.1e-15)
    batch 1 vs batch 8   3.8e-6      7.1e-15
    batch 3 vs batch 8   0           0
    threads 1 vs 2, M=8  0           0
    threads 1 vs 2, M=1  3.8e-6      7.1e-15

(logits are O(20)). With ``MKL_CBWR=AUTO,STRICT`` (MKL's strict conditional-numerical-
reproducibility mode) every one of these is exactly 0 (test_mkl_strict_cnr_is_bitwise).

Growth with training length: on the full digits task (64-32-10, 1437 points, 300 Adam
steps, 64 models, benchmarks/bench_mlp.py --check-invariance) batch 1 vs batch 64 differs
by 4.4e-3 in logits (7.9e-3 in margins) in float32, but only 1.5e-14 (1.2e-14) in float64.

Tolerances asserted here: float32 2e-4 (≈ 18× the largest measurement, for other CPUs'
kernels at this short length), float64 1e-11 (≈ 350×; float64 differences stayed at
~1e-14 from 60 to 300 steps in our measurements).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor

from attribution.training.mlp import (
    MLPConfig,
    deterministic_mode,
    init_params,
    mlp_logits,
    train_mlp_batch,
    train_mlp_loop,
)
from attribution.training.outputs import multiclass_margins

N_POINTS = 800
N_CLASSES = 10
M = 8
SEEDS = [11 * i + 3 for i in range(M)]
CPU = torch.device("cpu")
TOL = {"float32": 2e-4, "float64": 1e-11}
REPO = Path(__file__).resolve().parents[3]


def _config(dtype: str, **kw: object) -> MLPConfig:
    base = MLPConfig(hidden=(16,), steps=60, lr=0.01, optimizer="adam", l2=1e-4, dtype=dtype)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    X, y = load_digits(return_X_y=True)
    X = X[:N_POINTS].astype(np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1.0
    return torch.from_numpy((X - mu) / sd), torch.from_numpy(y[:N_POINTS]).long()


@pytest.fixture(scope="module")
def subsets() -> Tensor:
    gen = torch.Generator().manual_seed(1)
    return (torch.rand(M, N_POINTS, generator=gen) < 0.5).double()


@pytest.fixture
def two_threads() -> Iterator[None]:
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _logits(
    X: Tensor, y: Tensor, w: Tensor, seeds: list[int], cfg: MLPConfig, *, loop: bool = False
) -> Tensor:
    trainer = train_mlp_loop if loop else train_mlp_batch
    return mlp_logits(trainer(X, y, w, seeds, N_CLASSES, cfg, CPU), X)


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


# ------------------------------------------------------------------------ equivalence


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_matches_loop(
    digits: tuple[Tensor, Tensor], subsets: Tensor, dtype: str, optimizer: str
) -> None:
    """vmap-batched == python-loop reference (measured 1.1e-5 f32 / 2.8e-14 f64, Adam)."""
    X, y = digits
    cfg = _config(dtype, optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1)
    batched = _logits(X, y, subsets, SEEDS, cfg)
    looped = _logits(X, y, subsets, SEEDS, cfg, loop=True)
    assert batched.shape == (M, N_POINTS, N_CLASSES)
    assert batched.dtype == cfg.torch_dtype
    diff = _maxdiff(batched, looped)
    print(f"batch vs loop {dtype} {optimizer}: max|Δlogit| = {diff:.3g}")
    assert diff <= TOL[dtype]


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_size_invariance(digits: tuple[Tensor, Tensor], subsets: Tensor, dtype: str) -> None:
    """(subset, seed) alone in a batch vs at position 5 of a batch of 8.

    Measured: float32 3.8e-6, float64 7.1e-15 (batch of 1 = one multi-threaded GEMM);
    position 5 of 8 vs position 0 of a batch of 3: exactly 0.
    """
    X, y = digits
    cfg = _config(dtype)
    in_eight = _logits(X, y, subsets, SEEDS, cfg)[5]
    alone = _logits(X, y, subsets[5:6], SEEDS[5:6], cfg)[0]
    other_batch = torch.stack([subsets[5], subsets[0], subsets[7]])
    in_three = _logits(X, y, other_batch, [SEEDS[5], SEEDS[0], SEEDS[7]], cfg)[0]
    d1, d3 = _maxdiff(alone, in_eight), _maxdiff(in_three, in_eight)
    print(f"batch invariance {dtype}: 1 vs 8 {d1:.3g}, 3 vs 8 {d3:.3g}")
    assert d1 <= TOL[dtype]
    assert d3 <= TOL[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_invariance(digits: tuple[Tensor, Tensor], subsets: Tensor, dtype: str) -> None:
    """torch.set_num_threads(1) vs 2, for a batch of 8 and a batch of 1.

    Measured: batch of 8 exactly 0; batch of 1 3.8e-6 (float32) / 7.1e-15 (float64).
    """
    X, y = digits
    cfg = _config(dtype)
    prev = torch.get_num_threads()
    try:
        out = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[threads] = (
                _logits(X, y, subsets, SEEDS, cfg),
                _logits(X, y, subsets[2:3], SEEDS[2:3], cfg),
            )
    finally:
        torch.set_num_threads(prev)
    assert torch.get_num_threads() == prev
    d8 = _maxdiff(out[1][0], out[2][0])
    d1 = _maxdiff(out[1][1], out[2][1])
    print(f"thread invariance {dtype}: M=8 {d8:.3g}, M=1 {d1:.3g}")
    assert d8 <= TOL[dtype]
    assert d1 <= TOL[dtype]


_STRICT_SCRIPT = textwrap.dedent(
    """
    import numpy as np, torch
    from sklearn.datasets import load_digits
    from attribution.training.mlp import MLPConfig, mlp_logits, train_mlp_batch, train_mlp_loop
    X, y = load_digits(return_X_y=True)
    X = X[:800]; X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    X = torch.from_numpy(X); y = torch.from_numpy(y[:800]).long()
    w = (torch.rand(4, 800, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    seeds = [3, 14, 25, 36]; cpu = torch.device("cpu")
    for dtype in ("float32", "float64"):
        cfg = MLPConfig(hidden=(16,), steps=60, dtype=dtype)
        def run(fn, w, s):
            return mlp_logits(fn(X, y, w, s, 10, cfg, cpu), X)
        torch.set_num_threads(2)
        ref = run(train_mlp_batch, w, seeds)
        assert torch.equal(run(train_mlp_loop, w, seeds), ref), "loop"
        assert torch.equal(run(train_mlp_batch, w[1:2], seeds[1:2])[0], ref[1]), "batch 1"
        torch.set_num_threads(1)
        assert torch.equal(run(train_mlp_batch, w[1:2], seeds[1:2])[0], ref[1]), "threads"
    print("ok")
    """
)


def _is_intel_mkl() -> bool:
    if not torch.backends.mkl.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _is_intel_mkl(), reason="needs torch with MKL on an Intel CPU")
def test_mkl_strict_cnr_is_bitwise() -> None:
    """With MKL_CBWR=AUTO,STRICT batch 1 / batch 4 / loop / 1-2 threads are bit-identical."""
    env = dict(os.environ, MKL_CBWR="AUTO,STRICT")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _STRICT_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(digits: tuple[Tensor, Tensor], subsets: Tensor) -> None:
    """Same code path on CUDA: float64 results agree with the CPU run."""
    X, y = digits
    cfg = _config("float64")
    cpu = _logits(X, y, subsets, SEEDS, cfg)
    params = train_mlp_batch(X, y, subsets, SEEDS, N_CLASSES, cfg, torch.device("cuda"))
    gpu = mlp_logits(params, X).cpu()
    assert _maxdiff(cpu, gpu) <= 1e-9


# ------------------------------------------------------------------------ behaviour


def test_learns_and_weights_matter(digits: tuple[Tensor, Tensor]) -> None:
    X, y = digits
    cfg = _config("float64")
    full = torch.ones(N_POINTS, dtype=torch.float64)
    no_threes = (y != 3).double()
    w = torch.stack([full, no_threes])
    logits = _logits(X, y, w, [7, 7], cfg)
    acc = (logits[0].argmax(-1) == y).double().mean()
    assert acc > 0.9
    margins = multiclass_margins(logits, y)
    is3 = y == 3
    full_m3, drop_m3 = margins[0][is3].mean(), margins[1][is3].mean()
    assert drop_m3 < full_m3 - 1.0
    # the other classes are hardly affected
    assert abs(margins[1][~is3].mean() - margins[0][~is3].mean()) < 1.0


def test_seeds(digits: tuple[Tensor, Tensor], subsets: Tensor) -> None:
    X, y = digits
    cfg = _config("float32", steps=20)
    w = subsets[:1].expand(3, -1)
    params = train_mlp_batch(X, y, w, [5, 6, 5], N_CLASSES, cfg, CPU)
    for k, v in params.items():
        assert torch.equal(v[0], v[2]), k
        assert not torch.equal(v[0], v[1]), k
    again = train_mlp_batch(X, y, w, [5, 6, 5], N_CLASSES, cfg, CPU)
    assert all(torch.equal(params[k], again[k]) for k in params)


def test_init_params() -> None:
    cfg32 = MLPConfig(hidden=(16, 8), dtype="float32")
    cfg64 = dataclasses.replace(cfg32, dtype="float64")
    p64 = init_params(64, 10, cfg64, [1, 2])
    p32 = init_params(64, 10, cfg32, [9, 2])
    assert list(p64) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert p64["0.weight"].shape == (2, 16, 64)
    assert p64["4.bias"].shape == (2, 10)
    for k, v in p64.items():
        fan_in = {"0": 64, "2": 16, "4": 8}[k.split(".")[0]]
        assert float(v.abs().max()) <= 1 / fan_in**0.5
        assert p32[k].dtype == torch.float32
        # seed 2 at position 1 in both calls; float32 is the float64 draw rounded
        assert torch.equal(p32[k][1], v[1].float())
        assert not torch.equal(v[0], v[1])


def test_deterministic_mode_restores() -> None:
    prev = torch.are_deterministic_algorithms_enabled()
    prev_prec = torch.get_float32_matmul_precision()
    with deterministic_mode(CPU):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.are_deterministic_algorithms_enabled() == prev
    assert torch.get_float32_matmul_precision() == prev_prec


def test_zero_steps_returns_init(digits: tuple[Tensor, Tensor], subsets: Tensor) -> None:
    X, y = digits
    cfg = _config("float64", steps=0)
    params = train_mlp_batch(X, y, subsets[:2], SEEDS[:2], N_CLASSES, cfg, CPU)
    init = init_params(X.shape[1], N_CLASSES, cfg, SEEDS[:2])
    assert all(torch.equal(params[k], init[k]) for k in init)


def test_input_validation(digits: tuple[Tensor, Tensor], subsets: Tensor) -> None:
    X, y = digits
    cfg = _config("float32", steps=1)
    with pytest.raises(ValueError, match="seeds"):
        train_mlp_batch(X, y, subsets, SEEDS[:3], N_CLASSES, cfg, CPU)
    with pytest.raises(ValueError, match="weights"):
        train_mlp_batch(X, y, subsets[:, :10], SEEDS, N_CLASSES, cfg, CPU)
    with pytest.raises(ValueError, match="int64"):
        train_mlp_batch(X, y.int(), subsets, SEEDS, N_CLASSES, cfg, CPU)
    with pytest.raises(ValueError, match="labels"):
        train_mlp_batch(X, y, subsets, SEEDS, 5, cfg, CPU)
    with pytest.raises(ValueError, match="optimizer"):
        MLPConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="dtype"):
        MLPConfig(dtype="float16")
    with pytest.raises(ValueError, match="hidden"):
        MLPConfig(hidden=(0,))

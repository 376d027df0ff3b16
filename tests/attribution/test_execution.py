"""Executors and the result store: invariance across executors, resumability, refusals,
and a real SIGKILL in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attribution.errors import StoreCorruptError, StoreMismatchError, UsageError
from attribution.execution import (
    ProcessExecutor,
    ResultStore,
    SerialExecutor,
    block_partition,
    retrain_plan,
    run_plan,
)
from attribution.tasks import load_task, resolve_spec

VATTR = [sys.executable, "-m", "vattr"]


def _open(path: Path, task_name: str = "breast_cancer-logreg", count: int = 40, p: float = 0.5):
    spec = resolve_spec(task_name, p=p)
    task = load_task(spec)
    plan = retrain_plan(task.digest, task.n_points, count, spec.p, 0)
    store = ResultStore.open(
        path,
        task_digest=task.digest,
        task_name=spec.name,
        plan=plan.describe(),
        n_outputs=task.n_outputs,
        output_names=task.output_names,
    )
    return spec, task, plan, store


def test_block_partition_is_fixed() -> None:
    assert block_partition([0, 1, 2, 5, 9, 10], 4) == [[0, 1, 2], [5], [9, 10]]


def test_serial_run_matches_direct_training(tmp_path: Path) -> None:
    spec, task, plan, store = _open(tmp_path / "s")
    with store:
        summary = run_plan(spec, task.digest, plan, store, SerialExecutor(), batch_size=16)
        assert summary.rows_trained == 40
        assert summary.outputs_sha256 is not None
        direct = task.train_batch(plan.masks(range(40)), plan.seeds(range(40)))
        assert np.abs(np.asarray(store.outputs) - direct).max() <= task.tau
    manifest, _outputs, completed = ResultStore.read(tmp_path / "s")
    assert completed.all()
    assert manifest["task_digest"] == task.digest.hex()


def test_process_pool_matches_serial(tmp_path: Path) -> None:
    """Serial vs a real spawn pool of 2 workers (1 torch thread each): equal within tau."""
    spec, task, plan, store = _open(tmp_path / "serial", count=48)
    with store:
        run_plan(spec, task.digest, plan, store, SerialExecutor(), batch_size=16)
        serial = np.array(store.outputs)
    _, _, _, store2 = _open(tmp_path / "pool", count=48)
    executor = ProcessExecutor(max_workers=2)
    try:
        with store2:
            run_plan(spec, task.digest, plan, store2, executor, batch_size=8)
            pooled = np.array(store2.outputs)
    finally:
        executor.close()
    assert np.abs(serial - pooled).max() <= task.tau


def test_resume_trains_only_missing_rows(tmp_path: Path) -> None:
    spec, task, plan, store = _open(tmp_path / "r")
    with store:
        blocks = iter(SerialExecutor().run(spec, task.digest, plan, [list(range(0, 8))]))
        rows, vals = next(blocks)
        store.write_block(rows, vals)
    spec, task, plan, store = _open(tmp_path / "r")
    with store:
        assert store.pending_rows() == list(range(8, 40))
        summary = run_plan(spec, task.digest, plan, store, SerialExecutor(), batch_size=8)
    assert (summary.rows_trained, summary.rows_skipped) == (32, 8)


def test_reopen_with_other_task_is_refused(tmp_path: Path) -> None:
    _, _, _, store = _open(tmp_path / "m")
    store.close()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()}
    with pytest.raises(StoreMismatchError, match="belongs to task"):
        _open(tmp_path / "m", p=0.3)
    with pytest.raises(StoreMismatchError, match="another plan"):
        _open(tmp_path / "m", count=41)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()}
    assert before == after


def test_second_writer_is_refused(tmp_path: Path) -> None:
    _, _, _, store = _open(tmp_path / "l")
    with store, pytest.raises(UsageError, match="in use"):
        _open(tmp_path / "l")


def test_non_empty_directory_without_manifest_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        _open(tmp_path / "x")
    assert (tmp_path / "x" / "precious.txt").read_text() == "keep me"


def test_corrupted_outputs_detected(tmp_path: Path) -> None:
    spec, task, plan, store = _open(tmp_path / "c", count=8)
    with store:
        run_plan(spec, task.digest, plan, store, SerialExecutor(), batch_size=8)
    out = np.load(tmp_path / "c" / "outputs.npy", mmap_mode="r+")
    out[3, 2] += 1e-12
    out.flush()
    del out
    with pytest.raises(StoreCorruptError, match="does not match"):
        ResultStore.read(tmp_path / "c")
    with pytest.raises(StoreCorruptError, match="does not match"):
        _open(tmp_path / "c", count=8)


def test_store_refuses_non_finite(tmp_path: Path) -> None:
    _, _, _, store = _open(tmp_path / "n", count=4)
    with store, pytest.raises(ValueError, match="non-finite"):
        store.write_block([0], np.full((1, store.outputs.shape[1]), np.nan))


def _completed(store: Path) -> int:
    try:
        return int(np.load(store / "completed.npy").sum())
    except (OSError, ValueError):
        return 0


def test_sigkill_then_resume_gives_identical_rows(tmp_path: Path) -> None:
    """Kill a real `vattr retrain` with SIGKILL mid-run, resume it, and compare with an
    uninterrupted run: the same rows, bit for bit (same blocks, executor and threads)."""
    args = [
        "retrain",
        "--task",
        "breast_cancer-logreg",
        "--count",
        "600",
        "--batch-size",
        "4",
        "--executor",
        "serial",
        "--quiet",
        "--json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*VATTR, *args, "--store", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _completed(killed) < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = _completed(killed)
    assert 0 < done_at_kill < 600

    resumed = subprocess.run(
        [*VATTR, *args, "--store", str(killed)], env=env, capture_output=True, text=True, check=True
    )
    info = json.loads(resumed.stdout)
    assert info["skipped"] == done_at_kill
    assert info["trained"] == 600 - done_at_kill

    clean = tmp_path / "clean"
    full = subprocess.run(
        [*VATTR, *args, "--store", str(clean)], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(full.stdout)["outputs_sha256"] == info["outputs_sha256"]
    assert np.array_equal(np.load(killed / "outputs.npy"), np.load(clean / "outputs.npy"))


def test_ray_executor_matches_serial(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from attribution.execution.ray_executor import RayExecutor

    spec, task, plan, store = _open(tmp_path / "ray", count=24)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    executor = RayExecutor(num_actors=2, init_kwargs={"num_cpus": 2, "num_gpus": 0})
    try:
        with store:
            run_plan(spec, task.digest, plan, store, executor, batch_size=6)
            got = np.array(store.outputs)
    finally:
        executor.close()
    assert not ray.is_initialized()
    direct = task.train_batch(plan.masks(range(24)), plan.seeds(range(24)))
    assert np.abs(got - direct).max() <= task.tau

"""``vattr demo``: the README's main job.

On ``breast_cancer-logreg`` (the mean validation margin) it starts two real Prover gRPC
servers on free loopback ports -- an honest one serving a datamodel fitted on its own
B_p runs, and a cheating one serving the same attribution scaled by 0.5 (under a fixed
price per unit of attribution, half of every payout) -- audits both with the interactive
protocol at eps = 0.03, delta = 0.05, writes the signed reports, checks them offline,
prints both verdicts and the report paths, and shuts the servers down.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from attribution.commitments import SigningKey
from attribution.estimators.sources import compute_attribution, residual_hint
from attribution.execution.executors import ProcessExecutor
from attribution.protocol.common import task_info
from attribution.protocol.planner import plan_run
from attribution.tasks import load_task, resolve_spec
from prover.served import ServedTask
from prover.server import start_server
from vattr.redteam.provers import servicer_factory
from vattr.redteam.strategies import parse_strategy
from verifier.audit import run_audit
from verifier.client import ProverClient
from verifier.reports.report import check_report, write_audit_report

TASK, EPSILON, DELTA = "breast_cancer-logreg", 0.03, 0.05


def run_demo(out: Path, quiet: bool = False) -> dict[str, Any]:
    def say(msg: str) -> None:
        print(msg, file=sys.stderr if quiet else sys.stdout, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    task = load_task(resolve_spec(TASK))
    mean = task.n_outputs - 1
    say(
        f"task {TASK}: N = {task.n_points} training points; audited output: the mean "
        f"validation margin; eps = {EPSILON}, delta = {DELTA}"
    )
    honest = compute_attribution(task, "datamodel")
    say("the honest Prover fitted its datamodel on its own B_p runs")
    # The Verifier sizes its audit once, from the honest Prover's residual hint, and
    # audits both Provers with the same plan (it does not know which one cheats).
    hint = max(residual_hint(task, honest)[mean], 1e-4 * task.bound**2)
    plan = plan_run(task_info(task), EPSILON, DELTA, outputs=(mean,), hint=hint)
    if not quiet:
        say(plan.describe())
    executor = ProcessExecutor(max_workers=2)
    servers = []
    results: dict[str, Any] = {}
    try:
        for name, strategy_text in (("honest", "honest"), ("cheating", "scale:0.5")):
            strategy = parse_strategy(strategy_text)
            A = strategy.attribution(honest, task.spec.p)
            served = ServedTask(task, A, residual_hint(task, A))
            running = start_server(
                served,
                SigningKey.generate(),
                executor,
                out / f"{name}-store",
                servicer_factory=servicer_factory(strategy),
            )
            servers.append(running)
            target = f"127.0.0.1:{running.port}"
            say(f"\n{name} Prover ({strategy_text}) listening on {target}")
            with ProverClient(target) as client:
                client.wait_ready()
                result = run_audit(
                    client,
                    task,
                    plan,
                    SigningKey.generate(),
                    out / f"{name}-verifier",
                    executor="serial",
                    quiet=quiet,
                )
            path = write_audit_report(
                out / f"{name}.json",
                result,
                TASK,
                {"prover": {"target": target, "red_team": strategy.name}},
            )
            check = check_report(path)
            o = result.outcome
            stats = o.certificate["outputs"][0] if o.certificate["outputs"] else {}
            say(
                f"{name}: {o.verdict}{' (' + o.reason + ')' if o.reason else ''}"
                + (
                    f"  err estimate {stats['statistic']:.4f}, upper bound "
                    f"{stats['upper_bound']:.4f} vs eps {EPSILON}"
                    if "statistic" in stats
                    else ""
                )
                + f"\n  report {path} (offline check: {'OK' if check.ok else check.problems})"
            )
            results[name] = {"verdict": o.verdict, "reason": o.reason, "report": str(path)}
    finally:
        for running in servers:
            running.stop(grace=1.0)
        executor.close()
    return results

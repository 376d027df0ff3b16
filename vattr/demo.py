"""``vattr demo``: the README's main job.

On ``breast_cancer-logreg`` (the mean validation margin) it starts two real Prover gRPC
servers on free loopback ports -- an honest one serving a datamodel fitted on its own
B_p runs, and a cheating one serving the same attribution scaled by 0.5 (under a fixed
price per unit of attribution, half of every payout) -- audits both with the interactive
protocol at eps = 0.03, delta = 0.05 (committed band, sizes from the Verifier's pilot,
docs/protocol.md sections 6.13-6.14), writes the signed reports, checks them offline,
prints both verdicts, what each side trained and what fitting an attribution oneself
would take, and shuts the servers down.

``vattr demo --task randhie-logreg`` does the same on the large-N task (N = 19,988; the
honest Prover serves the exact-Hessian influence attribution): there verifying costs a
small fraction of computing an attribution oneself.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.commitments import SigningKey
from attribution.errors import UsageError
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

TASK, DELTA = "breast_cancer-logreg", 0.05


@dataclass(frozen=True)
class DemoCase:
    """One demo: the task, its accuracy, and the honest Prover's attribution method."""

    epsilon: float
    method: str
    about: str


DEMOS = {
    "breast_cancer-logreg": DemoCase(
        0.03, "datamodel", "the honest Prover fitted its datamodel on its own B_p runs"
    ),
    # eps about 2.4 x the mean margin's E[r^2] (8.4e-8 with the exact-Hessian influence;
    # the margin's variance is 1e-4, so eps is 0.2 % of it)
    "randhie-logreg": DemoCase(
        2e-7, "if-exact", "the honest Prover computed exact-Hessian influence (no training)"
    ),
}


def _costs(cert: dict[str, Any], n_points: int, epsilon: float, b_ge2: float) -> str:
    """What each side trained, against fitting a datamodel oneself: about 2 N B_>=2 / eps
    runs for err <= eps / 2 (docs/protocol.md section 7.6), with B_>=2 taken as the honest
    attribution's residual E[(f - g)^2] (the same figure for both Provers: it is the
    task's, not the attribution's)."""
    sizes = cert["sizes"]
    line = (
        f"  Prover trained |E| = {sizes['E']}, Verifier {sizes['verifier_trainings']} "
        f"(k = {sizes['k']} spot checks + |M| = {sizes['M']} pilot)"
    )
    if b_ge2 > 0:
        self_fit = math.ceil(2 * n_points * b_ge2 / epsilon)
        share = sizes["verifier_trainings"] / self_fit
        line += f"; fitting a datamodel oneself ~{self_fit} runs (Verifier: {share:.0%} of it)"
    return line


def run_demo(out: Path, quiet: bool = False, task_name: str = TASK) -> dict[str, Any]:
    def say(msg: str) -> None:
        print(msg, file=sys.stderr if quiet else sys.stdout, flush=True)

    if task_name not in DEMOS:
        raise UsageError(f"no demo for {task_name!r}: use one of {', '.join(DEMOS)}")
    case = DEMOS[task_name]
    epsilon = case.epsilon
    out.mkdir(parents=True, exist_ok=True)
    task = load_task(resolve_spec(task_name))
    mean = task.n_outputs - 1
    say(
        f"task {task_name}: N = {task.n_points} training points; audited output: the mean "
        f"validation margin; eps = {epsilon:g}, delta = {DELTA}"
    )
    honest = compute_attribution(task, case.method)
    say(case.about)
    # One plan for both Provers (the Verifier does not know which one cheats). The hint
    # only forecasts: the Verifier fixes the sizes after each commitment from its own
    # pilot (docs/protocol.md section 6.14).
    hint = residual_hint(task, honest)[mean]
    plan = plan_run(task_info(task), epsilon, DELTA, outputs=(mean,), hint=hint)
    if not quiet:
        say(plan.describe())
    executor = ProcessExecutor(max_workers=2)
    servers = []
    results: dict[str, Any] = {}
    try:
        for name, strategy_text in (("honest", "honest"), ("cheating", "scale:0.5")):
            # a demo starts afresh (new keys each time): its scratch stores are not resumed
            for scratch in (out / f"{name}-store", out / f"{name}-verifier"):
                shutil.rmtree(scratch, ignore_errors=True)
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
                task_name,
                {"prover": {"target": target, "red_team": strategy.name}},
            )
            check = check_report(path)
            o = result.outcome
            stats = o.certificate["outputs"][0] if o.certificate["outputs"] else {}
            say(
                f"{name}: {o.verdict}{' (' + o.reason + ')' if o.reason else ''}"
                + (
                    f"  err estimate {stats['statistic']:.4g}, upper bound "
                    f"{stats['upper_bound']:.4g} vs eps {epsilon:g}"
                    if "statistic" in stats
                    else ""
                )
                + "\n"
                + _costs(o.certificate, task.n_points, epsilon, hint)
                + f"\n  report {path} (offline check: {'OK' if check.ok else check.problems})"
            )
            results[name] = {
                "verdict": o.verdict,
                "reason": o.reason,
                "report": str(path),
                "sizes": o.certificate["sizes"],
            }
    finally:
        for running in servers:
            running.stop(grace=1.0)
        executor.close()
    return results

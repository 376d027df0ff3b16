"""Verifier-side subcommands of ``vattr``: ``simulate`` (and, later, ``audit``/``check``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.errors import UsageError
from attribution.protocol.params import ESTIMATORS, PRESETS
from vattr.cli_args import add_task_args

FloatArray = npt.NDArray[np.float64]


def _add_band_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--band",
        choices=["task", "committed"],
        default=None,
        help="audited target: f clipped to the committed attribution +- R with R from a "
        "secret pilot of the Verifier's own trainings (committed, the default for the "
        "residual estimator: far fewer spot checks, docs/protocol.md 6.13), or f clipped "
        "to [-b, b] (task, the default otherwise)",
    )
    p.add_argument(
        "--planning",
        choices=["fixed", "pilot"],
        default=None,
        help="when the sizes are fixed: after the attribution commitment, from the "
        "residual on the Verifier's pilot (pilot, the default for the committed band "
        "with the practical preset and no --rho; --hint then only forecasts), or at "
        "open from --hint (fixed), docs/protocol.md 6.14",
    )


def register(sub: Any) -> None:
    p = sub.add_parser("simulate", help="in-process protocol runs against a (dis)honest Prover")
    add_task_args(p)
    p.add_argument(
        "--strategy",
        default="honest",
        help="honest, scale:C, boost:BETA, zero:FRACTION, noise:SIGMA, "
        "corrupt:FRACTION, corrupt-targeted:FRACTION, inflate-residual, plan-aware, swap, "
        "bad-length, non-finite",
    )
    p.add_argument("--runs", type=int, default=20)
    p.add_argument(
        "--epsilon",
        type=float,
        required=True,
        help="accuracy in squared output units (eps / b^2 is scale-free)",
    )
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--preset", choices=PRESETS, default="practical")
    p.add_argument("--estimator", choices=ESTIMATORS, default="residual")
    p.add_argument("--baseline", choices=["naive", "noninteractive"], default=None)
    p.add_argument(
        "--mse-source",
        choices=["local", "delegated"],
        default="local",
        help="paper estimator: MSE from the Verifier's own trainings (local) or "
        "from the Prover's spot-checked singletons of E (delegated)",
    )
    _add_band_argument(p)
    p.add_argument("--rho", type=float, default=None, help="noise level (default: planned)")
    p.add_argument(
        "--hint",
        type=float,
        default=None,
        help="planning hint: E[r^2] of an honest residual (residual estimator) or "
        "E[f^2] (paper); affects sizes only, never soundness. Default: the "
        "exact B_>=2 for the synthetic oracle, else 0.1 b^2 / b^2",
    )
    p.add_argument(
        "--outputs",
        default=None,
        help="comma-separated output indices to verify, or 'mean' (default: all "
        "outputs of the synthetic task, the mean output of the others)",
    )
    p.add_argument(
        "--honest",
        default=None,
        help="the honest attribution: any vattr attribute method as NAME[:R] (e.g. exact, "
        "datamodel:4000, if-exact) or a .npz/.npy file of shape (T, 1 + N)",
    )
    p.add_argument("--n-level", type=int, default=None, help="explicit: pairs per level")
    p.add_argument("--k", type=int, default=None, help="explicit: spot checks")
    p.add_argument("--m", type=int, default=None, help="explicit: local MSE samples")
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--plan-only", action="store_true", help="print the planned sizes and costs, train nothing"
    )
    p.add_argument(
        "--max-trainings",
        type=int,
        default=20_000_000,
        help="refuse plans with more trainings per run than this (pilot planning: the cap "
        "on the sizes the pilot fixes)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("audit", help="audit a remote Prover over gRPC and write a signed report")
    p.add_argument("--prover", required=True, metavar="HOST:PORT")
    add_task_args(p)
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--preset", choices=PRESETS, default="practical")
    p.add_argument("--estimator", choices=ESTIMATORS, default="residual")
    p.add_argument(
        "--mse-source",
        choices=["local"],
        default="local",
        help="where the paper estimator's MSE samples come from (local only)",
    )
    _add_band_argument(p)
    p.add_argument("--rho", type=float, default=None)
    p.add_argument(
        "--hint",
        type=float,
        default=None,
        help="planning hint (default: the Prover's own residual estimate)",
    )
    p.add_argument("--outputs", default=None, help="output indices, or 'mean' (default)")
    p.add_argument("--key", type=Path, default=None, help="Verifier Ed25519 key (PEM, 0600)")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of the Prover's server")
    p.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, help="client private key (mutual TLS)")
    p.add_argument("--tls-server-name", default=None, help="expected server name (SAN)")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token")
    p.add_argument("--executor", choices=["serial", "local", "ray"], default="local")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="the audit's saved state (0600) and local training stores; running the same "
        "command on the same work dir resumes an interrupted audit (default: a new "
        "temporary directory)",
    )
    p.add_argument(
        "--max-trainings",
        type=int,
        default=2_000_000,
        help="refuse (exit 2, before opening a session) plans with more trainings than "
        "this, Prover's and Verifier's together (default 2,000,000); with pilot planning, "
        "the cap on the sizes the pilot fixes (stated in the opened parameters)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="deadline per call (s); a vector stream gets this plus its size at 1 MiB/s, "
        "and the Prover's training must progress within 5 of these",
    )
    p.add_argument(
        "--job-timeout",
        type=float,
        default=24 * 3600.0,
        help="deadline of the Prover's whole training of E, in seconds (default 86400)",
    )
    p.add_argument(
        "--reconnect",
        type=float,
        default=300.0,
        help="once the session is open, wait this long (s) for an unavailable Prover, "
        "e.g. one restarting on its store, before giving up",
    )
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("check", help="verify a signed audit report offline")
    p.add_argument("report", type=Path)
    p.add_argument(
        "--replay",
        action="store_true",
        help="re-derive E, C, M from the revealed seeds and recompute the decision",
    )
    p.add_argument(
        "--retrain",
        type=int,
        default=0,
        metavar="K",
        help="retrain K spot checks locally and compare",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("keygen", help="create an Ed25519 key file (PEM, mode 0600)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=cmd_keygen)

    p = sub.add_parser(
        "demo", help="the README's main job: audit an honest and a cheating Prover on loopback"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="directory for the reports")
    p.add_argument(
        "--task",
        default="breast_cancer-logreg",
        help="breast_cancer-logreg (default, about a minute) or randhie-logreg (N = 19,988, "
        "where verifying is far cheaper than computing an attribution; several minutes)",
    )
    p.set_defaults(handler=cmd_demo)


def _outputs(text: str | None, task: Any) -> tuple[int, ...]:
    if text is None:
        return (task.n_outputs - 1,) if task.n_outputs > 1 else (0,)
    if text == "mean":
        if task.output_names[-1] != "mean":
            raise UsageError("this task has no mean output")
        return (task.n_outputs - 1,)
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise UsageError(f"--outputs: {text!r} is not a list of integers") from exc


def _cap_budget(plan: Any, max_trainings: int) -> Any:
    """A pilot-planned run's budget (docs/protocol.md section 6.14) never exceeds
    --max-trainings."""
    import dataclasses

    p = plan.params
    if p.planning != "pilot" or 0 < p.budget <= max_trainings:
        return plan
    return dataclasses.replace(plan, params=dataclasses.replace(p, budget=max_trainings))


def cmd_simulate(args: argparse.Namespace) -> int:
    from attribution.estimators.sources import claimed_mse, honest_attribution
    from attribution.progress import Progress
    from attribution.protocol.common import task_info
    from attribution.protocol.planner import plan_run
    from attribution.tasks import load_task, resolve_spec
    from attribution.tasks.runtime import OracleTask
    from vattr.redteam.strategies import parse_strategy
    from vattr.simulate import simulate

    if args.runs < 1:
        raise UsageError("--runs must be at least 1")
    task = load_task(resolve_spec(args.task, args.overrides))
    strategy = parse_strategy(args.strategy, args.seed)
    outputs = _outputs(args.outputs, task)
    hint = args.hint
    if hint is None and isinstance(task, OracleTask):
        hint = task.oracle.exact().B_ge2
    explicit = None
    preset = args.preset
    if args.n_level is not None:
        preset = "explicit"
        explicit = {"n": args.n_level}
        if args.k is not None:
            explicit["k"] = args.k
        if args.m is not None:
            explicit["m"] = args.m
    mode = {"naive": "naive", "noninteractive": "noninteractive"}.get(
        args.baseline or "", "interactive"
    )
    plan = plan_run(
        task_info(task),
        args.epsilon,
        args.delta,
        estimator=args.estimator,
        preset=preset,
        mode=mode,
        rho=args.rho,
        eta=args.eta,
        outputs=outputs,
        hint=hint,
        explicit=explicit,
        mse_source=args.mse_source,
        band=args.band,
        planning=args.planning,
    )
    plan = _cap_budget(plan, args.max_trainings)
    print(plan.describe(), file=sys.stderr)
    if args.plan_only:
        print(json.dumps(plan.summary()))
        return 0
    total = plan.params.n_challenges + plan.verifier_trainings
    # a pilot-planned run is capped at --max-trainings by its pilot (the hint only forecasts)
    if plan.params.planning == "fixed" and total > args.max_trainings:
        raise UsageError(
            f"the plan needs {total} trainings per run (> --max-trainings "
            f"{args.max_trainings}); use --plan-only to inspect it"
        )
    honest = honest_attribution(task, args.honest)
    claimed = None
    if mode == "naive":
        claimed = claimed_mse(task, strategy.attribution(honest, task.spec.p), outputs)
    bar = Progress(args.runs, f"simulate {args.strategy}", not (args.quiet or args.json))
    summary = simulate(task, plan, strategy, honest, args.runs, args.seed, claimed, bar)
    result = {
        "task": task.spec.name,
        "strategy": args.strategy,
        "epsilon": args.epsilon,
        "delta": args.delta,
        "estimator": args.estimator,
        "mode": mode,
        **summary.to_dict(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        lo, hi = summary.accept_ci
        print(
            f"{task.spec.name} / {args.strategy}: accepted {summary.accepted}/{summary.runs} "
            f"= {summary.accept_rate:.3f} (95% CI [{lo:.3f}, {hi:.3f}]); verdicts "
            f"{summary.verdicts}; Prover trainings {summary.prover_trainings}, Verifier "
            f"trainings {summary.verifier_trainings}"
            + (
                f"; true err/eps {summary.true_err_over_eps:.3f}"
                if summary.true_err_over_eps is not None
                else ""
            )
        )
    return 0


EXIT = {"ACCEPT": 0, "REJECT": 1, "INCONCLUSIVE": 4}


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip().splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise UsageError(f"cannot read a token from {path}") from exc
    return token


def cmd_audit(args: argparse.Namespace) -> int:
    import tempfile

    from attribution.errors import ProtocolError
    from attribution.keyfiles import load_or_create_key, load_private_key
    from attribution.protocol.common import task_info
    from attribution.protocol.planner import plan_run
    from attribution.tasks import load_task, resolve_spec
    from verifier.audit import AuditResult, describe_prover, run_audit
    from verifier.audit_state import AuditState
    from verifier.client import ClientTLS, ProverClient, TransportError
    from verifier.reports.report import write_audit_report

    task = load_task(resolve_spec(args.task, args.overrides))
    outputs = _outputs(args.outputs, task)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="vattr-verifier-"))
    work.mkdir(parents=True, exist_ok=True)
    # the default key lives in the work dir, so that a resumed audit signs with it
    key = load_private_key(args.key) if args.key else load_or_create_key(work / "verifier-key.pem")
    resuming = AuditState.find(work) is not None
    tls = None
    if args.tls_ca or args.tls_cert:
        if (args.tls_cert is None) != (args.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
        tls = ClientTLS(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    quiet = args.quiet or args.json

    def write(result: AuditResult) -> None:
        prover: dict[str, Any] = {"target": args.prover}
        if result.delivery_error:
            prover["verdict_delivery"] = f"refused by the Prover: {result.delivery_error}"
        write_audit_report(args.report, result, task.spec.name, {"prover": prover})

    try:
        with ProverClient(
            args.prover, tls=tls, token=_read_token(args.token_file), timeout=args.timeout
        ) as client:
            client.wait_ready(timeout=args.timeout)
            hint = args.hint
            if hint is None and not resuming:
                desc = describe_prover(client)
                served = next((t for t in desc.tasks if t.task.name == task.spec.name), None)
                if served is not None and len(served.residual_hint) == task.n_outputs:
                    # the Prover's number only proposes: non-finite or negative is ignored,
                    # the rest is clamped by the planner (HINT_RANGE)
                    offered = [float(served.residual_hint[o]) for o in outputs]
                    if all(math.isfinite(h) and h >= 0 for h in offered):
                        hint = max(offered)
                    elif not quiet:
                        print("ignoring the Prover's non-finite planning hint", file=sys.stderr)
            plan = (
                None
                if resuming
                else plan_run(
                    task_info(task),
                    args.epsilon,
                    args.delta,
                    estimator=args.estimator,
                    preset=args.preset,
                    rho=args.rho,
                    outputs=outputs,
                    hint=hint,
                    mse_source=args.mse_source,
                    band=args.band,
                    planning=args.planning,
                )
            )
            if plan is not None:
                plan = _cap_budget(plan, args.max_trainings)
            if plan is not None and plan.params.planning == "fixed":
                total = plan.params.n_challenges + plan.verifier_trainings
                if total > args.max_trainings:
                    raise UsageError(
                        f"the plan needs {total} trainings (Prover and Verifier; > "
                        f"--max-trainings {args.max_trainings}); no session was opened"
                    )
            if not quiet:
                if plan is not None:
                    print(plan.describe(), file=sys.stderr)
                print(f"work dir {work} (the same command resumes it)", file=sys.stderr)
            result = run_audit(
                client,
                task,
                plan,
                key,
                work,
                executor=args.executor,
                quiet=quiet,
                reconnect=args.reconnect,
                on_decided=write,  # the signed report exists before the Prover sees it
                job_timeout=args.job_timeout,
            )
    except (TransportError, ProtocolError) as exc:
        # the Prover unreachable, or a malformed or inconsistent message of its (exit 3;
        # the saved state allows a retry); our own misuse of the protocol is exit 5
        print(f"vattr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if result.delivery_error:  # the Prover refused the verdict: on record, verdict stands
        write(result)
    out = result.outcome
    summary = {
        "verdict": out.verdict,
        "reason": out.reason,
        "report": str(args.report),
        "session_id": out.certificate["session_id"],
        "outputs": out.certificate["outputs"],
        "sizes": out.certificate["sizes"],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{out.verdict}{' (' + out.reason + ')' if out.reason else ''}: report {args.report}")
    return EXIT[out.verdict]


def cmd_check(args: argparse.Namespace) -> int:
    from verifier.reports.report import check_report

    res = check_report(args.report, replay=args.replay, retrain=args.retrain)
    if args.json:
        print(json.dumps({"ok": res.ok, "problems": res.problems, "notes": res.notes}))
    else:
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
        for problem in res.problems:
            print(f"FAIL {problem}")
        print(
            "OK: signatures, roots, transcript and values check out"
            if res.ok
            else f"{len(res.problems)} problem(s)"
        )
    return 0 if res.ok else 1


def cmd_keygen(args: argparse.Namespace) -> int:
    from attribution.commitments import SigningKey
    from attribution.keyfiles import save_private_key

    key = SigningKey.generate()
    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out} exists (use --force to overwrite)")
    save_private_key(args.out, key, overwrite=args.force)
    print(
        json.dumps(
            {
                "key_file": str(args.out),
                "public_key": key.public_key_raw.hex(),
                "fingerprint": key.fingerprint,
            }
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from vattr.demo import run_demo

    out = args.out or Path(tempfile.mkdtemp(prefix="vattr-demo-"))
    result = run_demo(out, quiet=args.json, task_name=args.task)
    if args.json:
        print(json.dumps(result))
    ok = result["honest"]["verdict"] == "ACCEPT" and result["cheating"]["verdict"] == "REJECT"
    return 0 if ok else 1

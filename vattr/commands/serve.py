"""Prover-side subcommands of ``vattr``: ``serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from attribution.errors import UsageError
from attribution.keyfiles import load_or_create_key, load_private_key
from vattr.cli_args import add_task_args


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run a Prover gRPC server for one task")
    add_task_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--attributions", type=Path, help=".npy attribution matrix (T, 1 + N)")
    src.add_argument(
        "--method",
        default=None,
        help="exact | datamodel[:R] | empirical-influence[:R] (default: exact on "
        "the synthetic task, datamodel otherwise)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="directory for sessions and training stores; a restart on the same store "
        "resumes its open sessions (default: a new temporary directory)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="models per training batch")
    p.add_argument("--executor", choices=["serial", "local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument(
        "--key",
        type=Path,
        default=None,
        help="Prover Ed25519 key (PEM, 0600; default: STORE/prover-key.pem, created if "
        "missing, so that a restarted Prover can resume its sessions)",
    )
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--client-ca", type=Path, help="require client certificates from this CA")
    p.add_argument("--token-file", type=Path, help="accepted bearer tokens, one per line")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow plaintext on a non-loopback address (not recommended)",
    )
    p.add_argument("--reflection", action="store_true")
    p.add_argument("--max-sessions-per-client", type=int, default=16)
    p.add_argument(
        "--max-challenges",
        type=int,
        default=1_000_000,
        help="the most trainings (|E|) one session may ask for (RESOURCE_EXHAUSTED beyond)",
    )
    p.add_argument(
        "--strategy",
        default="honest",
        help="RED TEAM ONLY: serve a dishonest Prover (scale:C, corrupt:Q, ...)",
    )
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    # gRPC logs failed TLS handshakes (plaintext clients, refused client certificates) at
    # INFO; keep them visible to the operator unless the environment says otherwise. This
    # must happen before grpc is first imported.
    os.environ.setdefault("GRPC_VERBOSITY", "INFO")
    from attribution.execution import make_executor
    from attribution.tasks import load_task, resolve_spec
    from prover.auth import read_token_file
    from prover.server import (
        TLSConfig,
        install_signal_handlers,
        start_server,
        wait_for_termination,
    )
    from vattr.redteam.provers import red_team_prover

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = TLSConfig(args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
    if args.client_ca is not None and tls is None:
        raise UsageError("--client-ca needs --tls-cert/--tls-key")
    tokens = read_token_file(args.token_file) if args.token_file else None
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    task = load_task(resolve_spec(args.task, args.overrides))
    if args.strategy != "honest":
        logging.getLogger("vattr.prover").warning(
            "RED TEAM: serving a dishonest Prover (%s); never use this in production", args.strategy
        )
    store = args.store or Path(tempfile.mkdtemp(prefix="vattr-prover-"))
    store.mkdir(parents=True, exist_ok=True)
    cache = store / "served-attribution.npz" if args.store else None
    served, factory = red_team_prover(task, args.method, args.attributions, args.strategy, cache)
    # the default key lives in the store, so that a restart can resume its sessions
    key = load_private_key(args.key) if args.key else load_or_create_key(store / "prover-key.pem")
    executor = make_executor(args.executor, workers=args.workers)
    stop = install_signal_handlers()
    try:
        running = start_server(
            served,
            key,
            executor,
            store,
            host=args.host,
            port=args.port,
            tls=tls,
            tokens=tokens,
            insecure=args.insecure,
            reflection=args.reflection,
            max_sessions_per_client=args.max_sessions_per_client,
            batch_size=args.batch_size,
            max_challenges=args.max_challenges,
            servicer_factory=factory,
        )
        print(
            f"serving {task.spec.name} on {args.host}:{running.port} "
            f"(prover key {key.fingerprint[:16]}...)",
            file=sys.stderr,
            flush=True,
        )
        wait_for_termination(running, stop)
    finally:
        executor.close()
    return 0

"""Arguments shared by the ``vattr`` subcommands of every package."""

from __future__ import annotations

import argparse


def add_task_args(
    p: argparse.ArgumentParser, *, with_p: bool = False, with_device: bool = False
) -> None:
    """``--task`` (built-in name or TOML path), repeatable ``--set KEY=VALUE`` overrides,
    and optionally ``--p`` and ``--device``."""
    p.add_argument("--task", required=True, help="built-in task name or path to a TOML spec")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field (dotted key, TOML value); repeatable",
    )
    if with_p:
        p.add_argument("--p", type=float, default=None, help="sampling probability (0, 1)")
    if with_device:
        p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")

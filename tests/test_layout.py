"""The floor plan, checked: layer contracts (import-linter, configured in pyproject.toml)
and dynamic imports only where task plug-ins need them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("attribution", "prover", "verifier", "vattr")


def test_import_contracts_hold() -> None:
    """The layers (vattr > prover | verifier > attribution: the roles never import each
    other, the core imports neither) and the protocol engine's I/O ban."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_importlib_only_for_task_plugins() -> None:
    users = sorted(
        str(path.relative_to(ROOT))
        for pkg in PACKAGES
        for path in (ROOT / pkg).rglob("*.py")
        if "_pb2" not in path.name and re.search(r"^\s*import importlib", path.read_text(), re.M)
    )
    assert users == ["attribution/tasks/runtime.py"]


def test_no_test_imports_a_command_module() -> None:
    """Command modules only parse arguments; tests call library functions, or the CLI's
    one entry point (``vattr.cli.main``) where the command line itself is under test."""
    hits = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if re.search(r"^\s*(from|import) vattr\.commands\b", p.read_text(), re.M)
    ]
    assert hits == []

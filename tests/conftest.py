"""Shared fixtures. The tests mirror the packages (tests/attribution/..., tests/prover/,
tests/verifier/, tests/vattr/); helpers shared across them live in tests/helpers.py and
tests/tls_helpers.py."""

from __future__ import annotations

import pytest

from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask


@pytest.fixture(scope="session")
def synthetic_task() -> OracleTask:
    """The built-in synthetic oracle task (N = 1000, exact spectrum), loaded once."""
    task = load_task(resolve_spec("synthetic"))
    assert isinstance(task, OracleTask)
    return task

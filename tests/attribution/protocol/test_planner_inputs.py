"""A planning hint is a number the Prover may choose: it can change sizes, never make a
plan the estimator cannot run, and a non-finite one is refused in one line."""

from __future__ import annotations

import math

import pytest

from attribution.errors import UsageError
from attribution.protocol.common import TaskInfo
from attribution.protocol.planner import HINT_RANGE, MIN_PAIRS_PER_LEVEL, plan_run

BREAST = TaskInfo(n_points=455, n_outputs=115, bound=10.0, tau=1e-9, p=0.5)


@pytest.mark.parametrize("hint", [0.0, 1e-12, 1e-4, 1.0, 1e300])
@pytest.mark.parametrize("epsilon", [0.03, 2.0, 50.0])
def test_every_finite_hint_gives_a_runnable_plan(hint: float, epsilon: float) -> None:
    plan = plan_run(BREAST, epsilon, 0.05, outputs=(114,), hint=hint)
    assert min(plan.params.n_pairs) >= MIN_PAIRS_PER_LEVEL
    assert plan.params.k <= plan.params.n_challenges


def test_hints_are_clamped_to_the_plausible_range() -> None:
    b2 = BREAST.bound**2
    low = plan_run(BREAST, 0.03, 0.05, outputs=(114,), hint=0.0)
    floor = plan_run(BREAST, 0.03, 0.05, outputs=(114,), hint=HINT_RANGE[0] * b2)
    assert low.params == floor.params
    high = plan_run(BREAST, 0.03, 0.05, outputs=(114,), hint=1e300)
    ceiling = plan_run(BREAST, 0.03, 0.05, outputs=(114,), hint=HINT_RANGE[1] * b2)
    assert high.params == ceiling.params


@pytest.mark.parametrize("hint", [math.nan, math.inf, -math.inf, -1.0])
def test_non_finite_or_negative_hints_are_refused(hint: float) -> None:
    with pytest.raises(UsageError, match="hint"):
        plan_run(BREAST, 0.03, 0.05, outputs=(114,), hint=hint)


@pytest.mark.parametrize(("epsilon", "delta"), [(math.nan, 0.05), (0.0, 0.05), (0.03, 1.0)])
def test_bad_accuracy_is_refused(epsilon: float, delta: float) -> None:
    with pytest.raises(UsageError):
        plan_run(BREAST, epsilon, delta, outputs=(114,))

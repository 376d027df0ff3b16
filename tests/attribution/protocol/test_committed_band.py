"""The committed band (docs/protocol.md section 6.13): radius from the Verifier's pilot,
clip statistics, encoding, and its effect on sizes and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attribution.commitments import SigningKey
from attribution.errors import UsageError
from attribution.estimators.sources import honest_attribution
from attribution.protocol.challenges import ChallengeLayout
from attribution.protocol.common import Phase, task_info
from attribution.protocol.decision import (
    INCONCLUSIVE,
    band_radius,
    clip_statistics,
    committed_band,
    decide_output,
)
from attribution.protocol.params import ProtocolParams
from attribution.protocol.planner import plan_run
from attribution.protocol.prover import ProverSession
from attribution.protocol.verifier import VerifierSecrets, VerifierSession
from attribution.stats import clopper_pearson
from attribution.tasks import load_task, resolve_spec
from vattr.redteam.strategies import parse_strategy
from vattr.simulate import local_trainer, run_once


def test_band_radius_golden_values() -> None:
    r = np.array([0.1, -0.2, 0.3])
    rms = math.sqrt((0.01 + 0.04 + 0.09) / 3)
    assert band_radius(r, 4.5, 0.0, 10.0) == pytest.approx(4.5 * rms)
    # tau is added on top
    r2 = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    assert band_radius(r2, 1.0, 0.01, 10.0) == pytest.approx(math.sqrt(0.2) + 0.01)
    assert band_radius(np.zeros(4), 4.5, 0.0, 10.0) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="two finite"):
        band_radius(np.array([np.nan, 1.0]), 4.5, 0.0, 1.0)


def test_committed_band_is_clipped_to_the_output_bound() -> None:
    lo, hi = committed_band(np.array([0.0, 0.9, 3.0]), 0.5, 1.0)
    assert lo.tolist() == [-0.5, 0.4, 1.0]
    assert hi.tolist() == [0.5, 1.0, 1.0]


def test_clip_statistics_golden_values() -> None:
    f = np.array([0.0, 0.6, -2.0, 0.1])
    lo, hi = np.full(4, -0.5), np.full(4, 0.5)
    c = clip_statistics(f, lo, hi, 0.05)
    assert (c["checked"], c["clipped"]) == (4, 2)
    assert c["gap_sq_mean"] == pytest.approx((0.1**2 + 1.5**2) / 4)
    assert c["rate_upper"] == pytest.approx(clopper_pearson(2, 4, 0.1)[1])


def test_band_fields_are_encoded_only_when_used() -> None:
    task = ProtocolParams(epsilon=0.1, delta=0.05)
    assert "band" not in task.to_dict()
    assert "radius_scale" not in task.to_dict()
    banded = ProtocolParams(epsilon=0.1, delta=0.05, m=100, band="committed")
    d = banded.to_dict()
    assert (d["band"], d["radius_scale"], d["clip_level"]) == ("committed", 4.5, 0.01)
    assert ProtocolParams.from_dict(d) == banded
    assert banded.digest() != ProtocolParams.from_dict({**d, "radius_scale": 5.0}).digest()
    with pytest.raises(UsageError, match="pilot"):
        ProtocolParams(epsilon=0.1, delta=0.05, band="committed")
    with pytest.raises(UsageError, match="only to band"):
        ProtocolParams(epsilon=0.1, delta=0.05, radius_scale=3.0)
    with pytest.raises(UsageError, match="residual"):
        ProtocolParams(epsilon=0.1, delta=0.05, m=100, estimator="paper", band="committed")


def test_a_band_that_clips_too_often_cannot_accept() -> None:
    n = 60
    layout = ChallengeLayout((n, n, n), 0)
    rng = np.random.default_rng(0)
    g = rng.normal(size=layout.n_rows) * 0.1
    f = g + rng.normal(size=layout.n_rows) * 0.01
    params = ProtocolParams(
        epsilon=0.5,
        delta=0.05,
        rho=0.3,
        n_pairs=(n, n, n),
        k=0,
        m=100,
        outputs=(0,),
        band="committed",
    )
    band = committed_band(g, 0.1, 1.0)
    ok = decide_output(params, layout, 0, f, g, 1.0, 0.0, None, band, 0.001)
    assert ok.verdict == "ACCEPT"
    clipped = decide_output(params, layout, 0, f, g, 1.0, 0.0, None, band, 0.2)
    assert clipped.verdict == INCONCLUSIVE
    assert clipped.details["clipped_too_often"]
    assert "radius_scale" in clipped.details["budget_to_decide"]["advice"]


@pytest.fixture(scope="module")
def synthetic():  # type: ignore[no-untyped-def]
    task = load_task(resolve_spec("synthetic"))
    return task, honest_attribution(task, "exact"), task.oracle.exact().B_ge2


def test_the_breast_cancer_plan_with_the_band() -> None:
    """breast_cancer-logreg, mean margin, eps 0.03 (hint 0.0173, the measured E[r^2] of a
    datamodel residual): k <= 0.25 |E| with the band, about all of E without it."""
    info = task_info(load_task(resolve_spec("breast_cancer-logreg")))
    outs = (info.n_outputs - 1,)
    banded = plan_run(info, 0.03, 0.05, hint=0.0173, outputs=outs, band="committed")
    plain = plan_run(info, 0.03, 0.05, hint=0.0173, outputs=outs, band="task")
    assert banded.params.k <= 0.25 * banded.params.n_challenges
    assert plain.params.k >= 0.9 * plain.params.n_challenges
    with pytest.raises(UsageError, match="residual"):
        plan_run(info, 0.03, 0.05, estimator="paper", outputs=outs, band="committed")


def test_planner_uses_the_band_and_makes_the_verifier_light(synthetic) -> None:  # type: ignore[no-untyped-def]
    """At eps / b^2 = 0.05 the spot checks are a fifth of E or less (0.47 with the task band)."""
    task, _, hint = synthetic
    info = task_info(task)
    banded = plan_run(info, 0.05 * task.bound**2, 0.05, hint=hint, band="committed")
    plain = plan_run(info, 0.05 * task.bound**2, 0.05, hint=hint, band="task")
    assert banded.params.band == "committed"
    assert banded.params.m == 100
    assert banded.params.k <= 0.2 * banded.params.n_challenges
    assert plain.params.k > 2 * banded.params.k
    assert banded.verifier_trainings == banded.params.k + 100


def test_certificate_states_the_target(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint, band="committed")
    ok = run_once(task, plan, parse_strategy("honest"), honest, 0, 0).outcome
    assert ok.verdict == "ACCEPT"
    target = ok.certificate["outputs"][0]["target"]
    assert target["band"] == "committed"
    assert target["pilot_size"] == 100
    rms = target["pilot_rms_residual"]
    assert target["radius"] == pytest.approx(plan.params.radius_scale * rms + task.tau)
    assert target["clip"]["rate_upper"] <= plan.params.clip_level
    # the pilot sized the run (docs/protocol.md section 6.14): k is the certified one
    assert target["clip"]["checked"] == ProtocolParams.from_dict(ok.certificate["params"]).k
    assert "f_h" in ok.certificate["guarantee"]


def test_the_radius_does_not_depend_on_the_values_of_e(synthetic) -> None:  # type: ignore[no-untyped-def]
    """The same session evaluated with the honest f-values of E and with every value moved
    to +b: the band's radius is the same (it depends on the pilot and g only)."""
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint, band="committed", planning="fixed")
    info = task_info(task)
    verifier = VerifierSession(
        info, task.digest, plan.params, SigningKey.generate(), VerifierSecrets.derive(b"v" * 32)
    )
    prover = ProverSession(info, task.digest, SigningKey.generate(), nonce=b"n" * 32)
    verifier.on_opened(prover.on_open(verifier.open().to_bytes()).to_bytes())
    verifier.on_attribution_commitment(prover.commit_attribution(honest).to_bytes())
    verifier.receive_attribution(honest.ravel())
    trainer = local_trainer(task)
    rows = verifier.spot_check_rows()
    m_plan = verifier.mse_plan()
    assert m_plan is not None
    pilot = trainer(m_plan, range(m_plan.n_rows), "mse")
    f_e = trainer(verifier.challenge_plan(), range(verifier.layout.n_rows), "e")
    radii = []
    for values in (f_e, np.full_like(f_e, task.bound)):
        verifier.evaluations = values
        verifier.phase = Phase.EVALUATIONS
        # the spot checks agree with what was committed, so the statistics are computed
        stats = verifier.evaluate(values[rows], pilot).stats
        radii.append(stats[0]["target"]["radius"])
    assert radii[0] == radii[1]

"""Sizes from the Verifier's pilot, after the commitment (docs/protocol.md section 6.14):
what is sent at open, what the reveal carries, what the Prover accepts, the cap, and that
no hint the Prover gives can move the sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attribution.commitments import SigningKey
from attribution.errors import RemoteProtocolError, UsageError
from attribution.estimators.sources import honest_attribution
from attribution.protocol.common import Phase, task_info
from attribution.protocol.driver import decide
from attribution.protocol.messages import ChallengeReveal, decode
from attribution.protocol.params import PILOT_SIZED, ProtocolParams
from attribution.protocol.planner import MIN_PAIRS_PER_LEVEL, plan_run, replan_from_pilot
from attribution.protocol.prover import ChallengeTooLarge, ProverSession
from attribution.protocol.verifier import VerifierSecrets, VerifierSession
from attribution.tasks import load_task, resolve_spec
from vattr.redteam.strategies import parse_strategy
from vattr.simulate import InProcessProver, local_trainer, run_once


@pytest.fixture(scope="module")
def synthetic():  # type: ignore[no-untyped-def]
    task = load_task(resolve_spec("synthetic"))
    return task, honest_attribution(task, "exact"), task.oracle.exact().B_ge2


def _sessions(task, params, seed: bytes = b"v"):  # type: ignore[no-untyped-def]
    info = task_info(task)
    # fixed keys and secrets: every session of these tests is reproducible (the keys enter
    # the session id, hence E, C and M)
    verifier = VerifierSession(
        info,
        task.digest,
        params,
        SigningKey.from_seed(b"k" * 32),
        VerifierSecrets.derive(seed * 32),
    )
    prover = ProverSession(info, task.digest, SigningKey.from_seed(b"p" * 32), nonce=b"n" * 32)
    return verifier, prover


def test_the_default_plan_is_banded_and_pilot_sized(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, _, hint = synthetic
    info = task_info(task)
    plan = plan_run(info, 0.2, 0.05, hint=hint)
    assert (plan.params.band, plan.params.planning) == ("committed", "pilot")
    # a given rho, another mode or preset, or another estimator keep sizes fixed at open
    assert plan_run(info, 0.2, 0.05, hint=hint, rho=0.3).params.planning == "fixed"
    assert plan_run(info, 0.2, 0.05, hint=hint, mode="noninteractive").params.planning == "fixed"
    paper = plan_run(info, 0.2, 0.05, hint=hint, estimator="paper").params
    assert (paper.band, paper.planning) == ("task", "fixed")
    with pytest.raises(UsageError, match="band 'committed'"):
        plan_run(info, 0.2, 0.05, hint=hint, band="task", planning="pilot")


def test_opening_parameters_have_no_sizes_and_encode_planning() -> None:
    p = ProtocolParams(
        epsilon=0.1,
        delta=0.05,
        rho=0.3,
        n_pairs=(90, 90, 90),
        k=40,
        m=100,
        band="committed",
        planning="pilot",
        budget=10_000,
    )
    opened = p.opening()
    assert (opened.rho, opened.n_pairs, opened.n_single, opened.k) == (0.25, (0, 0, 0), 0, 0)
    assert (opened.m, opened.budget) == (100, 10_000)
    d = opened.to_dict()
    assert (d["planning"], d["budget"]) == ("pilot", 10_000)
    assert opened.sized(p.size_fields()) == p
    # fixed planning: the fields are not encoded (every earlier session's bytes hold)
    fixed = dataclasses.replace(p, planning="fixed", budget=0)
    assert "planning" not in fixed.to_dict()
    assert "budget" not in fixed.to_dict()
    assert fixed.opening() is fixed
    with pytest.raises(UsageError, match="exactly"):
        opened.sized({**p.size_fields(), "m": 5})
    with pytest.raises(UsageError, match="exactly"):
        opened.sized({"rho": 0.3})
    with pytest.raises(UsageError, match="opening"):
        p.sized(p.size_fields())
    with pytest.raises(UsageError):
        opened.sized({**p.size_fields(), "k": -1})
    with pytest.raises(UsageError, match="budget"):
        ProtocolParams(epsilon=0.1, delta=0.05, budget=5)
    with pytest.raises(UsageError, match="band 'committed'"):
        ProtocolParams(epsilon=0.1, delta=0.05, m=100, planning="pilot")


def _open_and_commit(task, honest, params):  # type: ignore[no-untyped-def]
    verifier, prover = _sessions(task, params)
    verifier.on_opened(prover.on_open(verifier.open().to_bytes()).to_bytes())
    verifier.on_attribution_commitment(prover.commit_attribution(honest).to_bytes())
    return verifier, prover


def test_the_pilot_fixes_the_sizes_that_the_reveal_carries(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint)
    verifier, prover = _open_and_commit(task, honest, plan.params)
    assert verifier.params.n_challenges == 0
    assert prover.params.n_challenges == 0
    with pytest.raises(Exception, match="pilot"):
        verifier.reveal_challenge()  # not before the pilot has fixed the sizes
    verifier.receive_attribution(honest.ravel())
    m_plan = verifier.mse_plan()
    assert m_plan is not None
    assert m_plan.n_rows == 100
    pilot = local_trainer(task)(m_plan, range(m_plan.n_rows), "mse")
    verifier.size_from_pilot(pilot)
    reveal = verifier.reveal_challenge()
    assert reveal.plan == verifier.params.size_fields()
    assert set(reveal.plan) == set(PILOT_SIZED)
    e_plan = prover.on_challenge(reveal.to_bytes())
    assert prover.params == verifier.params
    assert e_plan.n_rows == verifier.layout.n_rows == verifier.params.n_challenges > 0
    # the sizes are the planner's at the pilot's mean squared residual
    residual_sq = verifier.planning["pilot_mean_sq_residual"]  # type: ignore[index]
    expected, planned = replan_from_pilot(task_info(task), verifier.opened_params, max(residual_sq))
    assert expected == verifier.params
    assert planned == max(residual_sq)
    # both derive the same E from the sized parameters
    assert np.array_equal(verifier.challenge_plan().masks([0, 5]), e_plan.masks([0, 5]))


def _reveal_with(verifier: VerifierSession, plan: dict | None) -> bytes:  # type: ignore[type-arg]
    s = verifier.secrets
    return ChallengeReveal(seed=s.seed_e, salt=s.salt_e, plan=plan).to_bytes()


def test_the_prover_checks_the_revealed_sizes(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint)
    sizes = plan.params.size_fields()
    for bad, match in (
        (None, "must carry"),
        ({**sizes, "m": 7}, "malformed"),
        ({**sizes, "rho": 0.9}, "malformed"),
        ({**sizes, "n_pairs": [1, 2]}, "malformed"),
        ({**sizes, "k": "10"}, "malformed"),
    ):
        verifier, prover = _open_and_commit(task, honest, plan.params)
        with pytest.raises(RemoteProtocolError, match=match):
            prover.on_challenge(_reveal_with(verifier, bad))
        assert prover.phase == Phase.ATTRIBUTION
    verifier, prover = _open_and_commit(task, honest, plan.params)
    huge = {**sizes, "n_pairs": [10**9] * 3}
    with pytest.raises(ChallengeTooLarge, match="limit"):
        prover.on_challenge(_reveal_with(verifier, huge), max_rows=1_000_000)
    assert prover.phase == Phase.ATTRIBUTION
    assert prover.params == plan.params.opening()
    prover.on_challenge(_reveal_with(verifier, sizes), max_rows=1_000_000)  # then a valid one
    # a fixed-size session's reveal carries no sizes
    fixed = plan_run(task_info(task), 0.2, 0.05, hint=hint, planning="fixed")
    verifier, prover = _open_and_commit(task, honest, fixed.params)
    with pytest.raises(RemoteProtocolError, match="carries none"):
        prover.on_challenge(_reveal_with(verifier, sizes))
    # and a pilot-planned session opens with its sizes at zero
    verifier, _ = _sessions(task, plan.params)
    opened = verifier.open()
    forged = dataclasses.replace(opened, params=plan.params.to_dict()).to_bytes()
    with pytest.raises(RemoteProtocolError, match="sizes at zero"):
        ProverSession(task_info(task), task.digest, SigningKey.generate()).on_open(forged)


def test_a_reveal_plan_field_must_be_canonical() -> None:
    body = ChallengeReveal(seed=b"s" * 32, salt=b"t" * 32).to_bytes()
    assert b"plan" not in body
    assert decode(body, ChallengeReveal).plan is None
    with_null = body[:-1] + b',"plan":null}'
    with pytest.raises(RemoteProtocolError):
        decode(with_null, ChallengeReveal)
    sized = ChallengeReveal(seed=b"s" * 32, salt=b"t" * 32, plan={"k": 3}).to_bytes()
    assert decode(sized, ChallengeReveal).plan == {"k": 3}
    listed = sized.replace(b'{"k":3}', b"[3]")
    with pytest.raises(RemoteProtocolError, match="object"):
        decode(listed, ChallengeReveal)


def test_the_budget_caps_the_pilots_plan(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, _honest, hint = synthetic
    info = task_info(task)
    free = dataclasses.replace(plan_run(info, 0.05, 0.05, hint=hint).params.opening(), budget=0)
    sized, planned = replan_from_pilot(info, free, hint)
    assert planned == hint
    budget = sized.total_trainings // 3
    tight = dataclasses.replace(free, budget=budget)
    small, planned = replan_from_pilot(info, tight, hint)
    assert planned < hint
    assert budget * 0.9 <= small.total_trainings <= budget  # the largest plan that fits
    # rho, the pairs and k are one consistent plan: that of the hint it was planned at
    again, _ = replan_from_pilot(info, dataclasses.replace(tight, budget=0), planned)
    assert again.size_fields() == small.size_fields()
    assert small.n_pairs[0] >= MIN_PAIRS_PER_LEVEL
    assert 1 <= small.k <= small.n_challenges
    # a non-finite residual (a broken attribution) is planned within the budget too
    broken, planned = replan_from_pilot(info, tight, float("nan"))
    assert broken.total_trainings <= budget
    assert planned < 4.0
    # a budget below the smallest plan gives the smallest plan
    tiny, _ = replan_from_pilot(info, dataclasses.replace(free, budget=10), hint)
    assert tiny.n_pairs[0] == MIN_PAIRS_PER_LEVEL


def test_no_hint_moves_the_sizes(synthetic) -> None:  # type: ignore[no-untyped-def]
    """Red team: the Prover's hint only forecasts. With a given budget, plans from an
    honest, a tiny and a huge hint open identically, and the same seeds give the same
    sized session and signed verdict. With the default budget (2 x the forecast) a hint
    that is a lie only lowers or raises the cap: a too-small cap makes the run less
    likely to decide, never an honest Prover rejected."""
    task, honest, hint = synthetic
    info = task_info(task)
    outcomes = []
    for h in (hint, 1e-12, 4.0 * task.bound**2):
        plan = plan_run(info, 0.2, 0.05, hint=h, budget=20_000)
        reference = plan_run(info, 0.2, 0.05, hint=hint, budget=20_000).params
        assert plan.params.opening() == reference.opening()
        outcomes.append(run_once(task, plan, parse_strategy("honest"), honest, 5, 0).outcome)
    assert len({o.message.to_bytes() for o in outcomes}) == 1
    assert outcomes[0].verdict == "ACCEPT"
    cert = outcomes[0].certificate
    assert cert["planning"]["sized"]
    assert not cert["planning"]["capped"]
    assert cert["sizes"]["E"] == ProtocolParams.from_dict(cert["params"]).n_challenges > 0
    liar = plan_run(info, 0.05, 0.05, hint=1e-12)  # default budget: 2 x a tiny forecast
    lied = run_once(task, liar, parse_strategy("honest"), honest, 5, 0).outcome
    assert lied.certificate["planning"]["capped"]
    assert lied.certificate["sizes"]["E"] + lied.certificate["sizes"]["verifier_trainings"] <= (
        liar.params.budget
    )
    assert lied.verdict != "REJECT"


def test_a_malformed_attribution_is_rejected_before_the_pilot(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint)
    verifier, _ = _sessions(task, plan.params)
    info = task_info(task)
    prover = ProverSession(info, task.digest, SigningKey.generate(), nonce=b"n" * 32)
    port = InProcessProver(task, prover, parse_strategy("non-finite"), honest)
    trained: list[str] = []

    def train(plan_, rows, label):  # type: ignore[no-untyped-def]
        trained.append(label)
        return local_trainer(task)(plan_, rows, label)

    outcome = decide(verifier, port, train).outcome
    assert (outcome.verdict, outcome.reason) == ("REJECT", "malformed")
    assert trained == []  # no pilot, no spot check
    assert prover.phase == Phase.ATTRIBUTION  # E was never revealed
    assert outcome.certificate["planning"]["sized"] is False
    assert outcome.certificate["params"] == plan.params.opening().to_dict()


def test_decide_refuses_other_values_than_the_pilot(synthetic) -> None:  # type: ignore[no-untyped-def]
    task, honest, hint = synthetic
    plan = plan_run(task_info(task), 0.2, 0.05, hint=hint)
    verifier, prover = _open_and_commit(task, honest, plan.params)
    verifier.receive_attribution(honest.ravel())
    m_plan = verifier.mse_plan()
    assert m_plan is not None
    pilot = local_trainer(task)(m_plan, range(m_plan.n_rows), "mse")
    verifier.size_from_pilot(pilot)
    e_plan = prover.on_challenge(verifier.reveal_challenge().to_bytes())
    F = local_trainer(task)(e_plan, range(e_plan.n_rows), "e")
    verifier.on_evaluation_commitment(prover.commit_evaluations(F).to_bytes())
    verifier.receive_evaluations(F.ravel())
    spot = F[verifier.spot_check_rows()]
    with pytest.raises(Exception, match="pilot"):
        verifier.decide(spot, pilot + 0.5)
    assert verifier.decide(spot, pilot).verdict == "ACCEPT"

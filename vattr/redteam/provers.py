"""Red-team Provers over gRPC: the honest :class:`prover.service.ProverServicer` wrapped
so that it commits and streams what a :class:`~vattr.redteam.strategies.Strategy` makes
of the honest values. Used by ``vattr serve --strategy``, the demo and the tests; the
production Prover package contains none of this.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from attribution.protocol.prover import ProverSession
from attribution.tasks.runtime import Task
from attribution.v1 import common_pb2, prover_pb2
from prover.served import ServedTask, build_served
from prover.service import ProverServicer
from vattr.redteam.strategies import Strategy, parse_strategy

FloatArray = npt.NDArray[np.float64]


class RedTeamServicer(ProverServicer):
    """A Prover that follows ``strategy``: the attribution it serves was already altered
    by :func:`red_team_served`; here the committed and streamed vectors are altered."""

    def __init__(self, *args: Any, strategy: Strategy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strategy = strategy

    def committed_evaluations(self, session: ProverSession, trained: FloatArray) -> FloatArray:
        plan, params = session.plan, session.params
        if plan is None or params is None:
            return trained
        return self.strategy.committed(
            trained, self.served.attribution, plan, params, self.served.task.bound
        )

    def streamed_evaluations(self, committed: FloatArray) -> FloatArray:
        return self.strategy.stream_evaluations(committed)

    def streamed_attribution(self) -> FloatArray:
        return self.strategy.stream_attribution(self.served.attribution)

    def DeliverVerdict(
        self, request: prover_pb2.DeliverVerdictRequest, context: grpc.ServicerContext
    ) -> prover_pb2.DeliverVerdictResponse:
        if self.strategy.kind == "refuse-verdict":  # hide the verdict, hope for no report
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this Prover takes no verdicts")
        return super().DeliverVerdict(request, context)

    def StreamAttribution(
        self, request: prover_pb2.StreamAttributionRequest, context: grpc.ServicerContext
    ) -> Iterator[prover_pb2.StreamAttributionResponse]:
        if self.strategy.kind != "slow-drip":
            yield from super().StreamAttribution(request, context)
            return
        flat = np.ascontiguousarray(self.served.attribution, dtype="<f8").ravel()
        for start in range(flat.size):  # one value a second, well-formed to the end
            if not context.is_active():
                return
            yield prover_pb2.StreamAttributionResponse(
                chunk=common_pb2.Float64Chunk(offset=start, values_f64le=flat[start].tobytes()),
                total=flat.size,
            )
            time.sleep(1.0)

    def WatchJob(
        self, request: prover_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[prover_pb2.WatchJobResponse]:
        if self.strategy.kind != "never-finish":
            yield from super().WatchJob(request, context)
            return
        while context.is_active():  # one row short, forever
            yield prover_pb2.WatchJobResponse(state=prover_pb2.JOB_STATE_RUNNING, done=1, total=2)
            time.sleep(0.25)


def red_team_served(
    task: Task,
    method: str | None,
    attributions: Path | None,
    strategy: Strategy,
    cache: Path | None = None,
) -> ServedTask:
    """What a Prover following ``strategy`` commits to (cached under the strategy's name)."""
    return build_served(
        task,
        method,
        attributions,
        cache,
        variant=strategy.name,
        transform=lambda A: strategy.attribution(A, task.spec.p),
    )


def servicer_factory(strategy: Strategy) -> Callable[..., ProverServicer]:
    """The servicer for ``strategy`` (the plain honest one for ``honest``)."""
    if strategy.kind == "honest":
        return ProverServicer
    return functools.partial(RedTeamServicer, strategy=strategy)


def red_team_prover(
    task: Task,
    method: str | None,
    attributions: Path | None,
    strategy_text: str,
    cache: Path | None = None,
) -> tuple[ServedTask, Callable[..., ProverServicer]]:
    """``(served, servicer_factory)`` for ``start_server`` following ``strategy_text``."""
    strategy = parse_strategy(strategy_text)
    served = red_team_served(task, method, attributions, strategy, cache)
    return served, servicer_factory(strategy)

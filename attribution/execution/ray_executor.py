"""Ray executor (optional extra ``verifiable-attribution[ray]``).

Each actor loads the task once and keeps the data resident -- on its GPU when Ray gave it
one (``gpus_per_actor`` may be fractional, e.g. 0.25 packs four actors per GPU) -- and
trains whole blocks with the same batched trainers as every other executor. The driver
submits one block per idle actor and writes results as ``ray.wait`` returns them, so it
stays the only writer of the store. Actors are restarted by Ray on failure
(``max_restarts``); a block whose actor died is resubmitted once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from attribution.errors import UsageError
from attribution.execution.executors import Block, BlockResult, train_block
from attribution.execution.plan import SubsetPlan
from attribution.tasks.spec import TaskSpec


class _Trainer:
    """Actor body: trains blocks in its process (the task cache keeps the data loaded)."""

    def __init__(self, device: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.device = device

    def train(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, rows: Sequence[int]
    ) -> BlockResult:
        return train_block(spec, digest, self.device, plan, rows)


class RayExecutor:
    """Ray actors on a local or remote cluster (``address=None`` starts a local one)."""

    def __init__(
        self,
        num_actors: int | None = None,
        *,
        address: str | None = None,
        device: str = "cpu",
        gpus_per_actor: float = 0.0,
        cpus_per_actor: float = 1.0,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray as ray_module  # the optional extra
        except ImportError as exc:
            raise UsageError(
                "the ray executor needs the optional extra: "
                "pip install 'verifiable-attribution[ray]'"
            ) from exc
        # typed as Any: Ray's own annotations are partial
        ray: Any = ray_module
        self._ray = ray
        self._owns_cluster = not ray.is_initialized()
        if self._owns_cluster:
            ray.init(
                address=address, include_dashboard=False, log_to_driver=False, **(init_kwargs or {})
            )
        if gpus_per_actor > 0 and device == "cpu":
            device = "cuda"
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        n = num_actors or max(1, int(total_cpus // max(cpus_per_actor, 1e-9)))
        actor_cls = ray.remote(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, max_restarts=3)(
            _Trainer
        )
        self._actors: list[Any] = [
            actor_cls.remote(device, max(1, int(cpus_per_actor))) for _ in range(n)
        ]

    def run(
        self, spec: TaskSpec, digest: bytes, plan: SubsetPlan, blocks: Sequence[Block]
    ) -> Iterator[BlockResult]:
        ray = self._ray
        queue = list(blocks)[::-1]
        idle = list(self._actors)
        running: dict[Any, tuple[Any, Block, int]] = {}
        while queue or running:
            while queue and idle:
                actor = idle.pop()
                rows = queue.pop()
                running[actor.train.remote(spec, digest, plan, list(rows))] = (actor, rows, 0)
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            actor, rows, tries = running.pop(ref)
            idle.append(actor)
            try:
                result: BlockResult = ray.get(ref)
            except ray.exceptions.RayActorError:
                if tries >= 1:
                    raise
                running[actor.train.remote(spec, digest, plan, list(rows))] = (actor, rows, 1)
                idle.remove(actor)
                continue
            yield result

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owns_cluster:
            self._ray.shutdown()

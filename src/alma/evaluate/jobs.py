"""The executor seam: episodes to play, as plain data, and who plays them.

An evaluation turns each episode it needs into an :class:`EpisodeJob`: the task, the seed, the
phase and repeat, and the name of the memory its retrieve reads. A job holds no lock, no
connection and no closure, so it pickles and can be played on another machine. What a job
needs that cannot travel (the acting agent with its metered model, the design runners holding
the memory) the evaluation lends its executor as a :class:`Lane` while it runs; an executor that
plays jobs elsewhere rebuilds them there from the run's settings instead.

The local executor plays jobs in this process (model calls on the event loop, environment steps
in worker threads) and bounds how many episodes run at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from alma.agent.actor import Actor
from alma.config import AlmaConfig
from alma.llm.ledger import Ledger
from alma.memory.runner import CallResult
from alma.store import RunStore
from alma.types import Episode, EpisodeStart, Task

Phase = Literal["build", "deploy"]


@dataclass(frozen=True)
class EpisodeJob:
    """One episode of one evaluation."""

    evaluation: str  # the evaluation's key
    task: Task
    phase: Phase
    repeat: int  # the deploy repeat (0 for build episodes)
    seed: int
    memory: str | None = None  # the memory its retrieve reads (None: it plays without memory)


@dataclass(frozen=True)
class EpisodeResult:
    """A played job: the episode, and the retrieve call that gave it its memory."""

    episode: Episode
    retrieve: CallResult | None = None


class Lane(Protocol):
    """What a running evaluation lends its executor: the acting agent and the named memories;
    for an executor that plays elsewhere, the run's settings and domain (to rebuild the agent
    there), the evaluation's ledger (to record the calls made there) and the run's database."""

    actor: Actor
    config: AlmaConfig
    domain_name: str
    ledger: Ledger
    store: RunStore

    async def retrieve(self, memory: str, start: EpisodeStart) -> CallResult:
        """The named memory's answer to ``start`` (recorded and guarded by the evaluation)."""
        ...


class Executor(Protocol):
    def open(self, evaluation: str, lane: Lane) -> None: ...

    def close(self, evaluation: str) -> None: ...

    async def run(self, job: EpisodeJob) -> EpisodeResult: ...


class LocalExecutor:
    """Plays jobs in this process, at most ``max_concurrency`` episodes at once."""

    def __init__(self, max_concurrency: int = 8) -> None:
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._lanes: dict[str, Lane] = {}

    def open(self, evaluation: str, lane: Lane) -> None:
        self._lanes[evaluation] = lane

    def close(self, evaluation: str) -> None:
        self._lanes.pop(evaluation, None)

    async def run(self, job: EpisodeJob) -> EpisodeResult:
        lane = self._lanes[job.evaluation]
        calls: list[CallResult] = []
        memory = job.memory

        async def recall(start: EpisodeStart) -> dict[str, Any]:
            assert memory is not None
            result = await lane.retrieve(memory, start)
            calls.append(result)
            return result.value

        async with self._slots:
            episode = await lane.actor.run(
                job.task, recall=recall if memory is not None else None, seed=job.seed
            )
        return EpisodeResult(episode, calls[0] if calls else None)

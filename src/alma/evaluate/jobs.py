"""The executor seam: episodes to play, as plain data, and who plays them.

An evaluation turns each episode it needs into an :class:`EpisodeJob`: the task, the seed, the
phase and repeat, and the name of the memory its retrieve reads. A job holds no lock, no
connection and no closure, so it pickles and can be played on another machine. What a job
needs that cannot travel (the acting agent with its metered model, the design runners holding
the memory) the evaluation lends its executor as a :class:`Lane` while it runs; an executor that
plays jobs elsewhere rebuilds them there from the run's settings instead.

The local executor plays jobs in this process (model calls on the event loop, environment steps
in worker threads) and bounds how many episodes run at once. Several evaluations may share it (a
search evaluates its children at once), so a free slot goes to the job that unblocks the most:
first the episodes other work of their evaluation waits for (build episodes feed the updates,
whose memory every deploy episode reads), then the oldest evaluation's, then the first asked
for. The next evaluation's build episodes thus fill the slots a finishing one leaves idle while
its updates run, and no evaluation's update chain waits behind another's deploy episodes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
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
    # later work of its evaluation waits for it (a build episode feeds an update; a sequential
    # walk's next episode waits for this one): an executor plays it before jobs nothing awaits
    unblocks: bool = False


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


class Slots:
    """``size`` slots handed out by priority: a freed slot goes to the waiter with the lowest
    key (a plain semaphore serves in arrival order). A waiter cancelled before its turn leaves
    the queue; one cancelled just after being given a slot passes it on."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiting: list[tuple[tuple[int, ...], asyncio.Future[None]]] = []

    async def acquire(self, key: tuple[int, ...]) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (key, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled():  # the slot was given, but its taker is gone
                self.release()
            raise

    def release(self) -> None:
        self.free += 1
        while self.free > 0 and self._waiting:
            _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # skip the waiters cancelled meanwhile
                self.free -= 1
                turn.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(not turn.done() for _, turn in self._waiting)


class LocalExecutor:
    """Plays jobs in this process, at most ``max_concurrency`` episodes at once; a free slot
    goes first to jobs that unblock work, then to the oldest open evaluation, then in order."""

    def __init__(self, max_concurrency: int = 8) -> None:
        self.max_concurrency = max_concurrency
        self.slots = Slots(max_concurrency)
        self._lanes: dict[str, Lane] = {}
        self._opened: dict[str, int] = {}  # evaluation -> its rank by age
        self._order = itertools.count()

    def open(self, evaluation: str, lane: Lane) -> None:
        self._lanes[evaluation] = lane
        self._opened.setdefault(evaluation, next(self._order))

    def close(self, evaluation: str) -> None:
        self._lanes.pop(evaluation, None)
        self._opened.pop(evaluation, None)

    def priority(self, job: EpisodeJob) -> tuple[int, ...]:
        """The job's place in the queue for a slot: lower first."""
        return (0 if job.unblocks else 1, self._opened[job.evaluation], next(self._order))

    async def run(self, job: EpisodeJob) -> EpisodeResult:
        lane = self._lanes[job.evaluation]
        calls: list[CallResult] = []
        memory = job.memory

        async def recall(start: EpisodeStart) -> dict[str, Any]:
            assert memory is not None
            result = await lane.retrieve(memory, start)
            calls.append(result)
            return result.value

        await self.slots.acquire(self.priority(job))
        try:
            episode = await lane.actor.run(
                job.task, recall=recall if memory is not None else None, seed=job.seed
            )
        finally:
            self.slots.release()
        return EpisodeResult(episode, calls[0] if calls else None)

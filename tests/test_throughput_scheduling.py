"""The local executor's slots: handed out by priority, freed by cancellation, and evaluations
sharing them give the results they give alone, with their updates in task order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.jobs import EpisodeJob, LocalExecutor, Slots
from alma.evaluate.protocol import Evaluator
from alma.evaluate.results import EvalResult
from alma.memory.loading import DesignSource, reference_design
from alma.memory.runner import CallResult, DesignRunner
from alma.run import Run
from alma.sandbox.runner import factory_from_config
from alma.types import Episode, EpisodeStart, Outcome, Task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_lowest_key_then_the_first_asked() -> None:
    slots = Slots(1)
    await slots.acquire((0,))
    served: list[str] = []

    async def wait(name: str, key: tuple[int, ...]) -> None:
        await slots.acquire(key)
        served.append(name)

    waiting = [
        asyncio.create_task(wait(name, key))
        for name, key in [("late", (1, 0, 1)), ("urgent", (0, 1, 2)), ("old", (1, 0, 0))]
    ]
    await settle()
    assert served == [] and slots.waiting == 3
    for expected in (["urgent"], ["urgent", "old"], ["urgent", "old", "late"]):
        slots.release()
        await settle()
        assert served == expected
    slots.release()
    await asyncio.gather(*waiting)
    assert slots.free == 1


async def test_a_cancelled_waiter_leaves_the_queue_and_passes_on_a_given_slot() -> None:
    slots = Slots(1)
    await slots.acquire((0,))
    gone = asyncio.create_task(slots.acquire((0,)))
    after = asyncio.create_task(slots.acquire((1,)))
    await settle()
    gone.cancel()
    await settle()
    assert slots.waiting == 1  # only ``after`` still waits
    slots.release()
    await asyncio.wait_for(after, 5)
    # given a slot, then cancelled before it could take it: the slot goes to the next one
    given = asyncio.create_task(slots.acquire((0,)))
    following = asyncio.create_task(slots.acquire((1,)))
    await settle()
    slots.release()  # ``after``'s slot goes to ``given`` ...
    given.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(following, 5)  # hangs if the given slot were lost
    slots.release()
    assert slots.free == 1 and slots.waiting == 0


class _Actor:
    """Plays a job when its gate opens, noting the order in which jobs got a slot."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.gate = asyncio.Event()

    async def run(self, task: Task, memory: Any = None, **_: Any) -> Episode:
        self.order.append(task.id)
        await self.gate.wait()
        start = EpisodeStart("toy", task.description, "")
        return Episode(start=start, steps=(), outcome=Outcome(True, 1.0, 1))


class _Lane:
    def __init__(self, actor: _Actor) -> None:
        self.actor = actor

    async def retrieve(self, memory: str, start: EpisodeStart) -> CallResult:
        return CallResult({}, None, 0.0)


async def test_jobs_that_unblock_work_then_the_oldest_evaluation_go_first() -> None:
    order: list[str] = []
    actor = _Actor(order)
    executor = LocalExecutor(1)
    executor.open("old", _Lane(actor))  # type: ignore[arg-type]
    executor.open("new", _Lane(actor))  # type: ignore[arg-type]

    def job(evaluation: str, name: str, unblocks: bool) -> EpisodeJob:
        task = Task(name, "train", name)
        if unblocks:
            return EpisodeJob(evaluation, task, "build", 0, 0, None, True)
        return EpisodeJob(evaluation, task, "deploy", 0, 0, "frozen")

    first = asyncio.create_task(executor.run(job("old", "holder", True)))
    await settle()
    asked = [
        job("old", "old-deploy", False),
        job("new", "new-deploy", False),
        job("new", "new-build", True),
        job("old", "old-build", True),
    ]
    running = [asyncio.create_task(executor.run(each)) for each in asked]
    await settle()
    actor.gate.set()
    await asyncio.gather(first, *running)
    assert order == ["holder", "old-build", "new-build", "old-deploy", "new-deploy"]
    assert executor.slots.free == 1


class _Recording:
    """A runner factory whose runners note, by design, the episodes given to ``update``."""

    def __init__(self, factory: Any, updates: dict[str, list[str]]) -> None:
        self.factory, self.updates = factory, updates

    def __getattr__(self, name: str) -> Any:
        return getattr(self.factory, name)

    async def start(self, design: DesignSource, services: Any, seed: int) -> DesignRunner:
        runner: DesignRunner = await self.factory.start(design, services, seed)
        noted = self.updates.setdefault(design.name, [])
        update = runner.update

        async def recorded(episode: Episode) -> CallResult:
            noted.append(episode.start.task_description)
            result: CallResult = await update(episode)
            return result

        runner.update = recorded  # type: ignore[method-assign]
        return runner


def children(count: int) -> list[DesignSource]:
    base = reference_design("trajectory_retrieval")
    return [
        DesignSource(f"child_{i}", f"{base.source}\n# child {i}\n", base.origin)
        for i in range(count)
    ]


async def evaluate(
    folder: Path, designs: list[DesignSource], slots: int, *, together: bool
) -> tuple[list[EvalResult], dict[str, list[str]]]:
    config = load_config(overrides={"models": {"agent": "scripted"}, "eval": {"tasks": 8}})
    updates: dict[str, list[str]] = {}
    async with Run(config, folder) as run:
        factory = _Recording(factory_from_config(config, run.path), updates)
        executor = LocalExecutor(slots)
        evaluator = Evaluator(run, ToyDomain(), executor=executor, runner_factory=factory)
        if together:
            results = await asyncio.gather(*(evaluator.evaluate(d, "train") for d in designs))
        else:
            results = [await evaluator.evaluate(d, "train") for d in designs]
        assert executor.slots.free == slots
    return list(results), updates


async def test_evaluations_sharing_the_slots_give_their_results_alone(tmp_path: Path) -> None:
    """Three children at once on two slots: the same episodes, scores and per-task outcomes
    as each evaluated alone on the old one-at-a-time path, and every update in task order."""
    designs = children(3)
    shared, shared_updates = await evaluate(tmp_path / "shared", designs, 2, together=True)
    alone, alone_updates = await evaluate(tmp_path / "alone", designs, 8, together=False)
    domain = ToyDomain()
    descriptions = {task.id: task.description for task in domain.tasks("train")}
    for mine, theirs in zip(shared, alone, strict=True):
        assert mine.status == theirs.status == "done"
        assert mine.key == theirs.key  # the evaluation key does not see the scheduling
        assert (mine.score, mine.per_task, mine.n_episodes) == (
            theirs.score,
            theirs.per_task,
            theirs.n_episodes,
        )
        in_task_order = [descriptions[task] for task in mine.build_tasks]
        assert shared_updates[mine.design_name] == in_task_order
        assert alone_updates[mine.design_name] == in_task_order


async def test_a_cancelled_evaluation_frees_its_slots(tmp_path: Path) -> None:
    config = load_config(overrides={"models": {"agent": "scripted@0.01"}, "eval": {"tasks": 8}})
    first, second = children(2)
    async with Run(config, tmp_path / "run") as run:
        executor = LocalExecutor(2)
        evaluator = Evaluator(run, ToyDomain(), executor=executor)
        doomed = asyncio.create_task(evaluator.evaluate(first, "train"))
        await asyncio.sleep(0.05)  # it holds both slots, with more of its episodes waiting
        assert executor.slots.free == 0 and executor.slots.waiting > 0
        survivor = asyncio.create_task(evaluator.evaluate(second, "train"))
        await asyncio.sleep(0.01)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        result = await asyncio.wait_for(survivor, 60)
        assert result.status == "done" and result.n_episodes == 4 + 3 * 4
        assert executor.slots.free == 2 and executor.slots.waiting == 0

"""The evaluation protocol: build, then deploy three times, then score.

For one design, domain, split and task list (every design in a comparison sees the same):

1. the chosen tasks are shuffled with the run's seed; the first half is the build half, the
   rest the deploy half (``--quick``: 5 tasks, 2 build and 3 deploy);
2. build: the agent plays each build task without memory (concurrently); each episode then goes
   to ``update``, in task order unless ``max_update_concurrency`` > 1;
3. deploy, ``repeats`` times: ``batched`` freezes the memory (retrieve, then act);
   ``sequential`` gives each repeat its own copy of the built memory, which walks the deploy
   tasks in order (retrieve, act, update);
4. score: the success rate of each repeat; the score is their mean and the error their standard
   error. Per-task outcomes (for paired comparisons), tokens and dollars by purpose, and memory
   call times are kept; every episode is written to the run database as it finishes.

An evaluation ends in one of four states; only ``done`` is a score:

- ``done``: every episode finished (won, lost, or out of steps: the agent's own doing);
- ``design_failed``: the design broke (see :mod:`alma.evaluate.guard`), with the first error;
- ``incomplete``: an episode could not finish for a reason that is not the agent's (the model
  endpoint failed for good, the environment crashed or hung); the evaluation stops there;
- ``interrupted``: Ctrl-C, a signal, or the budget stopped it.

Finished episodes are never played again: an evaluation started again (a rerun, a resumed
search) plays only the episodes it lacks. Its memory is rebuilt by giving the recorded episodes
to ``update`` again, in the same order, before the missing episodes are played.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from alma.agent.actor import Actor, constrains_actions
from alma.domains.base import Domain
from alma.domains.registry import tasks_source
from alma.errors import AlmaError, BudgetExceededError
from alma.evaluate.guard import DesignGuard
from alma.evaluate.jobs import EpisodeJob, Executor, LocalExecutor, Phase
from alma.evaluate.records import EvaluationRecords, Recorded
from alma.evaluate.results import EvalResult
from alma.evaluate.statistics import bootstrap_ci, mean_and_stderr
from alma.evaluate.tasks import Selection, select_tasks
from alma.llm.ledger import Ledger
from alma.memory.loading import DesignSource
from alma.memory.runner import (
    CallResult,
    DesignFailedError,
    DesignRunner,
    RunnerFactory,
)
from alma.memory.toolkit import ModelServices
from alma.run import Run
from alma.sandbox.runner import factory_from_config
from alma.types import Episode, EpisodeStart, Split, Task

T = TypeVar("T")
ERRORED = "error"  # the outcome reason of an episode that could not finish (not the agent's fault)


class EvaluationIncomplete(AlmaError):
    """An episode could not finish (endpoint or environment failure): no score was given."""


class _EpisodeErrored(Exception):
    """Raised inside an evaluation to stop it at its first errored episode."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def gather_all(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def _close_when_started(starting: asyncio.Task[DesignRunner]) -> None:
    """Let a runner that is starting finish doing so, then close it (its result is unused)."""
    try:
        runner = await starting
    except Exception:
        return
    await runner.close()


async def _forks(runner: DesignRunner, count: int) -> list[DesignRunner]:
    """``count`` copies of the built memory, started together; all or none."""
    made = await asyncio.gather(*(runner.fork() for _ in range(count)), return_exceptions=True)
    copies = [copy for copy in made if not isinstance(copy, BaseException)]
    failures = [copy for copy in made if isinstance(copy, BaseException)]
    if failures:
        for copy in copies:
            await copy.close()
        raise failures[0]
    return copies


def episode_seed(seed: int, repeat: int, task_id: str) -> int:
    digest = hashlib.sha256(f"{seed}/{repeat}/{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class Evaluator:
    """Evaluates designs on one domain inside a run (shared store, ledger and models)."""

    def __init__(
        self,
        run: Run,
        domain: Domain,
        *,
        runner_factory: RunnerFactory | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.run = run
        self.config = run.config
        self.domain = domain
        self.runner_factory = runner_factory or factory_from_config(self.config, run.path)
        run.store.set_meta("sandbox", self.runner_factory.description)
        self.runner_factory.prewarm()  # a worker starts while the run gets ready
        run.closers.append(self.runner_factory.close)
        self.executor = executor or self._configured_executor()
        self.records = EvaluationRecords(run.store)

    def _configured_executor(self) -> Executor:
        """The executor ``[executor] kind`` names; one that holds a cluster closes with the run."""
        if self.config.executor.kind == "local":
            return LocalExecutor(self.config.eval.max_episodes_concurrency)
        from alma.evaluate.ray_executor import RayExecutor

        ray = RayExecutor.connect(self.config)
        self.run.closers.append(ray.aclose)
        return ray

    def evaluation_key(
        self, design: DesignSource, split: Split, tasks: Sequence[Task], quick: bool
    ) -> str:
        models = self.config.models
        settings = self.config.eval
        payload = {
            "design": design.id,
            "domain": self.domain.name,
            "split": split,
            "tasks": [task.id for task in tasks],
            "rollout": settings.rollout,
            "repeats": settings.repeats,
            "agent": models.agent,
            "memory": models.memory or models.agent,
            "embedder": models.embedder,
            "temperature": self.config.agent.temperature,
            "seed": self.config.run.seed,
            "step_limit": self._actor_limit(),
        }
        # only when on, so keys of runs made before the setting existed still match
        if constrains_actions(self.config.agent.constrain_actions, models.agent):
            payload["constrain_actions"] = True
        if self.config.agent.skip_no_ops:  # likewise: only when on
            payload["skip_no_ops"] = True
        if not self.config.agent.think:  # and only when off
            payload["think"] = False
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _actor_limit(self) -> int:
        cap = self.config.agent.max_steps
        return min(self.domain.step_limit, cap) if cap else self.domain.step_limit

    def _actor(self, ledger: Ledger) -> Actor:
        llm = self.run.models.llm(self.config.models.agent, "agent", ledger=ledger)
        return Actor.configured(llm, self.domain, self.config.agent, self.config.models.agent)

    def _services(self, ledger: Ledger) -> ModelServices:
        models = self.config.models
        return ModelServices(
            self.run.models.llm(models.memory or models.agent, "memory", ledger=ledger),
            self.run.models.embedder(models.embedder, "memory", ledger=ledger),
        )

    async def evaluate(
        self,
        design: DesignSource,
        split: Split,
        *,
        quick: bool = False,
        on_episode: Callable[[], None] | None = None,
        tasks: Selection | None = None,
    ) -> EvalResult:
        """Evaluate ``design`` on ``tasks`` (by default those :func:`select_tasks` draws for
        ``split``, which a caller that already drew them passes on)."""
        settings = self.config.eval
        seed = self.config.run.seed
        build, deploy = tasks or select_tasks(self.domain, split, settings, quick=quick, seed=seed)
        key = self.evaluation_key(design, split, build + deploy, quick)
        earlier = self.records.finished(key)
        if earlier is not None:
            earlier.reused = True
            return earlier
        result = EvalResult(
            key,
            design.id,
            design.name,
            self.domain.name,
            split,
            settings.rollout,
            build_tasks=[t.id for t in build],
            deploy_tasks=[t.id for t in deploy],
            tasks_source=tasks_source(self.domain),
        )
        recorded = self.records.start(result, design)
        ledger = self.run.ledger.child(f"eval:{key}")
        started = time.perf_counter()
        session = _Session(self, result, ledger, on_episode, recorded)
        self.executor.open(key, session)
        try:
            await session.play(design, build, deploy, seed)
        except DesignFailedError as failure:
            result.status, result.error = "design_failed", failure.message
            result.error_line = session.guard.line
        except _EpisodeErrored as errored:
            result.status, result.error = "incomplete", errored.message
        except BaseException:
            result.status = "interrupted"
            result.seconds = time.perf_counter() - started
            self.records.finish(result, ledger, status="interrupted")
            raise
        finally:
            self.executor.close(key)
        result.seconds = time.perf_counter() - started
        session.score(deploy)
        self.records.finish(result, ledger, status=result.status)
        return result


class _Session:
    """The mutable state of one evaluation while it runs."""

    def __init__(
        self,
        evaluator: Evaluator,
        result: EvalResult,
        ledger: Ledger,
        on_episode: Callable[[], None] | None,
        recorded: dict[tuple[str, int, str], Recorded],
    ) -> None:
        self.evaluator = evaluator
        self.result = result
        self.ledger = ledger
        self.on_episode = on_episode
        self.recorded = recorded  # finished episodes of an earlier attempt
        self.guard = DesignGuard()
        self.planned_calls = 0
        self.config = evaluator.config
        self.domain_name = evaluator.domain.name
        self.store = evaluator.run.store
        self.actor = evaluator._actor(ledger)
        self.services = evaluator._services(ledger)
        settings = evaluator.config.eval
        self.retrieve_slots = asyncio.Semaphore(settings.max_retrieve_concurrency)
        self.update_slots = asyncio.Semaphore(settings.max_update_concurrency)
        self.outcomes: dict[tuple[int, str], bool] = {}
        self.memories: dict[str, DesignRunner] = {}  # the memories deploy episodes read, by name

    async def play(
        self, design: DesignSource, build: list[Task], deploy: list[Task], seed: int
    ) -> None:
        settings = self.evaluator.config.eval
        self.planned_calls = len(build) + settings.repeats * len(deploy) * (
            2 if settings.rollout == "sequential" else 1
        )
        # the worker starts while the build episodes (which need no memory) are played
        starting = asyncio.create_task(
            self.evaluator.runner_factory.start(design, self.services, seed)
        )
        try:
            runner = await self._build(starting, build)
        except BaseException:
            await _close_when_started(starting)
            raise
        try:
            if settings.rollout == "batched":
                await runner.checkpoint()  # the frozen memory every deploy retrieve reads
                self.memories["frozen"] = runner
                await gather_all(
                    self._act(task, "deploy", repeat, "frozen")
                    for repeat in range(settings.repeats)
                    for task in deploy
                )
            else:
                copies = await _forks(runner, settings.repeats)
                try:
                    await gather_all(
                        self._walk(copy, deploy, repeat) for repeat, copy in enumerate(copies)
                    )
                finally:
                    for copy in copies:
                        await copy.close()
        finally:
            if self.guard.failure is not None:  # the design was given up: what it never got
                self.result.skipped_calls = max(0, self.planned_calls - self.guard.attempted)
            await runner.close()

    async def _build(self, starting: asyncio.Task[DesignRunner], build: list[Task]) -> DesignRunner:
        """Play the build episodes; each goes to ``update`` as soon as it is done and, with one
        update at a time, the updates of the tasks before it too (task order: deterministic), so
        updates overlap the episodes still playing. Returns the runner holding the built memory.
        """

        async def update(runner: DesignRunner, playing: asyncio.Task[Episode]) -> None:
            episode = await playing
            async with self.update_slots:
                await self._update(runner, episode)

        async def updates(played: list[asyncio.Task[Episode]]) -> DesignRunner:
            try:  # shielded: stopping this wait must not stop the start (closed when started)
                runner = await asyncio.shield(starting)
            except BaseException:  # the design cannot start: its build episodes still count
                await asyncio.gather(*played, return_exceptions=True)
                raise
            if self.evaluator.config.eval.max_update_concurrency == 1:
                for playing in played:
                    await update(runner, playing)
            else:
                await gather_all(update(runner, playing) for playing in played)
            return runner

        try:
            async with asyncio.TaskGroup() as group:
                played = [group.create_task(self._act(task, "build", 0, None)) for task in build]
                updating = group.create_task(updates(played))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None
        return updating.result()

    async def _update(self, runner: DesignRunner, episode: Episode) -> None:
        self.guard.check()
        result = await runner.update(episode)
        self.result.memory.add("update", result)
        self.guard.observe("update", result)

    async def _walk(self, runner: DesignRunner, deploy: list[Task], repeat: int) -> None:
        name = f"copy-{repeat}"  # this repeat's own copy, which learns as it goes
        self.memories[name] = runner
        for task in deploy:
            episode = await self._act(task, "deploy", repeat, name)
            await self._update(runner, episode)

    async def retrieve(self, memory: str, start: EpisodeStart) -> CallResult:
        """A deploy episode's retrieve, from the memory its job names (see :class:`Lane`)."""
        async with self.retrieve_slots:
            self.guard.check()
            result = await self.memories[memory].retrieve(start)
        self.result.memory.add("retrieve", result)
        self.guard.observe("retrieve", result)
        return result

    def _resumed(self, task: Task, phase: str, repeat: int) -> Episode | None:
        """The episode as an earlier attempt finished it, counted as if played now."""
        earlier = self.recorded.get((phase, repeat, task.id))
        if earlier is None:
            return None
        self.result.resumed_episodes += 1
        self.planned_calls -= phase == "deploy"  # its retrieve was made by the earlier attempt
        self._count(task, earlier.episode, phase, repeat)
        if earlier.retrieve is not None:
            self.result.memory.add("retrieve", earlier.retrieve)
        return earlier.episode

    def _count(self, task: Task, episode: Episode, phase: str, repeat: int) -> None:
        self.result.n_episodes += 1
        if phase == "deploy":
            self.outcomes[(repeat, task.id)] = episode.outcome.success
            self.result.memory.truncated += episode.memory_truncated
        if self.on_episode is not None:
            self.on_episode()

    async def _act(self, task: Task, phase: Phase, repeat: int, memory: str | None) -> Episode:
        resumed = self._resumed(task, phase, repeat)
        if resumed is not None:
            return resumed
        config = self.evaluator.config
        seed = episode_seed(config.run.seed, repeat if phase == "deploy" else -1, task.id)
        # build episodes feed the updates, a walk's episode its next one; batched deploy
        # episodes are awaited by nothing but the score
        unblocks = phase == "build" or config.eval.rollout == "sequential"
        job = EpisodeJob(self.result.key, task, phase, repeat, seed, memory, unblocks)
        played = await self.evaluator.executor.run(job)
        episode = played.episode
        if episode.outcome.reason == "budget":  # the run is out of budget: stop, don't score
            raise BudgetExceededError(episode.outcome.error or "budget reached")
        self.evaluator.records.add_episode(
            self.result, task, episode, phase, repeat, played.retrieve
        )
        if episode.outcome.reason == ERRORED:  # not the agent's doing: no score, stop here
            self.result.episode_errors += 1
            raise _EpisodeErrored(
                f"episode {task.id} ({phase}) could not finish: {episode.outcome.error}"
            )
        self._count(task, episode, phase, repeat)
        return episode

    def score(self, deploy: list[Task]) -> None:
        result = self.result
        repeats = self.evaluator.config.eval.repeats
        if result.scored:
            result.repeats = [
                sum(self.outcomes.get((r, task.id), False) for task in deploy) / len(deploy)
                for r in range(repeats)
            ]
            result.per_task = {
                task.id: [self.outcomes.get((r, task.id), False) for r in range(repeats)]
                for task in deploy
            }
        else:
            result.repeats = [0.0] * repeats
        result.score, result.stderr = mean_and_stderr(result.repeats)
        task_scores = list(result.task_scores().values())
        result.ci95 = bootstrap_ci(task_scores) if task_scores else (0.0, 0.0)
        result.usage = {
            purpose: tally.as_dict() for purpose, tally in self.ledger.by_purpose.items()
        }
        result.cost_usd = self.ledger.total.cost_usd

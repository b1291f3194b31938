"""The domain contract: a family of seeded tasks, each played through a text environment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from alma.types import Observation, Split, Task, Transition


@runtime_checkable
class TextEnv(Protocol):
    """One game. ``reset`` must give the same observation every time for the same task.

    An environment may set ``inline_steps = True`` when its calls are in-memory code that returns
    at once and cannot block (alma's own toy and BabaIsAI engines): the agent then calls them on
    its event loop, without a thread hop or a time limit. Anything that waits on a program, a
    file or a library it does not control must leave it unset.
    """

    def reset(self) -> Observation: ...

    def step(self, action: str) -> Transition: ...

    def close(self) -> None: ...


@runtime_checkable
class Domain(Protocol):
    """A family of seeded tasks.

    ``tasks(split)`` must be cheap (ids, seeds and parameters only): anything costly, such as
    generating a game, happens in ``make_env`` or on first use and is cached. A domain may also
    offer the optional capabilities below (:class:`Described`, :class:`Preparing`,
    :class:`TaskLookup`; an environment :class:`Drawable`); the harness asks for each with
    ``isinstance``.
    """

    name: str
    step_limit: int
    description: str  # for the meta agent: the tasks, what is hard, what memory could hold
    instructions: str  # for the acting agent's system prompt

    def tasks(self, split: Split) -> Sequence[Task]: ...

    def make_env(self, task: Task) -> TextEnv: ...


@runtime_checkable
class Described(Protocol):
    """A domain with ``details`` (JSON-able) that ``alma domains`` shows next to its task counts:
    where its tasks come from (``source``: "generated" or "official"), its profile or families."""

    details: dict[str, Any]


@dataclass
class PrepareReport:
    """What :meth:`Preparing.prepare` did."""

    generated: int = 0  # games made now
    cached: int = 0  # games that were already in the cache
    seconds: float = 0.0
    # task id -> what stands in for its game (the seed used instead, the failed checks)
    replaced: dict[str, Any] = field(default_factory=dict)
    # task id -> seconds spent making its game, where measured
    game_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return self.generated + self.cached


@runtime_checkable
class Preparing(Protocol):
    """A domain that generates its games: ``prepare`` makes (or finds cached) those of a split
    or a list of tasks up front, its progress counted (see :mod:`alma.progress`)."""

    def prepare(
        self, tasks: Split | Sequence[Split | Task] = "train", *, progress: bool = True
    ) -> PrepareReport: ...


@runtime_checkable
class TaskLookup(Protocol):
    """A domain that finds a task by id itself (for ids outside its split lists, or to explain
    a bad id better than the generic lookup)."""

    def task(self, task_id: str) -> Task: ...


@runtime_checkable
class Drawable(Protocol):
    """An environment that draws its game for humans (``alma play --render``)."""

    def render(self) -> object: ...


class StepLimit:
    """Ends an episode after ``limit`` steps, as Gymnasium's TimeLimit does.

    Every env the harness opens is wrapped in it, so no domain can run past its step limit.
    """

    def __init__(self, env: TextEnv, limit: int) -> None:
        self.env = env
        self.limit = limit
        self.steps = 0
        self.inline_steps = bool(getattr(env, "inline_steps", False))

    def reset(self) -> Observation:
        self.steps = 0
        return self.env.reset()

    def step(self, action: str) -> Transition:
        self.steps += 1
        transition = self.env.step(action)
        if self.steps >= self.limit and not transition.done:
            info = {**transition.info, "truncated": True}
            return Transition(transition.observation, transition.reward, True, False, info)
        return transition

    def close(self) -> None:
        self.env.close()

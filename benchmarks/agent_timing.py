"""Shared by the benchmarks: where the time of an acting-agent episode goes.

``agent_overhead`` plays whole episodes of a domain with the scripted model and splits the wall
time of each step into the model's share, the environment's share (creation and reset spread
over the episode's steps) and the rest: the agent loop, metering and prompts, which is the
agent's own overhead.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alma.agent.actor import Actor
from alma.domains.base import Domain
from alma.llm.cache import CachedLLM
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM
from alma.types import Completion, Message, Observation, Split, Task, Transition


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TimedModel:
    """Adds up the time spent inside the wrapped model."""

    def __init__(self, inner: ScriptedLLM) -> None:
        self.inner = inner
        self.model = inner.model
        self.seconds = 0.0

    async def complete(self, messages: Sequence[Message], **kwargs: Any) -> Completion:
        started = time.perf_counter()
        try:
            return await self.inner.complete(messages, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


class TimedDomain:
    """A domain whose environments add up the time spent creating, resetting and stepping them."""

    def __init__(self, inner: Domain) -> None:
        self.inner = inner
        self.name = inner.name
        self.step_limit = inner.step_limit
        self.description = inner.description
        self.instructions = inner.instructions
        self.seconds = 0.0

    def tasks(self, split: Split) -> Sequence[Task]:
        return self.inner.tasks(split)

    def make_env(self, task: Task) -> _TimedEnv:
        started = time.perf_counter()
        env = _TimedEnv(self, self.inner.make_env(task))
        self.seconds += time.perf_counter() - started
        return env


@dataclass
class _TimedEnv:
    domain: TimedDomain
    env: Any

    def reset(self) -> Observation:
        started = time.perf_counter()
        try:
            return self.env.reset()  # type: ignore[no-any-return]
        finally:
            self.domain.seconds += time.perf_counter() - started

    def step(self, action: str) -> Transition:
        started = time.perf_counter()
        try:
            return self.env.step(action)  # type: ignore[no-any-return]
        finally:
            self.domain.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.env.close()


async def agent_overhead(domain: Domain, tasks: Sequence[Task], episodes: int) -> dict[str, float]:
    """Play ``episodes`` episodes (cycling through ``tasks``), print the split of a step's time,
    and return its medians in milliseconds: ``loop``, ``model``, ``environment``, ``agent``."""
    timed_domain = TimedDomain(domain)
    per_step: list[float] = []
    model: list[float] = []
    environment: list[float] = []
    total_steps = 0
    for index in range(episodes):
        timed = TimedModel(ScriptedLLM())
        timed_domain.seconds = 0.0
        actor = Actor(Metered(CachedLLM(timed, None), Ledger(), "agent"), timed_domain)
        started = time.perf_counter()
        episode = await actor.run(tasks[(index * 7) % len(tasks)])
        elapsed = time.perf_counter() - started
        steps = max(1, episode.outcome.steps)
        total_steps += steps
        per_step.append(elapsed / steps * 1000)
        model.append(timed.seconds / steps * 1000)
        environment.append(timed_domain.seconds / steps * 1000)
    overhead = [p - m - e for p, m, e in zip(per_step, model, environment, strict=True)]
    print(f"{domain.name}: {episodes} episodes with the scripted model, {total_steps} steps")
    print(
        f"per step, whole agent loop : median {statistics.median(per_step):.3f} ms, "
        f"p95 {percentile(per_step, 0.95):.3f} ms"
    )
    print(f"per step, inside the model : median {statistics.median(model):.3f} ms")
    print(
        f"per step, environment      : median {statistics.median(environment):.3f} ms"
        " (creation and reset spread over the episode's steps)"
    )
    print(f"per step, agent overhead   : median {statistics.median(overhead):.3f} ms")
    return {
        "loop": statistics.median(per_step),
        "model": statistics.median(model),
        "environment": statistics.median(environment),
        "agent": statistics.median(overhead),
    }

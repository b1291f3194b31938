"""MiniHack domain: environment creation, environment step, and the agent's overhead per step.

Per family: the time to create an environment and reset it (median over the tasks played), and
the median and p95 time of one environment step with random admissible actions (the game plus
the text observation). Then whole episodes of the acting agent with the scripted model: wall time
per step split into the model's share, the environment's share and the rest (the agent loop,
metering, prompts), which is the agent's own overhead. Target: median step under 10 ms.

    .venv/bin/python benchmarks/bench_domain_minihack.py [--tasks 8] [--episodes 24]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from alma.agent.actor import Actor
from alma.domains.minihack import MiniHackDomain
from alma.domains.minihack.env import game_modules
from alma.domains.minihack.tasks import FAMILIES
from alma.llm.cache import CachedLLM
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM
from alma.types import SPLITS, Completion, Message, Observation, Task, Transition


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def by_family(domain: MiniHackDomain, per_family: int) -> dict[str, list[Task]]:
    tasks: dict[str, list[Task]] = {slug: [] for slug in FAMILIES}
    for split in SPLITS:
        for task in domain.tasks(split):
            family = tasks[task.params["family"]]
            if len(family) < per_family:
                family.append(task)
    return tasks


def env_figures(domain: MiniHackDomain, per_family: int) -> None:
    started = time.perf_counter()
    game_modules()
    print(f"first import of gym, MiniHack and the wrapper: {time.perf_counter() - started:.2f} s")
    header = ("create+reset ms", "step median ms", "step p95 ms", "steps")
    print(f"{'family':<22}{header[0]:>16}{header[1]:>16}{header[2]:>13}{header[3]:>7}")
    all_steps: list[float] = []
    for slug, tasks in by_family(domain, per_family).items():
        creation: list[float] = []
        steps: list[float] = []
        for task in tasks:
            started = time.perf_counter()
            env = domain.make_env(task)
            obs = env.reset()
            creation.append((time.perf_counter() - started) * 1000)
            rng = random.Random(task.seed)
            for _ in range(domain.step_limit):
                assert obs.actions
                action = rng.choice(obs.actions)
                started = time.perf_counter()
                transition = env.step(action)
                steps.append((time.perf_counter() - started) * 1000)
                obs = transition.observation
                if transition.done:
                    break
            env.close()
        all_steps += steps
        print(
            f"{slug:<22}{statistics.median(creation):>16.1f}{statistics.median(steps):>16.3f}"
            f"{percentile(steps, 0.95):>13.3f}{len(steps):>7}"
        )
    median = statistics.median(all_steps)
    print(f"all families: step median {median:.3f} ms, p95 {percentile(all_steps, 0.95):.3f} ms")
    print(f"target median step < 10 ms: {'PASS' if median < 10.0 else 'FAIL'}")


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


class TimedDomain(MiniHackDomain):
    """Adds up the time spent creating its environments and in their reset and step."""

    seconds = 0.0

    def make_env(self, task: Task) -> Any:
        started = time.perf_counter()
        env = super().make_env(task)
        self.seconds += time.perf_counter() - started
        domain = self

        class Timed:
            def reset(self) -> Observation:
                started = time.perf_counter()
                try:
                    return env.reset()
                finally:
                    domain.seconds += time.perf_counter() - started

            def step(self, action: str) -> Transition:
                started = time.perf_counter()
                try:
                    return env.step(action)
                finally:
                    domain.seconds += time.perf_counter() - started

            def close(self) -> None:
                env.close()

        return Timed()


async def agent_figures(episodes: int) -> None:
    domain = TimedDomain()
    tasks = [*domain.tasks("train"), *domain.tasks("eval_out_of_distribution")]
    per_step: list[float] = []
    model: list[float] = []
    environment: list[float] = []
    total_steps = 0
    for index in range(episodes):
        timed = TimedModel(ScriptedLLM())
        domain.seconds = 0.0
        actor = Actor(Metered(CachedLLM(timed, None), Ledger(), "agent"), domain)
        task = tasks[(index * 7) % len(tasks)]
        started = time.perf_counter()
        episode = await actor.run(task)
        elapsed = time.perf_counter() - started
        steps = max(1, episode.outcome.steps)
        total_steps += steps
        per_step.append(elapsed / steps * 1000)
        model.append(timed.seconds / steps * 1000)
        environment.append(domain.seconds / steps * 1000)
    overhead = [p - m - e for p, m, e in zip(per_step, model, environment, strict=True)]
    print(f"agent episodes with the scripted model: {episodes}, steps: {total_steps}")
    print(f"per step, whole agent loop   : median {statistics.median(per_step):.3f} ms")
    print(f"per step, inside the model   : median {statistics.median(model):.3f} ms")
    print(
        f"per step, environment        : median {statistics.median(environment):.3f} ms"
        " (creation and reset spread over the episode's steps)"
    )
    print(f"per step, agent overhead     : median {statistics.median(overhead):.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks per family")
    parser.add_argument("--episodes", type=int, default=24, help="agent episodes")
    args = parser.parse_args()
    env_figures(MiniHackDomain(), args.tasks)
    asyncio.run(agent_figures(args.episodes))

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

from agent_timing import agent_overhead, percentile
from alma.domains.minihack import MiniHackDomain
from alma.domains.minihack.env import game_modules
from alma.domains.minihack.tasks import FAMILIES
from alma.types import SPLITS, Task


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


async def agent_figures(episodes: int) -> None:
    domain = MiniHackDomain()
    tasks = [*domain.tasks("train"), *domain.tasks("eval_out_of_distribution")]
    await agent_overhead(domain, tasks, episodes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks per family")
    parser.add_argument("--episodes", type=int, default=24, help="agent episodes")
    args = parser.parse_args()
    env_figures(MiniHackDomain(), args.tasks)
    asyncio.run(agent_figures(args.episodes))

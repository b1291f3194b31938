"""TextWorld domain: game generation, cached loading, environment steps and agent overhead.

1. First use: ``prepare`` generates the first ``--tasks`` games of ``--split`` into an empty
   cache (a temporary folder unless ``--cache``) with ``--workers`` processes (default: one per
   core); the total time, and per family the time one game took in its worker.
2. Cached: ``prepare`` again (every game already in the cache), then ``make_env`` + ``reset``
   for each task.
3. Environment steps: random admissible commands (seeded), up to the step limit, on every game.
   Target: median under 20 ms.
4. Agent overhead: the acting agent with the scripted model on the same games; the wall time per
   step minus the time inside the model and inside the environment.

    .venv/bin/python benchmarks/bench_domain_textworld.py [--split train] [--tasks 50]
        [--workers N] [--cache DIR] [--episodes 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_timing import agent_overhead, percentile
from alma.types import Task


def row(label: str, values: Sequence[float], unit: str = "ms") -> str:
    if not values:
        return f"{label:<28} -"
    return (
        f"{label:<28} n={len(values):<5} median {statistics.median(values):8.1f} {unit}"
        f"   p95 {percentile(values, 0.95):8.1f} {unit}   max {max(values):8.1f} {unit}"
    )


def generate(domain: Any, tasks: list[Task], workers: int) -> None:
    print(f"1. first use: {len(tasks)} games, prepare() with {workers} worker process(es)")
    done = domain.prepare(tasks, workers=workers, progress=True)
    by_family: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        if task.id in done.game_seconds:
            by_family[task.params["family"]].append(done.game_seconds[task.id])
    for family, times in sorted(by_family.items()):
        print("  " + row(f"{family} (one game)", times, "s"))
    print(f"   generated {done.generated}, tasks whose seed was replaced: {len(done.replaced)}")
    print(f"   total {done.seconds:.1f} s for {len(tasks)} games")


def cached(domain: Any, tasks: list[Task]) -> list[Any]:
    print("2. cached")
    started = time.perf_counter()
    done = domain.prepare(tasks, progress=False)
    seconds = time.perf_counter() - started
    print(f"   prepare() on {done.tasks} cached games: {seconds * 1000:.1f} ms")
    loads: list[float] = []
    envs = []
    for task in tasks:
        begun = time.perf_counter()
        env = domain.make_env(task)
        env.reset()
        loads.append((time.perf_counter() - begun) * 1000)
        envs.append((task, env))
    print("  " + row("make_env + reset", loads))
    return envs


def steps(envs: list[Any], limit: int) -> None:
    print("3. environment steps (random admissible commands)")
    rng = random.Random(0)
    by_family: dict[str, list[float]] = defaultdict(list)
    for task, env in envs:
        observation = env.reset()
        for _ in range(limit):
            action = rng.choice(observation.actions) if observation.actions else "look"
            begun = time.perf_counter()
            transition = env.step(action)
            by_family[task.params["family"]].append((time.perf_counter() - begun) * 1000)
            if transition.done:
                break
            observation = transition.observation
        env.close()
    every = [t for times in by_family.values() for t in times]
    for family, times in sorted(by_family.items()):
        print("  " + row(family, times))
    print("  " + row("all", every))
    median = statistics.median(every)
    print(f"   target median < 20 ms: {'PASS' if median < 20 else 'FAIL'} ({median:.1f} ms)")


async def agent(domain: Any, tasks: list[Task], episodes: int) -> None:
    print("4. agent overhead per step (scripted model, no model time)")
    await agent_overhead(domain, tasks, episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: empty)")
    parser.add_argument("--episodes", type=int, default=12)
    args = parser.parse_args()
    folder = args.cache or Path(tempfile.mkdtemp(prefix="alma-bench-textworld-"))
    os.environ["ALMA_CACHE_DIR"] = str(folder)
    from alma.domains.textworld import TextWorldDomain

    domain = TextWorldDomain()
    tasks = list(domain.tasks(args.split))[: args.tasks]
    print(f"cache: {folder}   split: {args.split}   cpu cores: {os.cpu_count()}")
    generate(domain, tasks, args.workers)
    envs = cached(domain, tasks)
    steps(envs, domain.step_limit)
    asyncio.run(agent(domain, tasks, args.episodes))


if __name__ == "__main__":
    main()

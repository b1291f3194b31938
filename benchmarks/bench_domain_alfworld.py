"""ALFWorld domain costs, on generated tasks in a fresh cache folder.

1. first use: a fresh process that imports alma, lists the three splits and plays the first
   observation of a task whose game is not cached yet (import, listing, generation, check, load);
2. generation: drawing a task's initial state, checking it solvable (the expert's plan replayed
   through ALFWorld's engine) and caching it, per task, over tasks of every type and split;
3. listing: ``tasks(split)`` for the three splits, in-process (it must stay cheap);
4. opening a cached game in a cold engine: ``make_env`` + ``reset`` (reading, translating);
5. a step: median and p95 of ``step`` with random admissible commands (target: median < 50 ms).

    .venv/bin/python benchmarks/bench_domain_alfworld.py [--tasks 12] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_USE = """
import time
started = time.perf_counter()
from alma.domains.alfworld import AlfWorldDomain
from alma.types import SPLITS
domain = AlfWorldDomain(source="generated")
tasks = {split: domain.tasks(split) for split in SPLITS}
env = domain.make_env(tasks["train"][0])
env.reset()
print(time.perf_counter() - started)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(n_tasks: int, steps: int) -> int:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ALMA_CACHE_DIR"] = cache
        env_vars = {**os.environ, "ALMA_CACHE_DIR": str(Path(cache) / "first-use")}
        env_vars.pop("ALFWORLD_DATA", None)
        out = subprocess.run(
            [sys.executable, "-c", FIRST_USE], env=env_vars, capture_output=True, text=True
        )
        if out.returncode != 0:
            print(out.stderr)
            return 1
        first_use = float(out.stdout.strip().splitlines()[-1])

        from alma.domains.alfworld import AlfWorldDomain
        from alma.domains.alfworld.engine import clear_caches
        from alma.types import SPLITS

        domain = AlfWorldDomain(source="generated")
        started = time.perf_counter()
        by_split = {split: domain.tasks(split) for split in SPLITS}
        listing = time.perf_counter() - started

        # tasks of every type, taken in turn from the three splits
        picked = [by_split[SPLITS[i % 3]][i] for i in range(n_tasks)]
        generation = []
        for task in picked:
            started = time.perf_counter()
            domain.generated_game(task)
            generation.append(time.perf_counter() - started)

        opening, step_times = [], []
        rng = random.Random(0)
        for task in picked:
            clear_caches()  # as in a new process: the game file is read and translated again
            started = time.perf_counter()
            env = domain.make_env(task)
            observation = env.reset()
            opening.append(time.perf_counter() - started)
            for _ in range(steps):
                action = rng.choice(observation.actions or ("look",))
                started = time.perf_counter()
                transition = env.step(action)
                step_times.append(time.perf_counter() - started)
                observation = transition.observation
            env.close()

    ms = 1000.0
    print(f"alfworld (generated tasks), {n_tasks} tasks, {len(step_times)} steps")
    print(f"first use (new process, empty cache) : {first_use:6.2f} s to the first observation")
    print(
        f"generation + solvability check       : mean {statistics.mean(generation):5.2f} s, "
        f"max {max(generation):5.2f} s per task"
    )
    print(f"listing the three splits             : {listing * ms:6.0f} ms")
    print(
        f"make_env + reset of a cached game    : median {statistics.median(opening) * ms:5.0f} ms, "
        f"max {max(opening) * ms:5.0f} ms"
    )
    median = statistics.median(step_times) * ms
    print(
        f"step                                 : median {median:5.1f} ms, "
        f"p95 {percentile(step_times, 0.95) * ms:5.1f} ms"
    )
    print(f"target: step median < 50 ms: {'PASS' if median < 50 else 'FAIL'}")
    return 0 if median < 50 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12, help="tasks to generate and play")
    parser.add_argument("--steps", type=int, default=30, help="random steps per task")
    args = parser.parse_args()
    raise SystemExit(main(args.tasks, args.steps))

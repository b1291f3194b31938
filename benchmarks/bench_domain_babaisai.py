"""BabaIsAI: time of one environment step, and of generating a level plus solving it.

``--variant balrog`` (the default, the benchmark's game): step time as below, then per family the
fraction of the default tasks (5 per family and split) that can be won within the 20-step limit,
their median plan length, and the solver's time per level (process time of the breadth-first
search that proves a plan shortest, or that there is none within the limit). By default the
figures come from the shipped catalogue, whose entries record each search's time; ``--fresh``
solves every level again (about 15 minutes on one core: the unwinnable two-room levels need
searches of up to 1.8 million states, 1.8 GB).

``--variant alma`` (alma's own game). Step time: random episodes (uniform admissible actions,
seeded) on the first task of every family, timing each ``env.step`` (engine step plus the
observation text); the bare engine ``advance`` is timed the same way. Target: median under 1 ms
a step.

Generation + solve: for each family, its default tasks' levels are generated and searched again
with the breadth-first solver, ignoring the shipped catalogue (so this is the cost a new seed
pays on first use). Per family: tasks, median and max seconds (process time, rejected draws
included), median plan length, largest search, draws replaced. The search dominates; generating a
level alone takes microseconds.

    .venv/bin/python benchmarks/bench_domain_babaisai.py [--variant balrog|alma] [--fresh]
        [--instances 5] [--episodes 20] [--families goto_win,make_win]   (default: all 40)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from alma.domains.babaisai import HELD_OUT, BabaIsAIDomain, balrog_engine
from alma.domains.babaisai.balrog_catalogue import BalrogEntry, shipped_balrog, solve_level
from alma.domains.babaisai.catalogue import find_level, key
from alma.domains.babaisai.engine import ACTIONS, advance
from alma.domains.babaisai.families import FAMILIES, generate
from alma.types import SPLITS, Split


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def balrog_step_times(domain: BabaIsAIDomain, families: list[str], episodes: int) -> None:
    rng = random.Random(0)
    env_times: list[float] = []
    engine_times: list[float] = []
    for family in families:
        split: Split = "eval_out_of_distribution" if family in HELD_OUT else "train"
        task = next(t for t in domain.tasks(split) if t.params["family"] == family)
        level = domain.balrog_level(task)[0]
        env = domain.make_env(task)
        for _ in range(episodes):
            env.reset()
            for _step in range(domain.step_limit):
                action = rng.choice(ACTIONS)
                started = time.perf_counter()
                balrog_engine.step(level.board, env.state, action)  # type: ignore[arg-type]
                engine_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                transition = env.step(action)
                env_times.append(time.perf_counter() - started)
                if transition.done:
                    break
    print(f"balrog step time over {len(env_times)} random steps ({len(families)} families):")
    for label, values in (("env.step", env_times), ("engine step", engine_times)):
        print(
            f"  {label:<15} median {statistics.median(values) * 1e3:.3f} ms   "
            f"p95 {percentile(values, 0.95) * 1e3:.3f} ms   max {max(values) * 1e3:.2f} ms"
        )


def balrog_solvable(domain: BabaIsAIDomain, families: list[str], fresh: bool) -> None:
    source = "solved now" if fresh else "shipped catalogue"
    print(f"\nwinnable within {domain.step_limit} steps, per family (balrog variant; {source}):")
    print(
        f"{'family':<61} {'tasks':>5} {'winnable':>8} {'moves':>5} "
        f"{'median s':>9} {'max s':>7} {'max states':>10}"
    )
    catalogue = shipped_balrog()
    totals: dict[str, list[int]] = {}
    every: list[BalrogEntry] = []
    for family in families:
        entries: list[BalrogEntry] = []
        for split in SPLITS:
            for task in domain.tasks(split):
                if task.params["family"] != family:
                    continue
                found = None if fresh else catalogue.get(key(family, task.seed))
                entries.append(found or solve_level(family, task.seed)[1])
                totals.setdefault(split, [0, 0])
                totals[split][0] += 1
                totals[split][1] += entries[-1].plan is not None
        every.extend(entries)
        won = [e.optimal_steps for e in entries if e.optimal_steps is not None]
        seconds = [e.seconds for e in entries]
        print(
            f"{family:<61} {len(entries):>5} {len(won) / len(entries):>8.0%} "
            f"{statistics.median(won) if won else float('nan'):>5.0f} "
            f"{statistics.median(seconds):>9.3f} {max(seconds):>7.2f} "
            f"{max(e.states for e in entries):>10}"
        )
    for split, (count, winnable) in totals.items():
        print(f"  {split:<26} {winnable}/{count} winnable ({winnable / count:.0%})")
    seconds = [e.seconds for e in every]
    print(
        f"solver time per level over {len(every)} levels: "
        f"median {statistics.median(seconds):.3f} s, p95 {percentile(seconds, 0.95):.2f} s, "
        f"max {max(seconds):.2f} s, "
        f"total {sum(seconds):.0f} s"
    )


def step_times(domain: BabaIsAIDomain, families: list[str], episodes: int) -> None:
    rng = random.Random(0)
    env_times: list[float] = []
    engine_times: list[float] = []
    for family in families:
        split: Split = "eval_out_of_distribution" if family in HELD_OUT else "train"
        task = next(t for t in domain.tasks(split) if t.params["family"] == family)
        env = domain.make_env(task)
        for _ in range(episodes):
            env.reset()
            for _step in range(domain.step_limit):
                action = rng.choice(ACTIONS)
                before = env.state
                started = time.perf_counter()
                advance(env.board, before, action)
                engine_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                transition = env.step(action)
                env_times.append(time.perf_counter() - started)
                if transition.done:
                    break
    print(f"step time over {len(env_times)} random steps ({len(families)} families):")
    for label, values in (("env.step", env_times), ("engine advance", engine_times)):
        print(
            f"  {label:<15} median {statistics.median(values) * 1e3:.3f} ms   "
            f"p95 {percentile(values, 0.95) * 1e3:.3f} ms   max {max(values) * 1e3:.2f} ms"
        )


def solve_times(domain: BabaIsAIDomain, families: list[str], instances: int) -> None:
    print(f"\ngeneration + solvability search per task ({instances} per family, fresh search):")
    print(
        f"{'family':<61} {'tasks':>5} {'median s':>9} {'max s':>7} {'moves':>5} "
        f"{'max states':>10} {'replaced':>8}"
    )
    all_seconds: list[float] = []
    generate_only: list[float] = []
    for family in families:
        seeds = [
            t.seed for split in SPLITS for t in domain.tasks(split) if t.params["family"] == family
        ][:instances]
        seconds: list[float] = []
        moves: list[int] = []
        states: list[int] = []
        replaced = 0
        for seed in seeds:
            started = time.perf_counter()
            generate(family, seed)
            generate_only.append(time.perf_counter() - started)
            started = time.process_time()
            _level, entry = find_level(family, seed)
            seconds.append(time.process_time() - started)
            moves.append(entry.optimal_steps)
            states.append(entry.states)
            replaced += len(entry.rejected)
        all_seconds.extend(seconds)
        print(
            f"{family:<61} {len(seeds):>5} {statistics.median(seconds):>9.3f} {max(seconds):>7.2f} "
            f"{statistics.median(moves):>5.0f} {max(states):>10} {replaced:>8}"
        )
    print(
        f"\nall {len(all_seconds)} tasks: median {statistics.median(all_seconds):.3f} s, "
        f"p95 {percentile(all_seconds, 0.95):.2f} s, max {max(all_seconds):.2f} s, "
        f"total {sum(all_seconds):.1f} s; generation alone: median "
        f"{statistics.median(generate_only) * 1e6:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=5, help="tasks searched per family")
    parser.add_argument("--episodes", type=int, default=20, help="random episodes per family")
    parser.add_argument("--families", default="", help="comma-separated; default: all 40")
    parser.add_argument("--variant", choices=("balrog", "alma"), default="balrog")
    parser.add_argument("--fresh", action="store_true", help="balrog: solve every level again")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f] or list(FAMILIES)
    unknown = set(families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    print(f"load average {os.getloadavg()[0]:.1f}; times are process CPU time where noted")
    domain = BabaIsAIDomain(variant=args.variant)
    if args.variant == "balrog":
        balrog_step_times(domain, families, args.episodes)
        balrog_solvable(domain, families, args.fresh)
        return
    step_times(domain, families, args.episodes)
    solve_times(domain, families, args.instances)


if __name__ == "__main__":
    main()

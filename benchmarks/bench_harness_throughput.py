"""Harness throughput: how close concurrent rollouts come to the ideal rate.

The acting agent plays toy episodes with a scripted model that sleeps a fixed latency per call
and then takes the first admissible action (a policy of constant cost, so the model double's
own computing does not count against the harness), so a perfect harness finishes
``concurrency / (steps x latency)`` episodes a second. Two
measurements, side by side:

1. rollouts through the local executor (``--episodes`` episodes, ``--concurrency`` at once);
2. the whole evaluation protocol (build, updates, deploy x3) on ``--tasks`` tasks with
   ``trajectory_retrieval``, where phase boundaries leave some slots idle.

Target: measured / ideal >= 0.9 for the rollouts.

    .venv/bin/python benchmarks/bench_harness_throughput.py [--latency 0.02] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from alma.agent.actor import Actor
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.jobs import EpisodeJob, LocalExecutor
from alma.evaluate.protocol import Evaluator
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM, first_action_policy
from alma.memory.loading import reference_design
from alma.memory.runner import CallResult
from alma.run import Run
from alma.types import EpisodeStart

TARGET = 0.9


class _Lane:
    """The acting agent, lent to the executor; these episodes have no memory."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    async def retrieve(self, memory: str, start: EpisodeStart) -> CallResult:
        raise AssertionError("no episode here reads a memory")


async def rollouts(episodes: int, concurrency: int, latency: float) -> float:
    domain = ToyDomain()
    tasks = list(domain.tasks("eval_out_of_distribution"))
    actor = Actor(
        Metered(ScriptedLLM(first_action_policy, latency_s=latency), Ledger(), "agent"), domain
    )
    executor = LocalExecutor(concurrency)
    executor.open("bench", _Lane(actor))
    jobs = [EpisodeJob("bench", tasks[i % len(tasks)], "build", 0, i) for i in range(episodes)]
    started = time.perf_counter()
    played = [result.episode for result in await asyncio.gather(*map(executor.run, jobs))]
    elapsed = time.perf_counter() - started
    steps = sum(max(1, e.outcome.steps) for e in played) / len(played)
    ideal = concurrency / (steps * latency)
    measured = episodes / elapsed
    print(
        f"rollouts : {episodes} episodes, {steps:.1f} steps each, concurrency {concurrency}, "
        f"latency {latency * 1000:.0f} ms"
    )
    ratio = measured / ideal
    print(f"           measured {measured:.2f} episodes/s, ideal {ideal:.2f}, ratio {ratio:.3f}")
    return ratio


async def protocol(
    tasks: int, concurrency: int, latency: float, design: str, evaluations: int = 1
) -> float:
    """``evaluations`` evaluations of ``design`` at once (seeds 0, 1, ...) sharing one
    executor's ``concurrency`` slots, as the search's children do."""
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": "scripted", "embedder": "hash"},
                "eval": {
                    "tasks": tasks,
                    "max_episodes_concurrency": concurrency,
                    "max_retrieve_concurrency": concurrency,
                },
            },
            cwd=Path(folder),
        )
        async with Run(config, Path(folder) / "run") as run:
            run.models.register("scripted", ScriptedLLM(first_action_policy, latency_s=latency))
            evaluator = Evaluator(run, ToyDomain())
            splits = ["train", "eval_in_distribution", "eval_out_of_distribution"]
            started = time.perf_counter()
            results = await asyncio.gather(
                *(
                    evaluator.evaluate(reference_design(design), splits[i % len(splits)])
                    for i in range(evaluations)
                )
            )
            elapsed = time.perf_counter() - started
    episodes = sum(result.n_episodes for result in results)
    calls = sum(result.usage["agent"]["calls"] for result in results)
    steps = calls / episodes
    ideal = concurrency / (steps * latency)
    measured = episodes / elapsed
    memory_calls = sum(result.usage.get("memory", {}).get("calls", 0) for result in results)
    print(
        f"protocol : {design}, {evaluations} evaluation(s) at once, {episodes} episodes "
        f"({tasks} tasks each, build + deploy x3), {steps:.1f} steps each, "
        f"{memory_calls} memory model calls"
    )
    ratio = measured / ideal
    print(f"           measured {measured:.2f} episodes/s, ideal {ideal:.2f}, ratio {ratio:.3f}")
    return ratio


async def main(args: argparse.Namespace) -> int:
    ratio = await rollouts(args.episodes, args.concurrency, args.latency)
    for design, evaluations in [
        ("trajectory_retrieval", 1),
        ("reasoning_bank", 1),  # its update calls the memory model
        ("trajectory_retrieval", 3),
    ]:
        await protocol(args.tasks, args.concurrency, args.latency, design, evaluations)
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"target: rollout ratio >= {TARGET}: {verdict} ({ratio:.3f})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=320)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--tasks", type=int, default=50)
    raise SystemExit(asyncio.run(main(parser.parse_args())))

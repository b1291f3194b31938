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
from alma.evaluate.executor import LocalExecutor
from alma.evaluate.protocol import Evaluator
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM, first_action_policy
from alma.memory.loading import reference_design
from alma.run import Run

TARGET = 0.9


async def rollouts(episodes: int, concurrency: int, latency: float) -> float:
    domain = ToyDomain()
    tasks = list(domain.tasks("eval_out_of_distribution"))
    actor = Actor(
        Metered(ScriptedLLM(first_action_policy, latency_s=latency), Ledger(), "agent"), domain
    )
    executor = LocalExecutor(concurrency)
    started = time.perf_counter()
    played = await asyncio.gather(
        *(executor.run(actor, tasks[i % len(tasks)], recall=None, seed=i) for i in range(episodes))
    )
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


async def protocol(tasks: int, concurrency: int, latency: float) -> float:
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
            started = time.perf_counter()
            result = await evaluator.evaluate(reference_design("trajectory_retrieval"), "train")
            elapsed = time.perf_counter() - started
    calls = result.usage["agent"]["calls"]
    steps = calls / result.n_episodes
    ideal = concurrency / (steps * latency)
    measured = result.n_episodes / elapsed
    print(
        f"protocol : {result.n_episodes} episodes ({tasks} tasks, build + deploy x3), "
        f"{steps:.1f} steps each"
    )
    ratio = measured / ideal
    print(f"           measured {measured:.2f} episodes/s, ideal {ideal:.2f}, ratio {ratio:.3f}")
    return ratio


async def main(args: argparse.Namespace) -> int:
    ratio = await rollouts(args.episodes, args.concurrency, args.latency)
    await protocol(args.tasks, args.concurrency, args.latency)
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

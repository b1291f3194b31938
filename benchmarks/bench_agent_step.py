"""Agent overhead per step: the acting agent on the toy domain with the scripted model.

Prints the median and p95 wall time per step of whole episodes (agent + metering + scripted
model + environment), and, side by side, the time spent inside the model and the environment,
so the agent's own share is visible. Target: median under 2 ms a step.

    .venv/bin/python benchmarks/bench_agent_step.py [--episodes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from alma.agent.actor import Actor
from alma.domains.toy import ToyDomain
from alma.llm.cache import CachedLLM
from alma.llm.ledger import Ledger, Metered
from alma.llm.scripted import ScriptedLLM
from alma.types import Completion, Message


class Timed:
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(episodes: int) -> None:
    domain = ToyDomain()
    tasks = list(domain.tasks("train")) + list(domain.tasks("eval_out_of_distribution"))
    per_step: list[float] = []
    model_share: list[float] = []
    total_steps = 0
    for index in range(episodes):
        timed = Timed(ScriptedLLM())
        actor = Actor(Metered(CachedLLM(timed, None), Ledger(), "agent"), domain)
        started = time.perf_counter()
        episode = await actor.run(tasks[index % len(tasks)])
        elapsed = time.perf_counter() - started
        steps = max(1, episode.outcome.steps)
        total_steps += steps
        per_step.append(elapsed / steps * 1000)
        model_share.append(timed.seconds / steps * 1000)
    median = statistics.median(per_step)
    print(f"episodes: {episodes}, steps: {total_steps}")
    p95 = percentile(per_step, 0.95)
    print(f"per step, whole agent loop : median {median:.3f} ms, p95 {p95:.3f} ms")
    print(f"per step, inside the model : median {statistics.median(model_share):.3f} ms")
    print(f"per step, agent + env      : median {median - statistics.median(model_share):.3f} ms")
    print(f"target median < 2 ms: {'PASS' if median < 2.0 else 'FAIL'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    asyncio.run(main(parser.parse_args().episodes))

"""Agent overhead per step: the acting agent on the toy domain with the scripted model.

Prints the median and p95 wall time per step of whole episodes (agent + metering + scripted
model + environment), and, side by side, the time spent inside the model and the environment,
so the agent's own share is visible. Target: median under 2 ms a step.

    .venv/bin/python benchmarks/bench_agent_step.py [--episodes 200]
"""

from __future__ import annotations

import argparse
import asyncio

from agent_timing import agent_overhead
from alma.domains.toy import ToyDomain


async def main(episodes: int) -> None:
    domain = ToyDomain()
    tasks = list(domain.tasks("train")) + list(domain.tasks("eval_out_of_distribution"))
    medians = await agent_overhead(domain, tasks, episodes)
    print(f"target median < 2 ms: {'PASS' if medians['loop'] < 2.0 else 'FAIL'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    asyncio.run(main(parser.parse_args().episodes))

"""The search loop's own cost, and the meta agent's tokens per step.

Runs ``alma learn`` on the toy domain with fixed-latency scripted models (one parent per
iteration, so nothing overlaps and times add up) and splits the wall time into: evaluations
(model calls and environment steps, through the harness), meta-model calls, verification
(static checks and the sandbox smoke run), and what is left: the loop's own bookkeeping
(selection, archive writes, prompt building, episode sampling). Target: the loop's own cost per
evaluated design under 1% of an evaluation's time. Then prints tokens per meta step by stage,
from the ledger.

    .venv/bin/python benchmarks/bench_learn.py [--iterations 4] [--latency 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.protocol import Evaluator
from alma.run import Run
from alma.search import loop as search_loop
from alma.search.loop import Learner

TARGET = 0.01


class Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def wrap(self, name: str, function: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.counts[name] = self.counts.get(name, 0) + 1

        return timed


async def main(iterations: int, latency: float) -> int:
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {
                    "agent": f"scripted@{latency}",
                    "meta": f"scripted@{latency}",
                    "embedder": "hash",
                },
                "learn": {"iterations": iterations, "parents_per_iteration": 1, "quick": True},
                "run": {"root": folder},
            },
            cwd=Path(folder),
        )
        async with Run(config, Path(folder) / "run") as run:
            evaluator = Evaluator(run, ToyDomain())
            evaluator.evaluate = clock.wrap("evaluation", evaluator.evaluate)  # type: ignore[method-assign]
            learner = Learner(run, ToyDomain(), evaluator=evaluator)
            for stage, llm in learner.meta_llms.items():
                llm.complete = clock.wrap(f"meta {stage}", llm.complete)  # type: ignore[method-assign]
            search_loop.check_design = clock.wrap("verification", search_loop.check_design)
            started = time.perf_counter()
            await learner.learn()
            total = time.perf_counter() - started
            rows = run.store.query(
                "SELECT scope, COUNT(*) n, AVG(prompt_tokens) p, AVG(completion_tokens) c "
                "FROM llm_calls WHERE purpose='meta' GROUP BY scope ORDER BY scope"
            )
    accounted = sum(clock.seconds.values())
    loop_own = total - accounted
    evaluations = clock.counts.get("evaluation", 1)
    per_eval = clock.seconds.get("evaluation", 0.0) / evaluations
    share = (loop_own / evaluations) / per_eval
    print(
        f"alma learn, {iterations} iterations, 1 parent each, "
        f"scripted latency {latency * 1000:.0f} ms"
    )
    print(f"  total wall time        : {total:.2f} s")
    for name in sorted(clock.seconds):
        print(f"  {name:<23}: {clock.seconds[name]:.2f} s over {clock.counts[name]} calls")
    per_design_ms = loop_own / evaluations * 1000
    print(f"  loop's own             : {loop_own:.3f} s ({per_design_ms:.1f} ms per design)")
    print(f"  per evaluation         : {per_eval:.2f} s -> loop's own share {share * 100:.2f}%")
    print("meta tokens per call, by stage (scripted meta model: estimated tokens)")
    for row in rows:
        print(
            f"  {row['scope']:<20} {row['n']:>3} calls, "
            f"prompt {row['p']:>8.0f}, completion {row['c']:>6.0f}"
        )
    verdict = "PASS" if share < TARGET else "FAIL"
    print(f"target: loop's own cost < {TARGET * 100:.0f}% of an evaluation: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.iterations, args.latency)))

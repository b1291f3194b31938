"""Retrieval time against memory size, for ``trajectory_retrieval`` and ``reasoning_bank``.

Each design is filled through its own ``update`` (hash embedder, a scripted memory model that
answers instantly) to 1k, 10k and 100k stored items, and at each size the median and p95 time of
``retrieve`` is measured over fresh queries. Stored items are embedded once at insert time, so a
retrieve costs one query embedding plus one exact cosine search over the store.

Targets: median retrieve under 10 ms at 10k items and under 50 ms at 100k.

    .venv/bin/python benchmarks/bench_retrieval.py [--sizes 1000,10000,100000] [--queries 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import ScriptedLLM
from alma.memory.baselines import load_baseline
from alma.memory.toolkit import ModelServices, Toolkit
from alma.types import Episode, EpisodeStart, Message, Outcome, Step

WORDS = (  # noqa: SIM905
    "red blue green key door chest lamp coin kitchen hall garden cellar attic north south east "
    "west open take drop locked golden silver bronze statue book map rope ladder torch"
).split()


def memory_answers(messages: Sequence[Message], schema: type[BaseModel] | None) -> Any:
    """Instant answers for the designs' schemas: a verdict, three distilled items."""
    name = schema.__name__ if schema is not None else ""
    if name == "Verdict":
        return {"reasoning": "the goal was reached", "verdict": "success"}
    if name == "Distilled":
        text = messages[-1].content[-200:]
        return {
            "items": [
                {"title": f"tip {i}", "description": "what worked", "content": f"{text} {i}"}
                for i in range(3)
            ]
        }
    return "ok"


def episode(index: int) -> Episode:
    words = [WORDS[(index * 7 + k * 13) % len(WORDS)] for k in range(6)]
    task = f"Find the {words[0]} {words[1]} in the {words[2]} and take it. ({index})"
    start = EpisodeStart("toy", task, f"You are in the {words[3]}. Exits: {words[4]}.")
    steps = tuple(Step(f"obs {k}", "", f"go {words[k % 6]} {index % (k + 2)}") for k in range(5))
    return Episode(start, steps, Outcome(index % 2 == 0, float(index % 2 == 0), len(steps)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(name: str, sizes: list[int], queries: int) -> dict[int, float]:
    services = ModelServices(ScriptedLLM(memory_answers), HashEmbedder())
    design = load_baseline(name)(Toolkit(services, seed=0))
    items_per_update = 3 if name == "reasoning_bank" else 1
    medians: dict[int, float] = {}
    stored = 0
    fill_started = time.perf_counter()
    for size in sizes:
        while stored < size:
            await design.update(episode(stored // items_per_update))
            stored += items_per_update
        times = []
        for q in range(queries):
            probe = episode(10_000_000 + q).start
            started = time.perf_counter()
            result = await design.retrieve(probe)
            times.append((time.perf_counter() - started) * 1000)
            assert result, "retrieve returned nothing"
        medians[size] = statistics.median(times)
        filled = time.perf_counter() - fill_started
        print(
            f"{name:<22} {size:>7,} items: retrieve median {medians[size]:7.2f} ms, "
            f"p95 {percentile(times, 0.95):7.2f} ms   (filled in {filled:.0f} s)"
        )
    return medians


async def main(sizes: list[int], queries: int) -> int:
    ok = True
    results = {}
    for name in ("trajectory_retrieval", "reasoning_bank"):
        results[name] = await measure(name, sizes, queries)
    for name, medians in results.items():
        if len(medians) > 1:
            first, last = min(medians), max(medians)
            growth = medians[last] / max(medians[first], 1e-9)
            print(f"{name}: x{last // first} items -> x{growth:.1f} retrieve time")
        ok &= medians.get(10_000, 0.0) < 10 and medians.get(100_000, 0.0) < 50
    print(f"targets: median < 10 ms at 10k, < 50 ms at 100k: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    raise SystemExit(asyncio.run(main(sizes, args.queries)))

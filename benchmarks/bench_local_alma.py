"""The embedded model through alma, side by side with the same server called directly.

1. Throughput: the same prompts sent to one llama.cpp server through alma's whole model layer
   (``Metered(CachedLLM(LocalLLM → OpenAIProvider))``, cache off) and through a bare
   ``AsyncOpenAI`` client, alternating; prompt tokens/s (long prompts, one token out) and
   generation tokens/s (short prompts, long answers). Target: alma / direct >= 0.9.
2. Prompt cache: one toy episode of up to 20 steps with the acting agent; prompt tokens sent vs
   tokens the server actually processed (the rest came from its prompt cache).
3. Peak resident memory of this process (the server runs inside it).

    .venv/bin/python benchmarks/bench_local_alma.py [--model local] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from alma.agent.actor import Actor
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.llm.local import LocalLLM
from alma.run import Run
from alma.types import Message

WORDS = "kitchen hall key door lamp table chest garden north south coin rope map".split()  # noqa: SIM905


def long_prompt(index: int, words: int = 900) -> str:
    text = " ".join(WORDS[(index * 7 + i * 3) % len(WORDS)] for i in range(words))
    return f"Round {index}. Read this and answer with one word.\n{text}"


async def throughput(run: Run, spec: str, rounds: int) -> tuple[float, float]:
    llm = run.models.llm(spec, "agent")
    await llm.complete([Message("user", "Say hi.")], max_tokens=4)  # starts the server
    inner = run.models._providers[spec]
    assert isinstance(inner, LocalLLM) and inner.server is not None
    server = inner.server
    direct = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    rates: dict[str, list[float]] = {
        "alma prompt": [],
        "direct prompt": [],
        "alma gen": [],
        "direct gen": [],
    }

    async def via_alma(text: str, tokens: int) -> tuple[int, int, float]:
        started = time.perf_counter()
        done = await llm.complete([Message("user", text)], max_tokens=tokens, temperature=0.7)
        return done.usage.prompt_tokens, done.usage.completion_tokens, time.perf_counter() - started

    async def via_direct(text: str, tokens: int) -> tuple[int, int, float]:
        started = time.perf_counter()
        done = await direct.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": text}],
            max_tokens=tokens,
            temperature=0.7,
        )
        usage = done.usage
        assert usage is not None
        return usage.prompt_tokens, usage.completion_tokens, time.perf_counter() - started

    for index in range(rounds):
        order = [("alma", via_alma), ("direct", via_direct)]
        if index % 2:
            order.reverse()
        for offset, (name, call) in enumerate(order):
            prompt_tokens, _, seconds = await call(long_prompt(2 * index + offset), 1)
            rates[f"{name} prompt"].append(prompt_tokens / seconds)
            _, generated, seconds = await call(f"Write a long story about a {WORDS[index]}.", 128)
            rates[f"{name} gen"].append(generated / seconds)
    await direct.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for kind in ("prompt", "gen"):
        alma_rate, direct_rate = medians[f"alma {kind}"], medians[f"direct {kind}"]
        label = "prompt" if kind == "prompt" else "generation"
        print(
            f"{label:<10} tokens/s: alma {alma_rate:7.1f}, direct {direct_rate:7.1f}, "
            f"ratio {alma_rate / direct_rate:.3f}"
        )
    return medians["alma prompt"] / medians["direct prompt"], medians["alma gen"] / medians[
        "direct gen"
    ]


async def episode(run: Run, spec: str) -> None:
    domain = ToyDomain()
    actor = Actor(run.models.llm(spec, "agent"), domain, temperature=0.7)
    task = domain.tasks("eval_out_of_distribution")[0]
    started = time.perf_counter()
    played = await actor.run(task, seed=1)
    seconds = time.perf_counter() - started
    rows = run.store.query(
        "SELECT prompt_tokens p, cached_tokens c FROM llm_calls WHERE purpose='agent' "
        "ORDER BY id DESC LIMIT ?",
        (played.outcome.steps,),
    )
    sent = sum(row["p"] for row in rows)
    processed = sum(row["p"] - row["c"] for row in rows)
    print(
        f"episode   : {played.outcome.steps} steps in {seconds:.0f} s; "
        f"prompt tokens sent {sent:,}, "
        f"processed {processed:,} ({100 * (1 - processed / max(1, sent)):.0f}% from the cache, "
        f"{sent / max(1, processed):.1f}x less prompt work)"
    )


async def main(spec: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": spec},
                "llm": {"cache": False},
                "agent": {"max_tokens": 256},
            },
            cwd=Path(folder),
        )
        # a toy episode of at most 20 steps
        ToyDomain.step_limit = 20
        async with Run(config, Path(folder) / "run") as run:
            prompt_ratio, gen_ratio = await throughput(run, spec, rounds)
            await episode(run, spec)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS  : {peak_mb:,.0f} MB (this process, server included)")
    ok = prompt_ratio >= 0.9 and gen_ratio >= 0.9
    print(f"target: alma / direct >= 0.9 for both: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--rounds", type=int, default=3)
    args: Any = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.model, args.rounds)))

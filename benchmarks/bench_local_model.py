"""Throughput of the embedded model server, through its OpenAI-compatible HTTP API.

For each model: start-up time, prompt processing and generation speed (tokens/s, from
llama.cpp's own timings), what the prompt cache saves on the next step of a conversation,
the combined generation speed of concurrent requests, and the process's peak RSS.

    .venv/bin/python benchmarks/bench_local_model.py [--models local local-small] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from typing import Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from alma.llm.local_server import LocalServer
from alma.llm.weights import resolve_model_path

FILLER = (
    "You are in the kitchen. There is a fridge, a counter with a knife and an apple, "
    "a stove, and a door to the north leading to the hallway. "
)


def timings(answer: ChatCompletion) -> dict[str, float]:
    extra = answer.model_extra or {}
    found = extra.get("timings", {})
    return {key: float(value) for key, value in found.items()} if isinstance(found, dict) else {}


async def ask(
    llm: AsyncOpenAI, model: str, messages: list[ChatCompletionMessageParam], max_tokens: int
) -> tuple[ChatCompletion, float]:
    started = time.perf_counter()
    answer = await llm.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0
    )
    return answer, time.perf_counter() - started


async def measure(server: LocalServer, concurrency: int, repeats: int) -> dict[str, Any]:
    llm = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    model = server.model
    await ask(llm, model, [{"role": "user", "content": "Hello."}], 4)  # warm-up
    # prompt processing: a long prompt that starts differently each time, one token out
    prompt_speeds: list[float] = []
    long_prompt: list[ChatCompletionMessageParam] = []
    for i in range(repeats):
        long_prompt = [
            {"role": "system", "content": f"Game {i}. You play text adventures. " + FILLER * 30},
            {"role": "user", "content": "What do you do first? Answer in one short sentence."},
        ]
        answer, _ = await ask(llm, model, long_prompt, 1)
        prompt = timings(answer)
        prompt_speeds.append(prompt.get("prompt_per_second", 0.0))
    # generation: a short prompt, many tokens out
    generation_speeds: list[float] = []
    for i in range(repeats):
        request = f"Write a long Python function number {i} that parses a CSV file."
        answer, _ = await ask(llm, model, [{"role": "user", "content": request}], 256)
        generation = timings(answer)
        generation_speeds.append(generation.get("predicted_per_second", 0.0))
    # the next step of a conversation: only the new tokens are processed
    step2: list[ChatCompletionMessageParam] = [
        *long_prompt,
        {"role": "assistant", "content": "I open the fridge."},
        {"role": "user", "content": "The fridge is empty. What next? One short sentence."},
    ]
    answer2, seconds2 = await ask(llm, model, step2, 1)
    cached = timings(answer2)
    # concurrent generation, one request per slot
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(
            ask(llm, model, [{"role": "user", "content": f"Count from {i} to {i + 200}."}], 128)
            for i in range(concurrency)
        )
    )
    wall = time.perf_counter() - started
    generated = sum(a.usage.completion_tokens for a, _ in answers if a.usage is not None)
    return {
        "prompt_tokens": int(prompt.get("prompt_n", 0)),
        "prompt_tokens_per_s": round(statistics.median(prompt_speeds), 1),
        "generated_tokens": int(generation.get("predicted_n", 0)),
        "generation_tokens_per_s": round(statistics.median(generation_speeds), 1),
        "next_step_cached_tokens": int(cached.get("cache_n", 0)),
        "next_step_new_tokens": int(cached.get("prompt_n", 0)),
        "next_step_seconds": round(seconds2, 3),
        "concurrent_requests": concurrency,
        "concurrent_generation_tokens_per_s": round(generated / wall, 1),
    }


def bench(name: str, concurrency: int | None, repeats: int) -> dict[str, Any]:
    path = resolve_model_path(name)
    server = LocalServer(path, alias=name)
    started = time.perf_counter()
    with server:
        startup = time.perf_counter() - started
        result = asyncio.run(measure(server, concurrency or server.n_parallel, repeats))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name,
        "file": path.name,
        **server.describe(),
        "startup_s": round(startup, 2),
        **result,
        "peak_rss_mb_so_far": round(peak_rss_mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["local-small", "local"])
    parser.add_argument("--concurrency", type=int, default=None, help="default: one per slot")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()
    for name in args.models:
        result = bench(name, args.concurrency, args.repeats)
        if args.json:
            print(json.dumps(result))
            continue
        print(f"{name} ({result['file']}): started in {result['startup_s']}s")
        print(
            f"  prompt     {result['prompt_tokens_per_s']:>7} tokens/s "
            f"({result['prompt_tokens']} tokens)"
        )
        print(
            f"  generation {result['generation_tokens_per_s']:>7} tokens/s "
            f"({result['generated_tokens']} tokens)"
        )
        print(
            f"  next step  {result['next_step_cached_tokens']} tokens from cache, "
            f"{result['next_step_new_tokens']} new, {result['next_step_seconds']}s"
        )
        print(
            f"  {result['concurrent_requests']} concurrent: "
            f"{result['concurrent_generation_tokens_per_s']} tokens/s together"
        )
        print(f"  peak RSS so far {result['peak_rss_mb_so_far']} MB")


if __name__ == "__main__":
    main()

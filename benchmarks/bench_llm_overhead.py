"""Per-call overhead of ``OpenAIProvider`` over the bare ``AsyncOpenAI`` call.

Both paths talk to the same in-process fake transport (``httpx2.MockTransport``, the HTTP library
the installed openai SDK is built on, passed as ``http_client``), so no network or server is
involved. For every call the time spent inside the transport handler is subtracted; what is left
is client-side work: the SDK's, plus, for the provider, alma's own (options, semaphore, retry
loop, answer reading). Calls of the two paths are interleaved so drift affects both alike. The
provider runs as the factory builds it, with a per-endpoint semaphore. A second pair of rows does
the same with a schema (native ``json_schema`` output, validated with pydantic on both paths).

A third pair measures the whole layer a run builds, ``Metered(CachedLLM(provider))`` with the
ledger writing every call to a run database, on calls that miss the cache (temperature 0.7, no
seed); a last line times cache hits of the same stack.

Targets: median of alma's own overhead (whole layer minus bare SDK) under 0.5 ms; a cache hit
under 1 ms.

    .venv/bin/python benchmarks/bench_llm_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from alma.llm.cache import CachedLLM, ResponseCache
from alma.llm.ledger import Ledger, Metered
from alma.llm.openai_provider import OpenAIProvider, json_schema_format
from alma.store import RunStore
from alma.types import Message

TARGET_MS = 0.5
HIT_TARGET_MS = 1.0
WARMUP = 200
MODEL = "bench-model"
MESSAGES = [
    Message("system", "You play text games. Answer with one action."),
    Message("user", "You are in a kitchen. Exits: north, east. You see a fridge."),
]


class Move(BaseModel):
    action: str
    confidence: float


class FakeTransport:
    """A canned chat completion; adds up the seconds spent answering."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.text = "go north"

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        asked = json.loads(request.content)
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": asked["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 42,
                "completion_tokens": 3,
                "total_tokens": 45,
                "prompt_tokens_details": {"cached_tokens": 32},
            },
        }
        response = httpx2.Response(200, json=body)
        self.seconds += time.perf_counter() - started
        return response

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


Call = Callable[[], Awaitable[Any]]


async def timed_ms(call: Call, transport: FakeTransport) -> float:
    """Wall time of one call minus the transport handler's time, in ms."""
    handler_before = transport.seconds
    started = time.perf_counter()
    await call()
    elapsed = time.perf_counter() - started
    return (elapsed - (transport.seconds - handler_before)) * 1000


async def measure(
    calls: int, sdk: Call, alma: Call, transport: FakeTransport
) -> dict[str, list[float]]:
    for _ in range(WARMUP):
        await sdk()
        await alma()
    samples: dict[str, list[float]] = {"sdk": [], "alma": []}
    gc.collect()
    for index in range(calls):
        order = (("sdk", sdk), ("alma", alma)) if index % 2 else (("alma", alma), ("sdk", sdk))
        for name, call in order:
            samples[name].append(await timed_ms(call, transport))
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(
    title: str, samples: dict[str, list[float]], label: str = "OpenAIProvider.complete"
) -> float:
    sdk, alma = samples["sdk"], samples["alma"]
    overhead = statistics.median(alma) - statistics.median(sdk)
    p95_overhead = percentile(alma, 0.95) - percentile(sdk, 0.95)
    print(f"{title}")
    print(
        f"  bare SDK create          : median {statistics.median(sdk):.3f} ms, "
        f"p95 {percentile(sdk, 0.95):.3f} ms"
    )
    print(
        f"  {label:<25}: median {statistics.median(alma):.3f} ms, "
        f"p95 {percentile(alma, 0.95):.3f} ms"
    )
    print(f"  alma's own overhead      : median {overhead:+.3f} ms, p95 {p95_overhead:+.3f} ms")
    return overhead


async def main(calls: int) -> int:
    transport = FakeTransport()
    sdk_client = AsyncOpenAI(
        api_key="k",
        base_url="http://bench.invalid/v1",
        max_retries=0,
        http_client=transport.client(),
    )
    provider = OpenAIProvider(
        MODEL,
        base_url="http://bench.invalid/v1",
        api_key="k",
        semaphore=asyncio.Semaphore(16),
        http_client=transport.client(),
    )
    wire = cast("list[ChatCompletionMessageParam]", [m.as_openai() for m in MESSAGES])
    response_format: Any = json_schema_format(Move)

    async def sdk_plain() -> Any:
        return await sdk_client.chat.completions.create(model=MODEL, messages=wire)

    async def sdk_schema() -> Any:
        response = await sdk_client.chat.completions.create(
            model=MODEL,
            messages=wire,
            response_format=response_format,
        )
        return Move.model_validate_json(response.choices[0].message.content or "")

    async def alma_plain() -> Any:
        return await provider.complete(MESSAGES)

    async def alma_schema() -> Any:
        return await provider.complete(MESSAGES, schema=Move)

    workdir = Path(tempfile.mkdtemp(prefix="alma-bench-"))
    store = RunStore(workdir / "run")
    cache = ResponseCache(workdir / "cache.sqlite")
    layer = Metered(CachedLLM(provider, cache), Ledger(store=store), "agent")

    async def layer_miss() -> Any:
        return await layer.complete(MESSAGES, schema=Move, temperature=0.7)

    async def layer_hit() -> Any:
        return await layer.complete(MESSAGES, schema=Move, temperature=0.0)

    print(
        f"alma LLM call overhead: {calls} calls per path after {WARMUP} warm-up calls, "
        f"openai {openai.__version__}, in-process httpx2.MockTransport"
    )
    print("  (times are per call, minus the time spent in the fake transport handler)")
    try:
        plain = report("plain text answer", await measure(calls, sdk_plain, alma_plain, transport))
        transport.text = '{"action": "go north", "confidence": 0.9}'
        schema = report(
            "schema answer (json_schema + pydantic validation on both paths)",
            await measure(calls, sdk_schema, alma_schema, transport),
        )
        whole = report(
            "whole layer: Metered(CachedLLM(provider)) + ledger rows, cache misses, schema",
            await measure(calls, sdk_schema, layer_miss, transport),
            label="whole layer",
        )
        await layer_hit()  # fills the cache
        hits = [await timed_ms(layer_hit, transport) for _ in range(calls)]
        hit_median = statistics.median(hits)
        print(
            f"  cache hit (whole layer)  : median {hit_median:.3f} ms, "
            f"p95 {percentile(hits, 0.95):.3f} ms"
        )
    finally:
        await provider.close()
        await sdk_client.close()
        store.close()
        cache.close()
        shutil.rmtree(workdir, ignore_errors=True)
    worst = max(plain, schema, whole)
    verdict = "PASS" if worst < TARGET_MS and hit_median < HIT_TARGET_MS else "FAIL"
    print(
        f"targets: alma's own median overhead < {TARGET_MS} ms (worst {worst:+.3f} ms), "
        f"cache hit < {HIT_TARGET_MS} ms ({hit_median:.3f} ms): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    raise SystemExit(asyncio.run(main(parser.parse_args().calls)))

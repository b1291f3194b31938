"""Client-side cost of one model call, by conversation length: the SDK's create() against alma.

Every path talks to the same in-process fake transport (``httpx2.MockTransport``, the HTTP
library the installed openai SDK is built on, passed as ``http_client``), so no network or
server is involved. For every call the time spent inside the transport handler is subtracted;
what is left is client-side work, measured twice: as wall time, and as the CPU time of the
calling thread (everything here runs on that one thread, the event loop's; on a machine shared
with other work the CPU time is the steadier measure, and on a quiet one the two agree). Calls
run in blocks of 25 of one path, the paths' blocks interleaved, so that drift affects all paths
alike while no call pays for the processor caches another path has just churned through.

Conversations are ALFWorld-shaped (a long system prompt, the first observation, then answer /
observation pairs, the admissible actions in the newest turn) with 2, 22 and 60 messages, and
every call asks for a schema (native ``json_schema`` output, validated with pydantic), as the
acting agent's calls do. The paths, side by side for each length:

- ``SDK create()``: the bare ``AsyncOpenAI.chat.completions.create()`` and a pydantic check;
- ``create() layer``: the whole layer a run builds, ``Metered(CachedLLM(provider))`` with the
  ledger writing every call to a run database, with the provider sending each request through
  the SDK's ``create()`` as it first did (kept here only, to show the difference);
- ``post() layer``: the same stack as it was next: the body written by ``json.dumps`` and posted
  through the SDK's ``post()`` (which builds the whole request on every call), the cache key
  hashed from a JSON rendering of the call (kept here only, to show the difference);
- ``new layer``: the same stack on :class:`OpenAIProvider` and :class:`CachedLLM` as they are;
- ``new provider``: ``OpenAIProvider.complete`` alone.

The layers' calls are those of an acting agent: a seed per call (so each call is looked up in
the response cache, misses, and is written to it) and a sampling temperature. A last line times
cache hits of the new layer on the longest conversation.

Targets: the new layer's median under 0.5 ms at every length (a PASS / FAIL line for each); a
cache hit under 1 ms (judged on the ``--clock`` chosen, CPU time by default).

    .venv/bin/python benchmarks/bench_llm_overhead.py [--calls 1000] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import hashlib
import itertools
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
from alma.llm.chat_body import OpenAIMessage
from alma.llm.endpoint import REQUEST_OPTIONS
from alma.llm.ledger import Ledger, Metered
from alma.llm.openai_provider import CHAT_PATH, OpenAIProvider, _Answer, json_schema_format
from alma.store import RunStore
from alma.types import Message

TARGET_MS = 0.5
HIT_TARGET_MS = 1.0
WARMUP = 100
BLOCK = 25  # calls of one path in a row, the blocks of the paths interleaved
CLOCKS = ("wall", "cpu")
NAMES = ("SDK create()", "create() layer", "post() layer", "new layer", "new provider")
LENGTHS = (2, 22, 60)
MODEL = "bench-model"
URL = "http://bench.invalid/v1"
ANSWER = (
    '{"thought": "The mug may be in a cabinet; check the next one.", "action": "go to cabinet 2"}'
)
ROOM = ", ".join(f"a cabinet {n}" for n in range(20, 0, -1)) + ", a fridge 1, and a sinkbasin 1"
ACTIONS = "\n".join(f"- go to cabinet {n}" for n in range(1, 21))


class Move(BaseModel):
    thought: str
    action: str


def conversation(length: int) -> list[Message]:
    """``length`` messages (even): system, first observation, then answer / observation pairs."""
    system = "You are an agent playing a text-based game. " + "Rules of the household. " * 75
    first = f"Task: put a clean mug in fridge.\n\nStep 1 of 30.\nObservation:\nYou see {ROOM}."
    messages = [Message("system", system), Message("user", first)]
    for step in range(2, length // 2 + 1):
        messages.append(Message("assistant", ANSWER))
        seen = f"Step {step} of 30.\nObservation:\nYou arrive at cabinet {step}. It is closed."
        messages.append(Message("user", seen))
    last = messages[-1]
    messages[-1] = Message("user", f"{last.content}\n\nAdmissible actions:\n{ACTIONS}\n")
    return messages


class SdkCreateProvider(OpenAIProvider):
    """The provider as it was: every request through the SDK's ``chat.completions.create()``,
    which transforms the whole conversation on each call."""

    async def _chat(
        self, conversation: list[OpenAIMessage], options: dict[str, Any], *, gated: bool = True
    ) -> _Answer:
        sdk_options = {**options, "extra_body": self.extra_body} if self.extra_body else options

        async def send() -> bytes:
            response = await self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", conversation),
                **sdk_options,
            )
            content: bytes = response.content
            return content

        read = functools.partial(self._read, conversation, options)
        return await self._requests.request(send, read, gated=gated)


class SdkPostProvider(OpenAIProvider):
    """The provider as it was next: the body written by ``json.dumps`` and posted through the
    SDK's ``post()``, which builds the whole request (options, URL, headers) on every call."""

    async def _chat(
        self, conversation: list[OpenAIMessage], options: dict[str, Any], *, gated: bool = True
    ) -> _Answer:
        fields = {
            "model": self.model,
            "messages": conversation,
            **options,
            **(self.extra_body or {}),
        }
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

        async def send() -> bytes:
            response = await self._client.post(
                CHAT_PATH, cast_to=httpx2.Response, content=body.encode(), options=REQUEST_OPTIONS
            )
            content: bytes = response.content
            return content

        read = functools.partial(self._read, conversation, options)
        return await self._requests.request(send, read, gated=gated)


def json_cache_key(
    model: str,
    messages: list[Message],
    schema: type[BaseModel] | None,
    temperature: float | None,
    max_tokens: int | None,
    seed: int | None,
) -> str:
    """The response cache's key as it was: the sha256 of a canonical JSON rendering of the call."""
    payload = {
        "model": model,
        "messages": [[m.role, m.content] for m in messages],
        "schema": _schema_dict(schema) if schema is not None else None,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _schema_dict(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()


class JsonKeyCachedLLM(CachedLLM):
    key = staticmethod(json_cache_key)


class FakeTransport:
    """A canned chat completion; adds up the wall and CPU seconds spent answering."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        started, cpu_started = time.perf_counter(), time.thread_time()
        asked = json.loads(request.content)
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": asked["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
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
        self.cpu_seconds += time.thread_time() - cpu_started
        return response

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


Call = Callable[[], Awaitable[Any]]


async def timed_ms(call: Call, transport: FakeTransport) -> tuple[float, float]:
    """Wall and CPU time of one call minus the transport handler's, in ms."""
    handler, handler_cpu = transport.seconds, transport.cpu_seconds
    started, cpu_started = time.perf_counter(), time.thread_time()
    await call()
    cpu = time.thread_time() - cpu_started - (transport.cpu_seconds - handler_cpu)
    wall = time.perf_counter() - started - (transport.seconds - handler)
    return wall * 1000, cpu * 1000


Samples = dict[str, dict[str, list[float]]]  # clock -> path -> ms per call


async def measure(calls: int, paths: dict[str, Call], transport: FakeTransport) -> Samples:
    for _ in range(WARMUP):
        for call in paths.values():
            await call()
    samples: Samples = {clock: {name: [] for name in paths} for clock in CLOCKS}
    names = list(paths)
    gc.collect()
    for block in range(-(-calls // BLOCK)):
        shift = block % len(names)  # each path goes first as often as the others
        for name in names[shift:] + names[:shift]:
            for _ in range(min(BLOCK, calls - block * BLOCK)):
                wall, cpu = await timed_ms(paths[name], transport)
                samples["wall"][name].append(wall)
                samples["cpu"][name].append(cpu)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(length: int, chars: int, samples: dict[str, list[float]]) -> str:
    cells = "".join(
        f" {statistics.median(samples[name]):>7.3f} /{percentile(samples[name], 0.95):>6.3f}"
        for name in NAMES
    )
    new = statistics.median(samples["new layer"])
    ratios = "".join(
        f" {statistics.median(samples[name]) / new:>9.1f}x"
        for name in ("create() layer", "post() layer")
    )
    return f"  {length:>8} {chars:>6}{cells}{ratios}"


async def main(calls: int, clock: str) -> int:
    transport = FakeTransport()
    sdk_client = AsyncOpenAI(
        api_key="k", base_url=URL, max_retries=0, http_client=transport.client()
    )
    semaphore = asyncio.Semaphore(16)  # as the factory builds providers: one per endpoint
    new = OpenAIProvider(
        MODEL, base_url=URL, api_key="k", semaphore=semaphore, http_client=transport.client()
    )
    create = SdkCreateProvider(
        MODEL, base_url=URL, api_key="k", semaphore=semaphore, http_client=transport.client()
    )
    post = SdkPostProvider(
        MODEL, base_url=URL, api_key="k", semaphore=semaphore, http_client=transport.client()
    )
    response_format: Any = json_schema_format(Move)
    workdir = Path(tempfile.mkdtemp(prefix="alma-bench-"))
    store = RunStore(workdir / "run")
    cache = ResponseCache(workdir / "cache.sqlite")
    ledger = Ledger(store=store)
    layers = {
        "create() layer": Metered(JsonKeyCachedLLM(create, cache), ledger, "agent"),
        "post() layer": Metered(JsonKeyCachedLLM(post, cache), ledger, "agent"),
        "new layer": Metered(CachedLLM(new, cache), ledger, "agent"),
    }
    seeds = itertools.count()
    rows: dict[str, list[str]] = {clock: [] for clock in CLOCKS}
    new_layer: dict[str, dict[int, float]] = {clock: {} for clock in CLOCKS}
    try:
        for length in LENGTHS:
            messages = conversation(length)
            wire = cast("list[ChatCompletionMessageParam]", [m.as_openai() for m in messages])

            async def sdk(wire: Any = wire) -> Any:
                response = await sdk_client.chat.completions.create(
                    model=MODEL, messages=wire, response_format=response_format, temperature=0.7
                )
                return Move.model_validate_json(response.choices[0].message.content or "")

            def layer(name: str, messages: list[Message] = messages) -> Call:
                llm = layers[name]
                return lambda: llm.complete(
                    messages, schema=Move, temperature=0.7, seed=next(seeds), max_tokens=512
                )

            async def provider(messages: list[Message] = messages) -> Any:
                return await new.complete(messages, schema=Move, temperature=0.7, max_tokens=512)

            paths = {
                "SDK create()": sdk,
                "create() layer": layer("create() layer"),
                "post() layer": layer("post() layer"),
                "new layer": layer("new layer"),
                "new provider": provider,
            }
            samples = await measure(calls, paths, transport)
            chars = sum(len(m.content) for m in messages)
            for each in CLOCKS:
                rows[each].append(row(length, chars, samples[each]))
                new_layer[each][length] = statistics.median(samples[each]["new layer"])
        longest = conversation(LENGTHS[-1])
        hit_layer = layers["new layer"]

        def hit() -> Awaitable[Any]:
            return hit_layer.complete(longest, schema=Move, temperature=0.0)

        await hit()  # fills the cache
        hits = [await timed_ms(hit, transport) for _ in range(calls)]
    finally:
        await new.close()
        await create.close()
        await post.close()
        await sdk_client.close()
        store.close()
        cache.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"alma model-call cost: {calls} calls per path and length after {WARMUP} warm-up calls, "
        f"openai {openai.__version__}, in-process httpx2.MockTransport"
    )
    print("  ms per call, minus the time spent in the fake transport handler; median / p95")
    header = f"  {'messages':>8} {'chars':>6}" + "".join(f" {n:>15}" for n in NAMES)
    for each, title in (("wall", "wall time"), ("cpu", "CPU time of the calling thread")):
        print(f"{title}:")
        print(header + f" {'create/new':>10} {'post/new':>10}")
        print("\n".join(rows[each]))
    hit_medians = {
        each: statistics.median(sample[index] for sample in hits)
        for index, each in enumerate(CLOCKS)
    }
    print(
        f"cache hit, new layer, {LENGTHS[-1]} messages: median {hit_medians['wall']:.3f} ms wall, "
        f"{hit_medians['cpu']:.3f} ms CPU"
    )
    passed = True
    for length, median in new_layer[clock].items():
        verdict = "PASS" if median < TARGET_MS else "FAIL"
        passed = passed and median < TARGET_MS
        print(
            f"target ({clock} time), {length:>2} messages: new layer median {median:.3f} ms "
            f"< {TARGET_MS} ms: {verdict}"
        )
    hit_ok = hit_medians[clock] < HIT_TARGET_MS
    hit = hit_medians[clock]
    print(
        f"target ({clock} time), cache hit: median {hit:.3f} ms < {HIT_TARGET_MS} ms: "
        f"{'PASS' if hit_ok else 'FAIL'}"
    )
    return 0 if passed and hit_ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--clock", choices=CLOCKS, default="cpu", help="the targets' clock")
    arguments = parser.parse_args()
    raise SystemExit(asyncio.run(main(arguments.calls, arguments.clock)))

"""The OpenAI-compatible provider against a local fake server: answers, usage and every fault."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from alma.errors import (
    ConfigError,
    EndpointUnreachableError,
    LLMError,
    MalformedOutputError,
    UsageError,
)
from alma.llm.base import LLM
from alma.llm.openai_provider import OpenAIProvider, extract_json
from alma.llm.retry import BackoffPolicy, is_retryable_status, parse_retry_after
from alma.types import Message, Usage
from fake_openai import (
    FakeOpenAI,
    answer,
    embedding_vector,
    hang,
    malformed_json,
    rate_limited,
    reject_json_schema,
    server_error,
    status,
    unauthorized,
)

MESSAGES = [Message("system", "You play text games."), Message("user", "You are in a room.")]
VALID_MOVE = '{"action": "go north", "confidence": 0.9}'


class Move(BaseModel):
    action: str
    confidence: float


MakeProvider = Callable[..., OpenAIProvider]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def make(fake: FakeOpenAI) -> AsyncIterator[MakeProvider]:
    made: list[OpenAIProvider] = []

    def build(model: str = "test-model", **overrides: Any) -> OpenAIProvider:
        settings: dict[str, Any] = {
            "base_url": fake.base_url,
            "api_key": "sk-test",
            "timeout_s": 2.0,
            "max_retries": 2,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
        }
        settings.update(overrides)
        provider = OpenAIProvider(model, **settings)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- plain answers


async def test_answer_text_usage_cached_tokens_and_model(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(
        answer(
            "hello",
            prompt_tokens=120,
            completion_tokens=7,
            cached_tokens=64,
            model="test-model-2025",
        )
    )
    completion = await make().complete(MESSAGES)
    assert completion.text == "hello"
    assert completion.usage == Usage(prompt_tokens=120, completion_tokens=7, cached_tokens=64)
    assert completion.model == "test-model-2025"
    assert completion.parsed is None
    assert completion.cost_usd == 0.0
    assert 0 < completion.latency_s < 2
    body = fake.chat_requests[0].body
    assert body["model"] == "test-model"
    assert body["messages"] == [m.as_openai() for m in MESSAGES]
    for absent in ("reasoning_effort", "response_format", "max_tokens", "temperature", "seed"):
        assert absent not in body


async def test_usage_without_cached_details_counts_zero(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(answer("x", prompt_tokens=3, completion_tokens=2))
    completion = await make().complete(MESSAGES)
    assert completion.usage == Usage(3, 2, 0)


async def test_provider_satisfies_llm_protocol(make: MakeProvider) -> None:
    assert isinstance(make(), LLM)


async def test_sampling_options_sent(fake: FakeOpenAI, make: MakeProvider) -> None:
    await make().complete(MESSAGES, temperature=0.3, max_tokens=50, seed=7)
    body = fake.chat_requests[0].body
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.3, 50, 7)
    assert "max_completion_tokens" not in body


async def test_reasoning_effort_passed_and_max_completion_tokens(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    await make("test-model", reasoning_effort="low").complete(MESSAGES, max_tokens=64)
    body = fake.chat_requests[0].body
    assert body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body


async def test_reasoning_model_name_uses_max_completion_tokens(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    await make("gpt-5-nano").complete(MESSAGES, max_tokens=32, temperature=0.0)
    body = fake.chat_requests[0].body
    assert body["max_completion_tokens"] == 32
    assert "reasoning_effort" not in body
    assert "temperature" not in body  # reasoning models reject any but their own


async def test_extra_body_is_merged_into_the_request(fake: FakeOpenAI, make: MakeProvider) -> None:
    await make(extra_body={"top_k": 20, "chat_template_kwargs": {"thinking": False}}).complete(
        MESSAGES
    )
    body = fake.chat_requests[0].body
    assert body["top_k"] == 20
    assert body["chat_template_kwargs"] == {"thinking": False}


async def test_sdk_retries_are_off(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(server_error())
    with pytest.raises(LLMError):
        await make(max_retries=0).complete(MESSAGES)
    assert len(fake.chat_requests) == 1


# --------------------------------------------------------------------------- retries


async def test_429_retry_after_is_honoured(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(rate_limited(retry_after="0.4"), answer("after the wait"))
    completion = await make(backoff_max_s=1.0).complete(MESSAGES)
    assert completion.text == "after the wait"
    first, second = fake.chat_requests
    waited = second.received_at - first.received_at
    assert 0.4 <= waited < 1.0  # the jittered backoff alone would wait at most 0.001s


async def test_retry_after_is_capped_at_four_times_backoff_max(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(rate_limited(retry_after="60"), answer("ok"))
    started = time.monotonic()
    completion = await make(backoff_max_s=0.05).complete(MESSAGES)
    assert completion.text == "ok"
    assert time.monotonic() - started < 1.0  # capped at 0.2s, not 60s


async def test_429_without_retry_after_backs_off_and_succeeds(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(rate_limited(), rate_limited(), answer("third time"))
    completion = await make(backoff_base_s=0.02, backoff_max_s=0.05).complete(MESSAGES)
    assert completion.text == "third time"
    times = [r.received_at for r in fake.chat_requests]
    assert len(times) == 3
    assert times[2] - times[0] < 0.5  # full jitter under a 0.02s/0.04s ceiling


async def test_500_then_success(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(server_error(), answer("recovered", prompt_tokens=9, completion_tokens=1))
    completion = await make().complete(MESSAGES)
    assert completion.text == "recovered"
    assert completion.usage == Usage(9, 1, 0)  # failed attempts cost nothing
    assert len(fake.chat_requests) == 2


async def test_503_retry_after_http_date_is_honoured(fake: FakeOpenAI, make: MakeProvider) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"  # already passed: retry at once
    fake.script(status(503, "overloaded", retry_after=past), answer("ok"))
    assert (await make().complete(MESSAGES)).text == "ok"
    assert len(fake.chat_requests) == 2


async def test_hang_past_timeout_then_success(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(hang(5.0), answer("prompt answer"))
    started = time.monotonic()
    completion = await make(timeout_s=0.3).complete(MESSAGES)
    elapsed = time.monotonic() - started
    assert completion.text == "prompt answer"
    assert len(fake.chat_requests) == 2
    assert 0.3 <= elapsed < 2.0


async def test_retries_exhausted_raise_llm_error_with_clear_message(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(server_error(), server_error(), server_error())
    with pytest.raises(LLMError) as caught:
        await make(max_retries=2).complete(MESSAGES)
    error = caught.value
    assert not isinstance(error, EndpointUnreachableError)
    assert "test-model" in error.message
    assert "after 3 attempts" in error.message
    assert "HTTP 500" in error.message
    assert "\n" not in error.message
    assert error.hint is not None and "server" in error.hint
    assert len(fake.chat_requests) == 3


async def test_rate_limit_exhausted_hints_at_concurrency(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(rate_limited(), rate_limited())
    with pytest.raises(LLMError) as caught:
        await make(max_retries=1).complete(MESSAGES)
    assert "after 2 attempts" in caught.value.message
    assert "HTTP 429" in caught.value.message
    assert caught.value.hint is not None and "concurrency" in caught.value.hint


async def test_timeouts_exhausted_say_timed_out(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(hang(5.0), hang(5.0))
    with pytest.raises(LLMError) as caught:
        await make(timeout_s=0.2, max_retries=1).complete(MESSAGES)
    assert not isinstance(caught.value, EndpointUnreachableError)
    assert "timed out after 0.2s" in caught.value.message
    assert "after 2 attempts" in caught.value.message
    assert caught.value.hint is not None and "timeout" in caught.value.hint


async def test_retries_are_logged_on_alma_llm(
    fake: FakeOpenAI, make: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(server_error(), answer("ok"))
    with caplog.at_level(logging.WARNING, logger="alma.llm"):
        await make().complete(MESSAGES)
    retries = [r for r in caplog.records if r.name == "alma.llm"]
    assert len(retries) == 1
    assert "HTTP 500" in retries[0].getMessage()
    assert "retry 1/2" in retries[0].getMessage()


# --------------------------------------------------------------------------- final errors


async def test_unreachable_endpoint(make: MakeProvider) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(EndpointUnreachableError) as caught:
        await make(base_url=url, max_retries=1).complete(MESSAGES)
    error = caught.value
    assert isinstance(error, LLMError) and isinstance(error, UsageError)
    assert url in error.message
    assert "after 2 attempts" in error.message
    assert error.hint is not None
    assert "--base-url" in error.hint and "OPENAI_BASE_URL" in error.hint


async def test_401_is_a_config_error_about_the_key(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(unauthorized())
    with pytest.raises(ConfigError) as caught:
        await make().complete(MESSAGES)
    assert "401" in caught.value.message
    assert caught.value.hint is not None and "OPENAI_API_KEY" in caught.value.hint
    assert len(fake.chat_requests) == 1


async def test_other_4xx_is_not_retried_and_keeps_server_message(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(status(404, "The model `nope` does not exist"))
    with pytest.raises(LLMError) as caught:
        await make("nope").complete(MESSAGES)
    assert "HTTP 404" in caught.value.message
    assert "The model `nope` does not exist" in caught.value.message
    assert caught.value.hint is not None and "model name" in caught.value.hint
    assert len(fake.chat_requests) == 1


async def test_missing_api_key_without_base_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider("m", base_url=None, api_key=None)


# --------------------------------------------------------------------------- structured output


async def test_schema_uses_native_json_schema(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(answer(VALID_MOVE))
    completion = await make().complete(MESSAGES, schema=Move)
    assert completion.parsed == Move(action="go north", confidence=0.9)
    fmt = fake.chat_requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Move"
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == Move.model_json_schema()


async def test_fenced_json_is_accepted_without_repair(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(answer(f"Here you go:\n```json\n{VALID_MOVE}\n```"))
    completion = await make().complete(MESSAGES, schema=Move)
    assert completion.parsed == Move(action="go north", confidence=0.9)
    assert len(fake.chat_requests) == 1


async def test_malformed_json_is_repaired_once(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(
        answer(malformed_json().text, prompt_tokens=100, completion_tokens=10),
        answer(VALID_MOVE, prompt_tokens=130, completion_tokens=12, cached_tokens=100),
    )
    completion = await make().complete(MESSAGES, schema=Move)
    assert completion.parsed == Move(action="go north", confidence=0.9)
    assert completion.text == VALID_MOVE
    assert completion.usage == Usage(230, 22, 100)
    repair = fake.chat_requests[1].body["messages"]
    assert repair[: len(MESSAGES)] == [m.as_openai() for m in MESSAGES]
    assert repair[-2] == {"role": "assistant", "content": malformed_json().text}
    assert repair[-1]["role"] == "user"
    assert "Invalid JSON" in repair[-1]["content"]
    assert "JSON" in repair[-1]["content"] and "only" in repair[-1]["content"]


async def test_schema_breaking_twice_raises_malformed_output(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(answer('{"action": "go north"}'), answer('{"action": 3, "confidence": "high"}'))
    with pytest.raises(MalformedOutputError) as caught:
        await make().complete(MESSAGES, schema=Move)
    error = caught.value
    assert "test-model" in error.message and "Move" in error.message
    assert "confidence" in error.message
    assert "\n" not in error.message and len(error.message) < 500
    assert error.hint is not None
    assert len(fake.chat_requests) == 2  # exactly one repair round
    repair_prompt = fake.chat_requests[1].body["messages"][-1]["content"]
    assert "confidence: Field required" in repair_prompt


async def test_json_schema_rejected_falls_back_to_json_object_and_remembers(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    provider = make()
    fake.script(reject_json_schema(), answer(VALID_MOVE), answer(VALID_MOVE))
    first = await provider.complete(MESSAGES, schema=Move)
    second = await provider.complete(MESSAGES, schema=Move)
    assert first.parsed == second.parsed == Move(action="go north", confidence=0.9)
    assert provider.uses_json_object
    formats = [r.body["response_format"]["type"] for r in fake.chat_requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    messages = fake.chat_requests[1].body["messages"]
    assert len(messages) == len(MESSAGES)  # the schema joins the existing system message
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("You play text games.")
    assert json.dumps(Move.model_json_schema(), separators=(",", ":")) in messages[0]["content"]


async def test_json_object_mode_adds_a_system_message_when_there_is_none(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(answer(VALID_MOVE))
    await make(structured="json_object").complete([Message("user", "move")], schema=Move)
    body = fake.chat_requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert '"confidence"' in body["messages"][0]["content"]


async def test_forced_json_schema_does_not_fall_back(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(reject_json_schema())
    with pytest.raises(LLMError, match="json_schema"):
        await make(structured="json_schema").complete(MESSAGES, schema=Move)
    assert len(fake.chat_requests) == 1


async def test_unrelated_400_with_schema_does_not_fall_back(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    provider = make()
    fake.script(status(400, "messages: too long for context window"))
    with pytest.raises(LLMError, match="too long for context window"):
        await provider.complete(MESSAGES, schema=Move)
    assert not provider.uses_json_object
    assert len(fake.chat_requests) == 1


# --------------------------------------------------------------------------- concurrency


async def test_semaphore_bounds_in_flight_requests(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.default = answer("slow", delay_s=0.15)
    provider = make(semaphore=asyncio.Semaphore(2))
    results = await asyncio.gather(*(provider.complete(MESSAGES) for _ in range(6)))
    assert [r.text for r in results] == ["slow"] * 6
    assert fake.max_in_flight == 2


async def test_without_semaphore_requests_overlap(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.default = answer("slow", delay_s=0.15)
    provider = make()
    await asyncio.gather(*(provider.complete(MESSAGES) for _ in range(4)))
    assert fake.max_in_flight == 4  # the fake can see overlap, so the bound above is real


async def test_semaphore_is_shared_between_providers(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.default = answer("slow", delay_s=0.1)
    shared = asyncio.Semaphore(1)
    a, b = make("a", semaphore=shared), make("b", semaphore=shared)
    await asyncio.gather(a.complete(MESSAGES), b.complete(MESSAGES), a.complete(MESSAGES))
    assert fake.max_in_flight == 1


# --------------------------------------------------------------------------- the fake itself


async def test_fake_serves_deterministic_embeddings(fake: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
    try:
        response = await client.embeddings.create(model="emb", input=["a", "b", "a"])
    finally:
        await client.close()
    vectors = [item.embedding for item in response.data]
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[0] == embedding_vector("a", fake.embedding_dim)
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0)
    assert fake.requests[0].path == "/v1/embeddings"


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 01 Jan 2025 00:00:10 GMT"}, 10.0),
        ({"retry-after": "Tue, 31 Dec 2024 23:59:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(headers, now) == expected


def test_backoff_full_jitter_within_exponential_ceiling() -> None:
    policy = BackoffPolicy(base_s=1.0, max_s=30.0, rng=random.Random(0))
    assert [policy.ceiling(a) for a in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    delays = [policy.delay(3) for _ in range(500)]
    assert all(0 <= d <= 8 for d in delays)
    assert max(delays) > 6 and min(delays) < 2  # spread over the whole range: full jitter


def test_backoff_honours_and_caps_server_wait() -> None:
    policy = BackoffPolicy(base_s=1.0, max_s=30.0)
    assert policy.delay(0, retry_after_s=12.0) == 12.0
    assert policy.delay(0, retry_after_s=1000.0) == 120.0
    assert BackoffPolicy(retry_after_cap_s=5).delay(4, retry_after_s=50) == 5


def test_retryable_statuses() -> None:
    assert [
        s for s in (400, 401, 404, 408, 409, 422, 429, 500, 502, 503) if is_retryable_status(s)
    ] == [408, 409, 429, 500, 502, 503]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```\n{"a": 1}\n```', '{"a": 1}'),
        ('Sure! {"a": {"b": 2}} Hope this helps.', '{"a": {"b": 2}}'),
        ("no json here", "no json here"),
    ],
)
def test_extract_json(text: str, expected: str) -> None:
    assert extract_json(text) == expected

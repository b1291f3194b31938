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
    BudgetExceededError,
    ConfigError,
    EndpointUnreachableError,
    LLMError,
    MalformedOutputError,
    UsageError,
)
from alma.llm.base import LLM
from alma.llm.chat_body import request_body
from alma.llm.embeddings import OpenAIEmbedder
from alma.llm.openai_provider import (
    OpenAIProvider,
    estimate_usage,
    extract_json,
    json_schema_format,
)
from alma.llm.retry import (
    BackoffPolicy,
    CallHooks,
    is_retryable_status,
    observing,
    parse_retry_after,
)
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.types import Message, Usage
from fake_openai import (
    Behaviour,
    FakeOpenAI,
    RawBody,
    answer,
    chaos,
    embedding_vector,
    empty_choices,
    hang,
    malformed_body,
    malformed_json,
    odd_body,
    rate_limited,
    reject_json_schema,
    reset,
    server_error,
    status,
    truncated,
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


async def test_extra_body_wins_over_the_providers_own_fields(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    await make(extra_body={"temperature": 0.1}).complete(MESSAGES, temperature=0.5)
    assert fake.chat_requests[0].body["temperature"] == 0.1  # as the SDK's extra_body does


# --------------------------------------------------------------------------- the request sent

SENT_HEADERS = ("authorization", "content-type", "accept", "user-agent", "x-stainless-lang")


async def test_the_request_is_the_one_the_sdks_create_would_send(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    messages = [
        Message("system", "Tu joues à un jeu. 日本語も。"),
        Message("user", 'A "quoted" line\nand a tab\tand \\ a backslash.'),
        Message("assistant", '{"action": "go north", "confidence": 0.9}'),
        Message("user", "Now?"),
    ]
    extra = {"top_k": 20, "chat_template_kwargs": {"thinking": False}}
    fake.script(answer(VALID_MOVE))
    await make(extra_body=extra).complete(
        messages, schema=Move, temperature=0.3, max_tokens=64, seed=5
    )
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    try:
        await client.chat.completions.create(
            model="test-model",
            messages=[m.as_openai() for m in messages],  # type: ignore[misc]
            response_format=json_schema_format(Move),  # type: ignore[arg-type]
            temperature=0.3,
            max_tokens=64,
            seed=5,
            extra_body=extra,
        )
    finally:
        await client.close()
    ours, sdks = fake.chat_requests
    assert ours.path == sdks.path == "/v1/chat/completions"
    assert ours.body == sdks.body
    assert ours.body["messages"][0]["content"] == "Tu joues à un jeu. 日本語も。"
    our_headers, sdk_headers = (
        {name.lower(): value for name, value in request.headers.items()} for request in (ours, sdks)
    )
    for name in SENT_HEADERS:
        assert our_headers.get(name) == sdk_headers.get(name), name
    assert our_headers["authorization"] == "Bearer sk-test"


async def test_requests_do_not_go_through_the_sdks_create(
    fake: FakeOpenAI, make: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai.resources.chat.completions import AsyncCompletions

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("create() transforms the whole conversation on every call")

    monkeypatch.setattr(AsyncCompletions, "create", refuse)
    fake.script(answer(VALID_MOVE))
    completion = await make().complete(MESSAGES, schema=Move)
    assert completion.parsed == Move(action="go north", confidence=0.9)


async def test_a_retried_request_sends_the_same_body(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(server_error(), rate_limited(), answer("third time"))
    completion = await make().complete(MESSAGES, temperature=0.2, seed=3)
    assert completion.text == "third time"
    first, *others = (request.body for request in fake.chat_requests)
    assert len(others) == 2 and all(body == first for body in others)


def test_request_body_is_compact_utf8_json_with_extra_body_last() -> None:
    conversation = [{"role": "user", "content": "café"}]
    raw = request_body("m", conversation, {"temperature": 0.5}, {"temperature": 0.0, "top_k": 3})
    assert (
        raw
        == (
            '{"model":"m","messages":[{"role":"user","content":"café"}],'
            '"temperature":0.0,"top_k":3}'
        ).encode()
    )


async def test_a_value_json_cannot_carry_is_one_alma_error(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    with pytest.raises(LLMError) as error:
        await make().complete(MESSAGES, temperature=float("nan"))
    assert "ValueError" in error.value.message and error.value.hint
    assert fake.chat_requests == []


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


# --------------------------------------------------------------------------- broken bodies

BROKEN_BODIES: dict[str, Callable[[], Behaviour]] = {
    "not JSON": lambda: RawBody(b"<html>502 Bad Gateway</html>", content_type="text/html"),
    "cut-off JSON": malformed_body,
    "wrong shape": odd_body,
    "empty choices": empty_choices,
    "no message": lambda: RawBody(b'{"choices": [{"index": 0}]}'),
    "content not text": lambda: RawBody(b'{"choices": [{"message": {"content": 5}}]}'),
    "a JSON list": lambda: RawBody(b"[1, 2]"),
    "error in a 200": lambda: RawBody(b'{"error": {"message": "upstream died"}}'),
    "truncated body": truncated,
    "connection reset": reset,
}


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
async def test_broken_answer_is_retried_then_succeeds(
    fake: FakeOpenAI, make: MakeProvider, broken: str
) -> None:
    fake.script(BROKEN_BODIES[broken](), answer("fine", prompt_tokens=8, completion_tokens=2))
    completion = await make().complete(MESSAGES)
    assert completion.text == "fine"
    assert completion.usage == Usage(8, 2, 0)  # the broken attempt billed nothing
    assert len(fake.chat_requests) == 2


@pytest.mark.parametrize(
    ("broken", "cause"),
    [
        ("not JSON", "malformed body: not JSON"),
        ("wrong shape", "malformed body: no 'choices' list"),
        ("empty choices", "empty choices list"),
        ("truncated body", "truncated body"),
        ("connection reset", "connection dropped"),
    ],
)
async def test_broken_answers_exhausted_raise_one_llm_error_naming_the_cause(
    fake: FakeOpenAI, make: MakeProvider, broken: str, cause: str
) -> None:
    fake.script(*(BROKEN_BODIES[broken]() for _ in range(3)))
    with pytest.raises(LLMError) as caught:
        await make(max_retries=2).complete(MESSAGES, schema=Move)
    error = caught.value
    assert type(error) is LLMError  # not unreachable (a usage error), not malformed output
    assert f"model 'test-model' at {fake.base_url} failed after 3 attempts (last: " in error.message
    assert cause in error.message
    assert "\n" not in error.message and error.hint
    assert len(fake.chat_requests) == 3


async def test_schema_breaking_twice_carries_the_usage_of_both_answers_and_the_text(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(
        answer('{"action": "go north"}', prompt_tokens=100, completion_tokens=9),
        answer('{"action": 3}', prompt_tokens=130, completion_tokens=6, cached_tokens=100),
    )
    with pytest.raises(MalformedOutputError) as caught:
        await make().complete(MESSAGES, schema=Move)
    assert caught.value.usage == Usage(230, 15, 100)
    assert caught.value.text == '{"action": 3}'
    assert not caught.value.usage_estimated


async def test_a_repair_round_failing_for_good_still_reports_the_first_answer(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(answer("no json", prompt_tokens=50, completion_tokens=4), server_error())
    with pytest.raises(LLMError) as caught:
        await make(max_retries=0).complete(MESSAGES, schema=Move)
    assert not isinstance(caught.value, MalformedOutputError)
    assert caught.value.usage == Usage(50, 4, 0)


async def test_retries_are_told_to_the_call_hooks_with_their_cause(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    causes: list[str] = []
    attempts: list[int] = []
    hooks = CallHooks(before_attempt=lambda: attempts.append(1), on_retry=causes.append)
    fake.script(rate_limited(), empty_choices(), malformed_body(), answer("ok"))
    with observing(hooks):
        await make(max_retries=3).complete(MESSAGES)
    assert causes[0] == "HTTP 429: Rate limit reached, slow down"
    assert causes[1:] == ["empty choices list", causes[2]]
    assert causes[2].startswith("malformed body: not JSON")
    assert len(attempts) == 4


async def test_a_call_hook_can_stop_further_attempts(fake: FakeOpenAI, make: MakeProvider) -> None:
    def refuse_after_first() -> None:
        if fake.chat_requests:
            raise BudgetExceededError("spent")

    fake.script(server_error(), answer("never asked"))
    hooks = CallHooks(refuse_after_first, lambda cause: None)
    with observing(hooks), pytest.raises(BudgetExceededError):
        await make(max_retries=3).complete(MESSAGES)
    assert len(fake.chat_requests) == 1


# --------------------------------------------------------------------------- no usage block


async def test_missing_usage_is_estimated_with_one_warning(
    fake: FakeOpenAI, make: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    text = "go north, then open the red door"
    fake.script(answer(text, usage=False), answer(text, usage=False))
    provider = make()
    with caplog.at_level(logging.WARNING, logger="alma.llm"):
        first = await provider.complete(MESSAGES)
        await provider.complete(MESSAGES)
    prompt = approx_message_tokens(m.content for m in MESSAGES)
    assert first.usage == Usage(prompt, approx_tokens(text), 0)
    assert first.usage_estimated
    warnings = [r.getMessage() for r in caplog.records if "token usage" in r.getMessage()]
    assert warnings == [
        f"endpoint {fake.base_url} sends no token usage; counting estimated tokens "
        "(about 4 characters a token)"
    ]


async def test_estimate_counts_the_schema_and_the_repair_round(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.script(answer("not json", usage=False), answer(VALID_MOVE, usage=False))
    completion = await make(structured="json_object").complete(MESSAGES, schema=Move)
    first, second = (r.body for r in fake.chat_requests)
    expected = estimate_usage(first["messages"], {}, "not json") + estimate_usage(
        second["messages"], {}, VALID_MOVE
    )
    assert completion.usage == expected and completion.usage_estimated
    assert '"confidence"' in first["messages"][0]["content"]  # the instruction was counted
    plain = approx_message_tokens(m.content for m in MESSAGES)
    assert expected.prompt_tokens > 2 * plain + approx_tokens(Move.__name__)


async def test_reported_usage_is_not_flagged(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.script(answer("x", prompt_tokens=3, completion_tokens=1))
    assert not (await make().complete(MESSAGES)).usage_estimated


# --------------------------------------------------------------------------- the embedder


@pytest.fixture
async def embedder(fake: FakeOpenAI) -> AsyncIterator[OpenAIEmbedder]:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=4, timeout=2.0)
    yield OpenAIEmbedder("emb", client=client, dim=8, max_retries=2, backoff_base_s=0.001)
    await client.close()


async def test_embedder_retries_faults_itself_and_tells_the_hooks(
    fake: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    fake.script_embeddings(rate_limited(), malformed_body())
    causes: list[str] = []
    with observing(CallHooks(lambda: None, causes.append)):
        vectors, tokens, estimated = await embedder.embed_counted(["a red key", "door"])
    assert vectors.shape == (2, 8) and tokens == 4 and not estimated
    assert vectors[1].tolist() == pytest.approx(embedding_vector("door", 8))
    assert [c.split(":")[0] for c in causes] == ["HTTP 429", "malformed body"]
    assert len(fake.requests) == 3  # the SDK's own retries (max_retries=4 above) are off


async def test_embedder_exhausted_raises_llm_error(
    fake: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    fake.script_embeddings(server_error(), reset(), RawBody(b'{"data": []}'))
    with pytest.raises(LLMError) as caught:
        await embedder.embed(["x"])
    assert "embedding model 'emb'" in caught.value.message
    assert "after 3 attempts (last: malformed body: expected a 'data' list" in caught.value.message


async def test_embedder_estimates_tokens_without_usage(
    fake: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    vector = embedding_vector("x", 8)
    body = {"data": [{"index": 0, "embedding": vector}]}
    fake.script_embeddings(RawBody(json.dumps(body).encode()))
    _, tokens, estimated = await embedder.embed_counted(["twelve chars"])
    assert (tokens, estimated) == (approx_tokens("twelve chars"), True)


# --------------------------------------------------------------------------- chaos


def test_chaos_faults_depend_only_on_request_order() -> None:
    def good(body: dict[str, Any]) -> Behaviour:
        return answer(f"good {body['n']}")

    runs = []
    for _ in range(2):
        behaviour = chaos(good, rate=0.3, seed=11, hang_s=0.1)
        runs.append([behaviour({"n": n}) for n in range(400)])
        faults = sum(count for name, count in behaviour.drawn.items() if name != "good")
        assert 90 <= faults <= 150  # about 30 %
        assert set(behaviour.drawn) - {"good"} == {
            "429_retry_after", "429", "500", "503", "reset", "hang", "truncated",
            "malformed_body", "empty_choices", "schema_breaking", "slow",
        }  # fmt: skip
    assert runs[0] == runs[1]
    answered = [b for b in runs[0] if isinstance(b, type(answer("")))]
    assert any(b.text == "good 3" or b.delay_s for b in answered)


async def test_chaos_retries_reach_the_good_answer(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.default = chaos(lambda body: answer(VALID_MOVE), rate=0.3, seed=3, hang_s=1.0)
    provider = make(timeout_s=0.5, max_retries=8)
    for _ in range(20):  # one after the other: the n-th request meets the same fault every run
        completion = await provider.complete(MESSAGES, schema=Move)
        assert completion.parsed == Move(action="go north", confidence=0.9)
    assert len(fake.chat_requests) > 20

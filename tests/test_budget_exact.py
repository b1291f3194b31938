"""The budget against an endpoint that bills what it serves: alma records every served token, and
concurrent callers overshoot a token budget by at most the requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from alma.errors import BudgetExceededError, LLMError
from alma.llm.ledger import Budget, Ledger, Metered
from alma.llm.openai_provider import OpenAIProvider
from alma.types import Message
from fake_openai import Behaviour, FakeOpenAI, answer, chaos

PROMPT, COMPLETION = 120, 30  # what the fake bills per answer
PER_CALL = PROMPT + COMPLETION
MESSAGES = [Message("user", "You are in a kitchen. What now?")]


class Verdict(BaseModel):
    ok: bool


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(answer("fine", prompt_tokens=PROMPT, completion_tokens=COMPLETION)) as server:
        yield server


def provider(fake: FakeOpenAI, **settings: Any) -> OpenAIProvider:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": "k",
        "timeout_s": 2.0,
        "max_retries": 8,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
    }
    options.update(settings)
    return OpenAIProvider("m", **options)


async def spend(llm: Metered, callers: int, **call: Any) -> int:
    """``callers`` loops calling until the budget stops them; returns the calls answered."""

    async def caller() -> int:
        answered = 0
        while True:
            try:
                await llm.complete(MESSAGES, **call)
                answered += 1
            except BudgetExceededError:
                return answered
            except LLMError:  # a call that failed for good (or broke the schema) is a call
                continue

    return sum(await asyncio.gather(*(caller() for _ in range(callers))))


@pytest.mark.parametrize(("callers", "concurrency"), [(1, None), (8, None), (16, 4)])
async def test_recorded_equals_served_and_overshoot_is_bounded_by_in_flight(
    fake: FakeOpenAI, callers: int, concurrency: int | None
) -> None:
    fake.default = answer("fine", prompt_tokens=PROMPT, completion_tokens=COMPLETION, delay_s=0.02)
    budget = 3_000
    semaphore = asyncio.Semaphore(concurrency) if concurrency else None
    model = provider(fake, semaphore=semaphore)
    ledger = Ledger(budget=Budget(tokens=budget))
    try:
        answered = await spend(Metered(model, ledger, "agent"), callers)
    finally:
        await model.close()
    in_flight = min(callers, concurrency or callers)
    assert fake.max_in_flight <= in_flight
    assert ledger.total.tokens == fake.served_tokens == answered * PER_CALL
    assert ledger.total.tokens >= budget  # it ran until the budget was spent...
    overshoot = ledger.total.tokens - budget
    assert overshoot < in_flight * PER_CALL  # ...and past it by less than the calls in flight
    assert len(fake.chat_requests) == answered  # no request started after the budget was spent


async def test_a_semaphore_keeps_waiting_calls_from_overshooting(fake: FakeOpenAI) -> None:
    """32 callers pass the first check at once; only the 2 holding the semaphore may send."""
    fake.default = answer("fine", prompt_tokens=PROMPT, completion_tokens=COMPLETION, delay_s=0.02)
    model = provider(fake, semaphore=asyncio.Semaphore(2))
    ledger = Ledger(budget=Budget(tokens=PER_CALL))  # one call spends it
    try:
        answered = await spend(Metered(model, ledger, "agent"), 32)
    finally:
        await model.close()
    assert answered <= 2 and ledger.total.tokens == fake.served_tokens == answered * PER_CALL


async def test_recorded_equals_served_under_chaos(fake: FakeOpenAI) -> None:
    """Faults of every kind, schema-breaking answers included: every served token is counted."""

    def good(body: dict[str, Any]) -> Behaviour:
        return answer('{"ok": true}', prompt_tokens=PROMPT, completion_tokens=COMPLETION)

    fake.default = faults = chaos(good, rate=0.4, seed=5, hang_s=0.8)
    model = provider(fake, timeout_s=0.5, max_retries=3)
    ledger = Ledger(budget=Budget(tokens=40 * PER_CALL))
    try:
        await spend(Metered(model, ledger, "agent"), 6, schema=Verdict)
    finally:
        await model.close()
    tally = ledger.by_purpose["agent"]
    assert faults.drawn["schema_breaking"] > 0 and faults.drawn["hang"] > 0
    assert tally.retries > 0 and tally.tokens == fake.served_tokens
    assert tally.tokens - 40 * PER_CALL < 6 * 2 * PER_CALL  # a call may take a repair round

import logging
from pathlib import Path

import pytest

from alma.errors import BudgetExceededError, LLMError
from alma.llm.cache import CachedLLM, ResponseCache
from alma.llm.ledger import Budget, Ledger, Metered
from alma.llm.prices import PriceTable
from alma.llm.scripted import ScriptedLLM
from alma.store import RunStore
from alma.types import Completion, Message, Usage


class FixedLLM:
    """Reports a fixed usage per call, under a chosen model name."""

    def __init__(self, model: str, usage: Usage) -> None:
        self.model = model
        self.usage = usage
        self.calls = 0

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        self.calls += 1
        return Completion(text=f"answer {self.calls}", usage=self.usage, model=self.model)


class FailingLLM:
    model = "gpt-5-nano"

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        raise LLMError("endpoint kept failing")


HELLO = [Message("user", "hello")]


def test_price_of_a_call() -> None:
    table = PriceTable()
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=500_000)
    # gpt-5-nano: 0.05 in, 0.005 cached in, 0.40 out per million
    assert table.cost("gpt-5-nano", usage) == pytest.approx(0.025 + 0.0025 + 0.40)
    assert table.cost("gpt-4o-mini-2024-07-18", Usage(1_000_000)) == pytest.approx(0.15)
    assert table.cost("scripted", usage) == 0.0


def test_unknown_model_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    with caplog.at_level(logging.WARNING, logger="alma.llm"):
        assert table.cost("mystery-model", Usage(1000, 1000)) == 0.0
        assert table.cost("mystery-model", Usage(1000, 1000)) == 0.0
    assert sum("mystery-model" in r.message for r in caplog.records) == 1


async def test_ledger_records_by_purpose_and_persists(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    ledger = Ledger(store=store)
    agent = Metered(FixedLLM("gpt-5-nano", Usage(1000, 100)), ledger, "agent")
    memory = Metered(FixedLLM("gpt-5-nano", Usage(10, 1)), ledger, "memory")
    completion = await agent.complete(HELLO)
    await memory.complete(HELLO)
    assert completion.cost_usd == pytest.approx((1000 * 0.05 + 100 * 0.40) / 1e6)
    assert ledger.by_purpose["agent"].calls == 1
    assert ledger.by_purpose["memory"].prompt_tokens == 10
    assert ledger.total.tokens == 1111
    rows = store.query("SELECT purpose, prompt_tokens FROM llm_calls ORDER BY id")
    assert [(r["purpose"], r["prompt_tokens"]) for r in rows] == [("agent", 1000), ("memory", 10)]
    store.close()
    # a resumed run starts from the database's totals
    reopened = Ledger(store=RunStore(tmp_path / "run"))
    assert reopened.total.tokens == 1111
    assert reopened.by_purpose["agent"].cost_usd == pytest.approx(completion.cost_usd)


async def test_failed_call_is_recorded_and_reraised(tmp_path: Path) -> None:
    ledger = Ledger(store=RunStore(tmp_path / "run"))
    with pytest.raises(LLMError):
        await Metered(FailingLLM(), ledger, "meta").complete(HELLO)
    assert ledger.by_purpose["meta"].errors == 1


async def test_token_budget_blocks_the_next_call() -> None:
    inner = FixedLLM("gpt-5-nano", Usage(600, 0))
    ledger = Ledger(budget=Budget(tokens=1000))
    llm = Metered(inner, ledger, "agent")
    await llm.complete(HELLO)
    await llm.complete(HELLO)  # 600 < 1000 so this one may start
    with pytest.raises(BudgetExceededError, match="token budget reached"):
        await llm.complete(HELLO)
    assert inner.calls == 2


async def test_dollar_budget() -> None:
    ledger = Ledger(budget=Budget(usd=0.001))
    llm = Metered(FixedLLM("gpt-5", Usage(1000, 0)), ledger, "meta")  # $0.00125 a call
    await llm.complete(HELLO)
    with pytest.raises(BudgetExceededError, match="dollar budget reached"):
        await llm.complete(HELLO)


async def test_cache_hits_cost_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    inner = FixedLLM("gpt-5-nano", Usage(1000, 100))
    ledger = Ledger()
    llm = Metered(CachedLLM(inner, cache), ledger, "agent")
    first = await llm.complete(HELLO)
    second = await llm.complete(HELLO)
    assert inner.calls == 1
    assert second.from_cache and second.text == first.text and second.cost_usd == 0
    assert ledger.by_purpose["agent"].cache_hits == 1
    # different messages, sampling or schema: a miss
    await llm.complete([Message("user", "hello!")])
    await llm.complete(HELLO, max_tokens=5)
    await llm.complete(HELLO, temperature=0.7)  # not deterministic: never cached
    await llm.complete(HELLO, temperature=0.7)
    assert inner.calls == 5
    assert len(cache) == 3


async def test_cache_off_and_seeded_calls(tmp_path: Path) -> None:
    inner = FixedLLM("m", Usage(1, 1))
    llm = CachedLLM(inner, None)
    await llm.complete(HELLO)
    await llm.complete(HELLO)
    assert inner.calls == 2
    cached = CachedLLM(inner, ResponseCache(tmp_path / "c.sqlite"))
    await cached.complete(HELLO, temperature=1.0, seed=7)
    await cached.complete(HELLO, temperature=1.0, seed=7)
    assert inner.calls == 3


async def test_cached_structured_answers_are_revalidated(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        ok: bool

    llm = CachedLLM(ScriptedLLM(rules=[]), ResponseCache(tmp_path / "c.sqlite"))
    first = await llm.complete(HELLO, schema=Verdict)
    second = await llm.complete(HELLO, schema=Verdict)
    assert second.from_cache and isinstance(second.parsed, Verdict)
    assert second.parsed == first.parsed


async def test_child_ledger_tallies_its_share_within_the_parent_budget(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    root = Ledger(budget=Budget(tokens=2500), store=store)
    child = root.child("eval:abc")
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), child, "memory").complete(HELLO)
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), root, "agent").complete(HELLO)
    assert child.total.tokens == 1000 and root.total.tokens == 2000
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), child, "memory").complete(HELLO)
    with pytest.raises(BudgetExceededError):  # the parent's budget binds the child
        await Metered(FixedLLM("m", Usage(1, 0)), child, "memory").complete(HELLO)
    scopes = [r["scope"] for r in store.query("SELECT scope FROM llm_calls ORDER BY id")]
    assert scopes == ["eval:abc", "", "eval:abc"]
